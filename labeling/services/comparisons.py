"""Storing a rater's judgment of a leased pair, replaying a retry, and taking the last one back.

Everything for one judgment happens in one transaction: the comparison row, the lease marked as
judged, the pair's slot count and the per-image counters.
When the API answers, the judgment is committed.
"""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from core import prepared_sql
from core.refusals import Refusal
from labeling.models import Comparison, GoldPair, PairLease, Project
from labeling.services import campaign_target, criteria, judgment_hooks, leases, pair_queue, qualification
from labeling.services import rater_counts as rater_day_counts
from labeling.services.image_stats import comparison_removed, comparison_stored
from labeling.services.leases import LeaseClosed, LeaseExpired

CLIENT_KEY_MAX_LENGTH = 64
RESPONSE_MS_MAX = 24 * 3600 * 1000  # a day: anything longer is a clock problem, not a judgment


class ComparisonRefused(Refusal):
    """A judgment that cannot be stored as sent (the message says why)."""

    code = "comparison_refused"


class TiesNotAllowed(ComparisonRefused):
    code = "ties_not_allowed"


class BothBadNotAllowed(ComparisonRefused):
    code = "both_bad_not_allowed"


class ImagesOutsideProject(ComparisonRefused):
    code = "images_outside_project"


class ClientKeyReused(ComparisonRefused):
    code = "client_key_reused"


class NothingToUndo(ComparisonRefused):
    code = "nothing_to_undo"


class UndoRefused(ComparisonRefused):
    code = "undo_refused"


def undo_seconds() -> int:
    return int(settings.TAGRANK_UNDO_SECONDS)


def submit_comparison(
    project: Project,
    rater,
    *,
    lease,
    winner: str | None = None,
    client_key: str,
    response_ms: int | None = None,
    answers: dict[str, str] | None = None,
) -> tuple[Comparison, bool]:
    """Store ``rater``'s judgment of the pair under ``lease``. Returns (comparison, created).

    A project with several criteria takes ``answers`` ({criterion key: a, b, tie or bad}, one for each) instead
    of ``winner``: the primary criterion's answer becomes the outcome, and every answer is stored with it
    (``labeling/services/criteria.py``).
    A retry with a client_key this rater already used for this lease returns the stored comparison
    with ``created=False`` and stores nothing. Anything else that cannot be stored raises a refusal:
    a ``LeaseError`` for the lease, a ``ComparisonRefused`` for the judgment.
    """
    if project.criteria or answers:
        try:
            answers = criteria.checked_answers(project, answers)
        except ValueError as exc:
            raise ComparisonRefused(str(exc)) from None
        if answers is not None:
            winner = answers[criteria.primary(project)]
    if winner not in Comparison.Outcome.values:
        raise ComparisonRefused(f"Unknown winner {winner!r}: use a, b, tie or bad (both bad).")
    if not client_key or len(client_key) > CLIENT_KEY_MAX_LENGTH:
        raise ComparisonRefused(f"client_key must be 1 to {CLIENT_KEY_MAX_LENGTH} characters.")
    if response_ms is not None and not 0 <= response_ms <= RESPONSE_MS_MAX:
        raise ComparisonRefused(f"response_ms must be between 0 and {RESPONSE_MS_MAX}.")
    try:
        with transaction.atomic():
            return _submit_locked(project, rater, lease, winner, client_key, response_ms, answers)
    except IntegrityError:
        # The (rater, client_key) constraint: the key belongs to another judgment. Everything rolled back.
        if not Comparison.objects.filter(rater=rater, client_key=client_key).exists():
            raise
        raise ClientKeyReused("This client_key was already used for another judgment; send a new one.") from None


def _submit_locked(project, rater, token, winner, client_key, response_ms, answers=None) -> tuple[Comparison, bool]:
    lease = leases.lock_lease(project, rater, token)
    if lease.state == PairLease.State.JUDGED:
        stored = Comparison.objects.filter(pk=lease.comparison_id).first()
        if stored is not None and stored.client_key == client_key:
            return stored, False  # a replay: the judgment is already stored
        if Comparison.objects.filter(rater=rater, client_key=client_key).exists():
            raise ClientKeyReused("This client_key was already used for another judgment; send a new one.")
        raise LeaseClosed("This pair was already judged under another client_key.")
    if lease.state != PairLease.State.LIVE:
        raise LeaseClosed(
            {
                PairLease.State.SKIPPED: "This pair was skipped; ask for a new pair.",
                PairLease.State.RELEASED: "This lease was released; ask for a new pair.",
                PairLease.State.UNDONE: "This lease was replaced when its judgment was undone.",
            }[lease.state]
        )
    now = timezone.now()
    if lease.expires_at <= now:
        raise LeaseExpired(f"The lease expired at {lease.expires_at.isoformat()}; ask for a new pair.")
    if winner == Comparison.Outcome.TIE and not project.allow_ties:
        raise TiesNotAllowed("This project does not allow ties: choose a or b, or skip the pair.")
    if winner == Comparison.Outcome.BOTH_BAD and not project.allow_both_bad:
        raise BothBadNotAllowed("This project does not allow 'both bad': choose a or b, or skip the pair.")
    # Leases are only made from the project's own images; this guards against rows written by hand.
    if {lease.image_a_project_id, lease.image_b_project_id} != {project.pk}:
        raise ImagesOutsideProject("The leased images are not both in this project.")
    gold_correct = None
    if lease.gold_id is not None:
        gold = GoldPair.objects.get(pk=lease.gold_id)
        gold_correct = winner == gold.expected_for(lease.image_a_id)
    # A client_key this rater used for another judgment trips the unique constraint (caught by the caller).
    comparison = _insert_comparison(
        Comparison(
            project=project, image_a_id=lease.image_a_id, image_b_id=lease.image_b_id, outcome=winner, rater=rater,
            response_ms=response_ms, client_key=client_key, is_gold=lease.gold_id is not None,
            gold_correct=gold_correct, created_at=now,
        )
    )
    comparison_stored(comparison)
    if answers is not None:
        criteria.store_answers(comparison.pk, answers)
    lease.state, lease.comparison = PairLease.State.JUDGED, comparison
    leases.mark_lease_judged(lease.pk, comparison.pk)
    pair_queue.refresh_candidate(lease.candidate_id, project)
    if comparison.is_gold:
        qualification.gold_judged(project, rater)
    campaign_target.judgment_stored(project)
    judgment_hooks.judgment_stored(project)
    return comparison, True


def _insert_comparison(comparison: Comparison) -> Comparison:
    """INSERT the judgment with one prepared statement (every judgment: a model save costs more CPU than the
    database spends storing it). No post_save signal is sent; the caller counts the comparison."""
    return prepared_sql.insert(comparison, [
        "project_id", "image_a_id", "image_b_id", "outcome", "rater_id", "created_at", "response_ms", "client_key",
        "is_gold", "gold_correct",
    ])


def undo_last_comparison(project: Project, rater, *, comparison_id: int | None = None) -> tuple[PairLease, int]:
    """Take back the rater's latest judgment in this project, within the undo window.

    The comparison is deleted; returns a new live lease on the same pair, same sides, so that the rater
    can judge it again, and the id of the comparison taken back. ``comparison_id``, when given, must be that latest judgment: a
    double press of U must not undo the one before.
    """
    with transaction.atomic():
        latest = (
            Comparison.objects.select_for_update().filter(project=project, rater=rater).order_by("-id").first()
        )
        if latest is None:
            raise NothingToUndo("You have no judgment in this project to undo.")
        if comparison_id is not None and latest.pk != comparison_id:
            if not Comparison.objects.filter(pk=comparison_id, rater=rater, project=project).exists():
                raise NothingToUndo("That judgment does not exist or was already undone.")
            raise UndoRefused("Only your latest judgment can be undone.")
        window = undo_seconds()
        if timezone.now() - latest.created_at > timedelta(seconds=window):
            raise UndoRefused(f"Too late to undo: judgments can be undone within {window} seconds.")
        old_lease = PairLease.objects.select_for_update().filter(comparison=latest).first()
        candidate_id = gold_id = None
        if old_lease is not None:
            candidate_id, gold_id = old_lease.candidate_id, old_lease.gold_id
            old_lease.state = PairLease.State.UNDONE
            old_lease.comparison = None
            old_lease.save(update_fields=["state", "comparison"])
        left_id, right_id, undone_id = latest.image_a_id, latest.image_b_id, latest.pk
        latest.delete()
        comparison_removed(latest)
        lease = leases.new_lease(
            project, rater, left_id, right_id, timezone.now(), candidate_id=candidate_id, gold_id=gold_id
        )
        pair_queue.refresh_candidate(candidate_id, project)
        return leases.attach_images(lease), undone_id


def project_progress(project: Project, *, days: int = 30) -> dict:
    """Comparisons per day (the last ``days``, whole days in UTC) and per rater, with gold accuracy and position
    bias, and what is left in the pair queue. Read from the counters (``labeling/services/rater_counts.py``):
    a few rows per rater and day, however many comparisons the project has."""
    from labeling.models import Membership

    per_day = rater_day_counts.per_day(project, (timezone.now() - timedelta(days=days)).date())
    stats = rater_counts(project)
    per_rater = []
    members = Membership.objects.filter(project=project).select_related("user").order_by("user__username")
    seen = set()
    for member in members:
        seen.add(member.user_id)
        row = _rater_row(member.user, member.role, member.is_active, stats.get(member.user_id))
        row.update(qualification=member.qualification or None, paused_at=member.paused_at,
                   pause_reason=member.pause_reason if member.paused_at else "", membership=member.pk)
        per_rater.append(row)
    # Comparisons by people who are no longer members (e.g. superusers, removed raters) still count.
    if set(stats) - seen:
        from django.contrib.auth import get_user_model

        for user in get_user_model().objects.filter(pk__in=set(stats) - seen).order_by("username"):
            per_rater.append({**_rater_row(user, "former member", False, stats[user.pk]), "qualification": None,
                              "paused_at": None, "pause_reason": "", "membership": None})
    from labeling.services.pair_queue import pairs_remaining

    return {
        "target": campaign_target.progress(project),
        "comparisons": sum(row["comparisons"] for row in per_rater),
        "per_day": per_day,
        "per_rater": per_rater,
        "pairs_remaining": pairs_remaining(project),
    }


def rater_counts(project: Project) -> dict[int, dict]:
    """Per rater id, over all of the project's comparisons: ``n`` judgments, ``left`` and ``right`` (decided for
    image a, b), ``gold_judged`` and ``gold_correct``, ``last`` (when) and ``mean_ms``. The one definition of
    these counts: the progress views and the dashboard's rater table (modeling/services/agreement.py) both
    read them here, from the per-rater, per-day counters."""
    return rater_day_counts.per_rater(project)


def _rater_row(user, role: str, is_active: bool, row: dict | None) -> dict:
    row = row or {}
    gold_judged = row.get("gold_judged", 0)
    decided = row.get("left", 0) + row.get("right", 0)
    return {
        "rater": user.pk,
        "username": user.username,
        "role": role,
        "is_active": is_active,
        "comparisons": row.get("n", 0),
        "last_judged_at": row.get("last"),
        "mean_response_ms": round(row["mean_ms"], 1) if row.get("mean_ms") is not None else None,
        "gold_judged": gold_judged,
        "gold_correct": row.get("gold_correct", 0),
        "gold_accuracy": row.get("gold_correct", 0) / gold_judged if gold_judged else None,
        "left_share": row.get("left", 0) / decided if decided else None,
    }
