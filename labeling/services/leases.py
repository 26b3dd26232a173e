"""Leases: a slot of a pair handed to one rater for a limited time, and how a lease ends.

A lease is live until it expires (``TAGRANK_LEASE_SECONDS``) or ends: judged (the submit service marks
it), skipped (the pair is kept from this rater for good), released (its slot goes back), or undone.
Each end recounts the pair's slots in the queue (``pair_queue.refresh_candidate``). A rater holds at
most ``TAGRANK_MAX_LIVE_LEASES`` live leases in a project (``held_lease``).
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Iterable

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from core import prepared_sql
from core.refusals import Refusal
from labeling.models import Image, PairLease, Project
from labeling.services import pair_sql
from labeling.services.pair_queue import refresh_candidate


class LeaseError(Refusal):
    """A lease cannot be used as asked."""

    code = "lease_invalid"


class LeaseUnknown(LeaseError):
    code = "lease_unknown"


class LeaseForeign(LeaseError):
    code = "lease_foreign"


class LeaseWrongProject(LeaseError):
    code = "lease_wrong_project"


class LeaseExpired(LeaseError):
    code = "lease_expired"


class LeaseClosed(LeaseError):
    """Judged, skipped, released or undone: the lease is no longer live."""

    code = "lease_closed"


def lease_seconds() -> int:
    return int(settings.TAGRANK_LEASE_SECONDS)


def blocking_leases(now: datetime) -> Q:
    """Leases that keep their rater from being served the same pair again."""
    return Q(state__in=[PairLease.State.JUDGED, PairLease.State.SKIPPED]) | Q(
        state=PairLease.State.LIVE, expires_at__gt=now
    )


def new_lease(project, rater, left_id: int, right_id: int, now: datetime, *, candidate_id: int | None = None,
              gold_id: int | None = None) -> PairLease:
    """Insert a live lease (hot path: one raw statement instead of a model save)."""
    lease = PairLease(
        token=uuid.uuid4(), project=project, rater=rater, image_a_id=left_id, image_b_id=right_id,
        expires_at=now + timedelta(seconds=lease_seconds()), candidate_id=candidate_id, gold_id=gold_id,
        state=PairLease.State.LIVE, created_at=now,
    )
    return prepared_sql.insert(lease, [
        "token", "project_id", "rater_id", "candidate_id", "gold_id", "image_a_id", "image_b_id", "state",
        "created_at", "expires_at",
    ])


def attach_images(lease: PairLease) -> PairLease:
    """Load both images of a lease and their tags (``lease.tags``: image id → sorted names) in one query."""
    found = pair_sql.images_with_tags(lease.image_a_id, lease.image_b_id)
    (lease.image_a, tags_a), (lease.image_b, tags_b) = found[lease.image_a_id], found[lease.image_b_id]
    lease.tags = {lease.image_a_id: tags_a, lease.image_b_id: tags_b}
    return lease


def max_live_leases() -> int:
    return int(getattr(settings, "TAGRANK_MAX_LIVE_LEASES", 0) or 0)


def held_lease(project: Project, rater, *, just_leased: PairLease | None = None) -> PairLease | None:
    """The rater's oldest live lease in the project when they hold the cap (counting ``just_leased``)."""
    cap = max_live_leases()
    if cap <= 0:
        return None
    # Hot path (every next-pair): the ids alone, along the partial index of live leases.
    live = [
        lease_id
        for (lease_id,) in prepared_sql.execute(
            f"""SELECT id FROM {pair_sql.LEASES}
                WHERE rater_id = %s AND project_id = %s AND state = '{pair_sql.LIVE}' AND expires_at > %s
                ORDER BY created_at, id LIMIT %s""",
            [rater.pk, project.pk, prepared_sql.db_time(timezone.now()), cap + 1],
        )
    ]
    allowed = cap + 1 if just_leased is not None else cap  # the new lease itself is among the live ones
    if len(live) < allowed:
        return None
    oldest = next(lease_id for lease_id in live if just_leased is None or lease_id != just_leased.pk)
    return PairLease.objects.get(pk=oldest)


def release_one(project: Project, lease: PairLease) -> None:
    with transaction.atomic():
        PairLease.objects.filter(pk=lease.pk, state=PairLease.State.LIVE).update(state=PairLease.State.RELEASED)
        refresh_candidate(lease.candidate_id, project)


def lock_lease(project: Project, rater, token) -> PairLease:
    """The caller's lease, locked for update, or a LeaseError saying why it cannot be used.

    The lease carries ``image_a_project_id`` and ``image_b_project_id``: the projects of its images."""
    try:
        token = token if isinstance(token, uuid.UUID) else uuid.UUID(str(token))
    except (TypeError, ValueError):
        raise LeaseUnknown("The lease is not a valid lease token.") from None
    # Hot path (every judgment): one prepared statement for the lease and its images' projects, locked.
    images = Image._meta.db_table
    token_value = PairLease._meta.get_field("token").get_db_prep_value(token, connection)
    lock = " FOR UPDATE OF l" if connection.features.has_select_for_update_of else ""
    fields = [field.attname for field in PairLease._meta.concrete_fields]
    rows = prepared_sql.execute(
        f"""SELECT {", ".join("l." + PairLease._meta.get_field(name).column for name in fields)},
                   a.project_id, b.project_id
            FROM {pair_sql.LEASES} l JOIN {images} a ON a.id = l.image_a_id JOIN {images} b ON b.id = l.image_b_id
            WHERE l.token = %s{lock}""",
        [token_value],
    )
    if not rows:
        raise LeaseUnknown("Unknown lease: ask for a new pair.")
    *lease_values, image_a_project_id, image_b_project_id = rows[0]
    lease = prepared_sql.model_from_row(PairLease, fields, lease_values)
    lease.image_a_project_id, lease.image_b_project_id = image_a_project_id, image_b_project_id
    if lease.rater_id != rater.pk:
        raise LeaseForeign("This lease was handed to another rater.")
    if lease.project_id != project.pk:
        raise LeaseWrongProject("This lease belongs to another project.")
    return lease


def mark_lease_judged(lease_id: int, comparison_id: int) -> None:
    """In the submit transaction (hot path: one prepared statement instead of a model save)."""
    prepared_sql.execute(f"UPDATE {pair_sql.LEASES} SET state = %s, comparison_id = %s WHERE id = %s",
                     [pair_sql.JUDGED, comparison_id, lease_id])


def end_lease(project: Project, rater, token, *, skip: bool) -> PairLease:
    """Give a live lease's slot back. ``skip`` also keeps the pair from this rater for good.

    Idempotent: skipping or releasing a lease that is already skipped or released changes nothing.
    """
    with transaction.atomic():
        lease = lock_lease(project, rater, token)
        if lease.state == PairLease.State.JUDGED:
            raise LeaseClosed("This pair was already judged; undo the judgment instead.")
        if lease.state == PairLease.State.UNDONE:
            raise LeaseClosed("This lease was replaced when its judgment was undone.")
        wanted = PairLease.State.SKIPPED if skip else PairLease.State.RELEASED
        if lease.state == PairLease.State.LIVE or (lease.state == PairLease.State.RELEASED and skip):
            lease.state = wanted
            lease.save(update_fields=["state"])
            refresh_candidate(lease.candidate_id, project)
        return lease


def release_leases(project: Project, rater, tokens: Iterable) -> int:
    """Release several of the rater's live leases (e.g. when the rating page closes). Unknown,
    foreign or finished leases are ignored: this is best effort, the leases expire anyway."""
    released = 0
    for token in tokens:
        try:
            lease = end_lease(project, rater, token, skip=False)
        except LeaseError:
            continue
        released += lease.state == PairLease.State.RELEASED
    return released
