"""Pair serving: ``next_pair(project, rater)`` hands a rater a pair of images under a lease.

Where a pair comes from, in order:

1. a **gold pair** (known answer, marked by a manager), with probability ``project.gold_rate``;
2. the **pair queue**: the open ``PairCandidate`` with the highest priority that this rater may judge.
   Active selection fills the queue from a Celery task (``enqueue_pairs``); ``next_pair`` only reads it;
3. the **fallback strategy** when the queue has nothing for this rater: among the images with the
   fewest comparisons (an index range scan on ``ImageStats``), random partners.

Slots. A pair may be handed out ``project.overlap`` times: its stored comparisons (either order) plus
its live leases never exceed that. Every lease goes through the pair's ``PairCandidate`` row, locked
with ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL, and the slot count is re-checked under that
lock, so concurrent requests never double-lease a slot; a request that meets a locked row moves on
to the next one instead of waiting. SQLite has no row locks, but Tagrank's SQLite transactions are
IMMEDIATE (config/settings.py): each lease transaction holds the database's write lock, which
serialises them. A candidate that is fully leased carries ``full_until`` (the earliest expiry among
its live leases), so the queue query skips it without counting leases; once that time passes, the
re-check under the lock sees the expired lease no longer counts and the slot is served again.

A rater never gets a pair they already judged (in either order), nor one they skipped or hold.
Left and right are randomised per lease and recorded (``Comparison.image_a`` is the left image), so
that position bias can be measured.
"""
from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Iterable, Iterator

import psycopg
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from labeling.models import (
    Comparison,
    GoldPair,
    Image,
    ImageStats,
    ImageTag,
    PairCandidate,
    PairLease,
    Project,
    Tag,
)
from labeling.services.refusals import Refusal

# The fallback looks at the images with the fewest comparisons: first a small pool, then a larger one.
# A project no bigger than the last pool is searched exhaustively, so "nothing to rate" is exact there.
FALLBACK_POOL_SIZES = (64, 512)
# Lock attempts per request before giving up on a source (each attempt is one short transaction).
QUEUE_ATTEMPTS = 4
FALLBACK_ATTEMPTS = 24

_random = random.SystemRandom()


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


def ordered(first_id: int, second_id: int) -> tuple[int, int]:
    return (first_id, second_id) if first_id < second_id else (second_id, first_id)


def blocking_leases(now: datetime) -> Q:
    """Leases that keep their rater from being served the same pair again."""
    return Q(state__in=[PairLease.State.JUDGED, PairLease.State.SKIPPED]) | Q(
        state=PairLease.State.LIVE, expires_at__gt=now
    )


# --- Hot-path SQL ----------------------------------------------------------------------------------
# The rating loop runs these few statements on every request. They are plain parameterised SQL because
# building the equivalent ORM querysets costs about a millisecond of CPU each on a small server, several
# times what the database needs to answer them. The SQL is the same on PostgreSQL and SQLite, except
# for the row locks (``FOR UPDATE SKIP LOCKED``), which SQLite neither has nor needs (see above).
# Everything else in this module uses the ORM.

CANDIDATES = PairCandidate._meta.db_table
LEASES = PairLease._meta.db_table
COMPARISONS = Comparison._meta.db_table
STATS = ImageStats._meta.db_table
IMAGES = Image._meta.db_table
LIVE, JUDGED, SKIPPED = PairLease.State.LIVE.value, PairLease.State.JUDGED.value, PairLease.State.SKIPPED.value

# A lease of this rater on candidate c (alias l) that bars the rater from being served c again.
_RATER_BARRED = f"(l.state IN ('{JUDGED}', '{SKIPPED}') OR (l.state = '{LIVE}' AND l.expires_at > %s))"
# The project's archived images (partial index ``image_archived``: a handful of rows, usually none).
_ARCHIVED = f"(SELECT x.id FROM {IMAGES} x WHERE x.project_id = %s AND x.archived_at IS NOT NULL)"


def _rows(sql: str, params) -> list[tuple]:
    """Run one hot-path statement. On PostgreSQL it is prepared on the server (planned once per connection;
    Django's own cursors bind parameters on the client, so PostgreSQL would plan it on every request).
    A pooler in transaction mode (PgBouncer before 1.21) would need prepared statements turned off here."""
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else []
    connection.ensure_connection()  # the same connection, so the same transaction as the ORM's
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, prepare=True)
        return cursor.fetchall() if cursor.description else []


def _lock(skip_locked: bool = True) -> str:
    if not connection.features.has_select_for_update:
        return ""  # SQLite: the IMMEDIATE transaction already holds the database's write lock
    return " FOR UPDATE SKIP LOCKED" if skip_locked else " FOR UPDATE"


def _db_time(value: datetime):
    return connection.ops.adapt_datetimefield_value(value)


def _from_db_time(value) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    parsed = parse_datetime(value)  # SQLite returns text; Django stores it as naive UTC
    return timezone.make_aware(parsed, dt_timezone.utc) if timezone.is_naive(parsed) else parsed


def _marks(values) -> str:
    return ", ".join(["%s"] * len(values))


def _queue_candidate(project: Project, rater, now: datetime, passed_over: list[int]) -> tuple | None:
    """(id, low image, high image) of the open candidate this rater may be served, best first, locked.

    An index scan of the open queue (``paircandidate_queue``) that skips candidates fully leased, locked
    by another request, or that the rater judged (either order), skipped or holds."""
    t = _db_time(now)
    passed = f" AND c.id NOT IN ({_marks(passed_over)})" if passed_over else ""
    rows = _rows(
        f"""SELECT c.id, c.image_low_id, c.image_high_id FROM {CANDIDATES} c
            WHERE c.project_id = %s AND c.is_open AND (c.full_until IS NULL OR c.full_until <= %s)
              AND NOT EXISTS (SELECT 1 FROM {LEASES} l
                              WHERE l.candidate_id = c.id AND l.rater_id = %s AND {_RATER_BARRED})
              AND NOT EXISTS (SELECT 1 FROM {COMPARISONS} m WHERE m.rater_id = %s
                              AND m.image_a_id = c.image_low_id AND m.image_b_id = c.image_high_id)
              AND NOT EXISTS (SELECT 1 FROM {COMPARISONS} m WHERE m.rater_id = %s
                              AND m.image_a_id = c.image_high_id AND m.image_b_id = c.image_low_id){passed}
              AND c.image_low_id NOT IN {_ARCHIVED} AND c.image_high_id NOT IN {_ARCHIVED}
            ORDER BY c.priority DESC, c.id LIMIT 1{_lock()}""",
        [project.pk, t, rater.pk, t, rater.pk, rater.pk, *passed_over, project.pk, project.pk],
    )
    return rows[0] if rows else None


def _slots(project: Project, candidate_id: int, low: int, high: int, rater_id, now: datetime) -> tuple:
    """Counted afresh, in one round trip: (judgments of the pair in either order, of them by the rater,
    live leases, the earliest live lease's expiry, the rater's leases that bar them from the pair)."""
    t = _db_time(now)
    pair = "((image_a_id = %s AND image_b_id = %s) OR (image_a_id = %s AND image_b_id = %s))"
    judged, by_rater, live, earliest, barred = _rows(
        f"""SELECT
              (SELECT COUNT(*) FROM {COMPARISONS} WHERE project_id = %s AND {pair}),
              (SELECT COUNT(*) FROM {COMPARISONS} WHERE rater_id = %s AND {pair}),
              (SELECT COUNT(*) FROM {LEASES} WHERE candidate_id = %s AND state = '{LIVE}' AND expires_at > %s),
              (SELECT MIN(expires_at) FROM {LEASES} WHERE candidate_id = %s AND state = '{LIVE}' AND expires_at > %s),
              (SELECT COUNT(*) FROM {LEASES} l WHERE l.candidate_id = %s AND l.rater_id = %s AND {_RATER_BARRED})""",
        [project.pk, low, high, high, low, rater_id, low, high, high, low,
         candidate_id, t, candidate_id, t, candidate_id, rater_id, t],
    )[0]
    return judged, by_rater, live, _from_db_time(earliest), barred


def _store_slots(candidate_id: int, judged: int, live: int, earliest: datetime | None, overlap: int) -> None:
    """Write what the queue query needs to know about a candidate's slots."""
    is_open = judged < overlap
    full_until = earliest if is_open and judged + live >= overlap else None
    _rows(
        f"UPDATE {CANDIDATES} SET judgments = %s, is_open = %s, full_until = %s, updated_at = %s WHERE id = %s",
        [judged, is_open, _db_time(full_until) if full_until else None, _db_time(timezone.now()), candidate_id],
    )


def _fewest_compared_rows(project: Project, limit: int) -> list[tuple[int, int]]:
    return _rows(
        f"SELECT image_id, comparison_count FROM {STATS} WHERE project_id = %s AND image_id NOT IN {_ARCHIVED} "
        "ORDER BY comparison_count, image_id LIMIT %s",
        [project.pk, project.pk, limit],
    )


def _in(column: str, values: list[int]) -> tuple[str, list]:
    """``column`` in ``values``: one array parameter on PostgreSQL (short SQL, cheap to parse and plan),
    a list of placeholders elsewhere."""
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s)", [list(values)]
    return f"{column} IN ({_marks(values)})", list(values)


def _blocked_pairs(project: Project, rater, ids: list[int], now: datetime) -> set[tuple[int, int]]:
    """Pairs within ``ids`` that this rater may not be served right now: judged by them, skipped or held
    by them, or done or fully leased for everyone (one snapshot, one round trip)."""
    t = _db_time(now)
    a_in, a_params = _in("image_a_id", ids)
    b_in, b_params = _in("image_b_id", ids)
    low_in, low_params = _in("image_low_id", ids)
    high_in, high_params = _in("image_high_id", ids)
    rows = _rows(
        f"""SELECT image_a_id, image_b_id FROM {COMPARISONS}
              WHERE rater_id = %s AND {a_in} AND {b_in}
            UNION ALL
            SELECT image_a_id, image_b_id FROM {LEASES} l
              WHERE l.rater_id = %s AND l.project_id = %s AND {a_in} AND {b_in} AND {_RATER_BARRED}
            UNION ALL
            SELECT image_low_id, image_high_id FROM {CANDIDATES}
              WHERE project_id = %s AND {low_in} AND {high_in} AND (NOT is_open OR full_until > %s)""",
        [rater.pk, *a_params, *b_params, rater.pk, project.pk, *a_params, *b_params, t,
         project.pk, *low_params, *high_params, t],
    )
    return {ordered(a, b) for a, b in rows}


def _insert_and_lock_candidate(project: Project, low: int, high: int, now: datetime) -> tuple | None:
    """The pair's candidate row, created if missing, locked; None when another request holds it."""
    t = _db_time(now)
    _rows(
        f"""INSERT INTO {CANDIDATES}
              (project_id, image_low_id, image_high_id, priority, source, judgments, is_open, full_until,
               created_at, updated_at)
            VALUES (%s, %s, %s, 0, %s, 0, %s, NULL, %s, %s)
            ON CONFLICT (project_id, image_low_id, image_high_id) DO NOTHING""",
        [project.pk, low, high, PairCandidate.Source.FALLBACK.value, True, t, t],
    )
    rows = _rows(
        f"SELECT id, image_low_id, image_high_id FROM {CANDIDATES} "
        f"WHERE project_id = %s AND image_low_id = %s AND image_high_id = %s{_lock()}",
        [project.pk, low, high],
    )
    return rows[0] if rows else None


# --- next_pair -------------------------------------------------------------------------------------


def next_pair(project: Project, rater, *, rng: random.Random | None = None):
    """The next pair for ``rater``: ``((left image, right image), lease)``, or None when nothing is left.

    A rater holds at most TAGRANK_MAX_LIVE_LEASES live leases in a project (0: no cap): past that, the
    oldest live one is handed back instead of a new pair, so one client cannot hoard the queue."""
    rng = rng or _random
    if project.archived_at is not None:
        return None
    held = held_lease(project, rater)
    if held is not None:
        attach_images(held)
        return held.pair, held
    lease = None
    if project.gold_rate > 0 and rng.random() < project.gold_rate:
        lease = lease_gold_pair(project, rater, rng=rng)
    if lease is None:
        lease = lease_from_queue(project, rater, rng=rng)
    if lease is None:
        lease = lease_from_fallback(project, rater, rng=rng)
    if lease is None:
        return None
    held = held_lease(project, rater, just_leased=lease)
    if held is not None:  # concurrent requests of this rater went past the cap: give the new slot back
        _release_one(project, lease)
        lease = held
    attach_images(lease)
    return lease.pair, lease


def max_live_leases() -> int:
    return int(getattr(settings, "TAGRANK_MAX_LIVE_LEASES", 0) or 0)


def held_lease(project: Project, rater, *, just_leased: PairLease | None = None) -> PairLease | None:
    """The rater's oldest live lease in the project when they hold the cap (counting ``just_leased``)."""
    cap = max_live_leases()
    if cap <= 0:
        return None
    live = list(
        PairLease.objects.filter(
            project=project, rater=rater, state=PairLease.State.LIVE, expires_at__gt=timezone.now()
        ).order_by("created_at", "id")[: cap + 1]
    )
    allowed = cap + 1 if just_leased is not None else cap  # the new lease itself is among the live ones
    if len(live) < allowed:
        return None
    return next(held for held in live if just_leased is None or held.pk != just_leased.pk)


def _release_one(project: Project, lease: PairLease) -> None:
    with transaction.atomic():
        PairLease.objects.filter(pk=lease.pk, state=PairLease.State.LIVE).update(state=PairLease.State.RELEASED)
        refresh_candidate(lease.candidate_id, project)


def attach_images(lease: PairLease) -> PairLease:
    """Load both images of a lease in one query (instead of one per side)."""
    images = {
        image.pk: image
        for image in Image.objects.raw(
            f"SELECT * FROM {Image._meta.db_table} WHERE id IN (%s, %s)", [lease.image_a_id, lease.image_b_id]
        )
    }
    lease.image_a, lease.image_b = images[lease.image_a_id], images[lease.image_b_id]
    return lease


def _lease_writes_need_no_flush() -> None:
    """Inside a lease transaction on PostgreSQL: commit without waiting for the WAL flush (a few ms of
    fsync per request). A lease lost in a crash costs nothing (it would have expired; the pair is served
    again), whereas judgments, stored by the submit service, keep the full synchronous commit."""
    if connection.vendor == "postgresql":
        _rows("SET LOCAL synchronous_commit TO OFF", [])


def new_lease(project, rater, left_id: int, right_id: int, now: datetime, **links) -> PairLease:
    return PairLease.objects.create(
        token=uuid.uuid4(),
        project=project,
        rater=rater,
        image_a_id=left_id,
        image_b_id=right_id,
        expires_at=now + timedelta(seconds=lease_seconds()),
        **links,
    )


def _left_right(first, second, rng) -> tuple:
    return (first, second) if rng.random() < 0.5 else (second, first)


def lease_from_queue(project: Project, rater, *, rng=None) -> PairLease | None:
    rng = rng or _random
    passed_over: list[int] = []
    for _ in range(QUEUE_ATTEMPTS):
        now = timezone.now()
        with transaction.atomic():
            row = _queue_candidate(project, rater, now, passed_over)
            if row is None:
                return None
            _lease_writes_need_no_flush()
            lease = _lease_locked_candidate(project, rater, row, now, rng)
        if lease is not None:
            return lease
        passed_over.append(row[0])
    return None


def _lease_locked_candidate(project, rater, row: tuple, now, rng) -> PairLease | None:
    """Lease one slot of the candidate ``row`` (locked by the caller) after re-checking it under the lock."""
    candidate_id, low, high = row
    judged, judged_by_rater, live, earliest, barred = _slots(project, candidate_id, low, high, rater.pk, now)
    if judged + live >= project.overlap:
        _store_slots(candidate_id, judged, live, earliest, project.overlap)
        return None
    if judged_by_rater or barred:
        return None
    left, right = _left_right(low, high, rng)
    lease = new_lease(project, rater, left, right, now, candidate_id=candidate_id)
    earliest = min(earliest, lease.expires_at) if earliest else lease.expires_at
    _store_slots(candidate_id, judged, live + 1, earliest, project.overlap)
    return lease


def refresh_candidate(candidate_id: int | None, project: Project) -> None:
    """Recount a candidate's slots after a lease ended or a judgment came or went (locks the row)."""
    if candidate_id is None:
        return
    rows = _rows(f"SELECT id, image_low_id, image_high_id FROM {CANDIDATES} WHERE id = %s{_lock(skip_locked=False)}",
                 [candidate_id])
    if not rows:
        return
    _, low, high = rows[0]
    judged, _, live, earliest, _ = _slots(project, candidate_id, low, high, None, timezone.now())
    _store_slots(candidate_id, judged, live, earliest, project.overlap)


# --- Fallback: fewest comparisons, random partners ------------------------------------------------


def lease_from_fallback(project: Project, rater, *, rng=None) -> PairLease | None:
    rng = rng or _random
    attempts = 0
    for pool_size in FALLBACK_POOL_SIZES:
        pool = fewest_compared(project, pool_size)
        if len(pool) < 2:
            return None
        blocked = _blocked_pairs(project, rater, [image_id for image_id, _ in pool], timezone.now())
        for low, high in _pairs_fewest_first(pool, rng):
            if (low, high) in blocked:
                continue
            lease = _lease_pair(project, rater, low, high, rng)
            if lease is not None:
                return lease
            attempts += 1
            if attempts >= FALLBACK_ATTEMPTS:
                return None
        if len(pool) < pool_size:
            return None  # the pool was the whole project, searched exhaustively
    return None


def fewest_compared(project: Project, limit: int) -> list[tuple[int, int]]:
    """(image id, comparison count) of the ``limit`` images with the fewest comparisons."""
    pool = _fewest_compared_rows(project, limit)
    if len(pool) < limit and recount_image_stats(project, only_missing=True):
        pool = _fewest_compared_rows(project, limit)  # images written in bulk had no counters yet
    return pool


def _pairs_fewest_first(pool: list[tuple[int, int]], rng) -> Iterator[tuple[int, int]]:
    """Pairs of the pool: first images by fewest comparisons (ties in random order), partners at random."""
    firsts = sorted(pool, key=lambda row: (row[1], rng.random()))
    ids = [image_id for image_id, _ in pool]
    for first, _ in firsts:
        partners = ids[:]
        rng.shuffle(partners)
        for partner in partners:
            if partner != first:
                yield ordered(first, partner)


def _lease_pair(project: Project, rater, low: int, high: int, rng) -> PairLease | None:
    # One transaction per attempt, touching one candidate row: it may wait on another request's insert of
    # the same pair (the unique index), but never while holding a lock that request needs, so no deadlock.
    now = timezone.now()
    with transaction.atomic():
        _lease_writes_need_no_flush()
        row = _insert_and_lock_candidate(project, low, high, now)
        if row is None:
            return None  # another request holds it right now
        return _lease_locked_candidate(project, rater, row, now, rng)


# --- Gold pairs ------------------------------------------------------------------------------------


def lease_gold_pair(project: Project, rater, *, rng=None) -> PairLease | None:
    """A gold pair this rater has not seen yet. Gold pairs have no overlap limit: every rater gets each."""
    rng = rng or _random
    now = timezone.now()
    judged = Comparison.objects.filter(rater=rater)
    available = list(
        GoldPair.objects.filter(project=project, is_active=True, image_a__archived_at=None, image_b__archived_at=None)
        .exclude(Exists(PairLease.objects.filter(rater=rater, gold=OuterRef("pk")).filter(blocking_leases(now))))
        .exclude(Exists(judged.filter(image_a=OuterRef("image_a"), image_b=OuterRef("image_b"))))
        .exclude(Exists(judged.filter(image_a=OuterRef("image_b"), image_b=OuterRef("image_a"))))
        .values_list("pk", flat=True)[:500]
    )
    if not available:
        return None
    gold = GoldPair.objects.get(pk=rng.choice(available))
    left, right = _left_right(gold.image_a_id, gold.image_b_id, rng)
    with transaction.atomic():
        _lease_writes_need_no_flush()
        return new_lease(project, rater, left, right, now, gold=gold)


# --- Ending leases ---------------------------------------------------------------------------------


def lock_lease(project: Project, rater, token) -> PairLease:
    """The caller's lease, locked for update, or a LeaseError saying why it cannot be used.

    The lease carries ``image_a_project_id`` and ``image_b_project_id``: the projects of its images."""
    try:
        token = token if isinstance(token, uuid.UUID) else uuid.UUID(str(token))
    except (TypeError, ValueError):
        raise LeaseUnknown("The lease is not a valid lease token.") from None
    # Hot path (every judgment): one raw query for the lease and its images' projects, locked.
    images = Image._meta.db_table
    token_value = PairLease._meta.get_field("token").get_db_prep_value(token, connection)
    lock = " FOR UPDATE OF l" if connection.features.has_select_for_update_of else ""
    lease = next(
        iter(
            PairLease.objects.raw(
                f"""SELECT l.*, a.project_id AS image_a_project_id, b.project_id AS image_b_project_id
                    FROM {LEASES} l JOIN {images} a ON a.id = l.image_a_id JOIN {images} b ON b.id = l.image_b_id
                    WHERE l.token = %s{lock}""",
                [token_value],
            )
        ),
        None,
    )
    if lease is None:
        raise LeaseUnknown("Unknown lease: ask for a new pair.")
    if lease.rater_id != rater.pk:
        raise LeaseForeign("This lease was handed to another rater.")
    if lease.project_id != project.pk:
        raise LeaseWrongProject("This lease belongs to another project.")
    return lease


def mark_lease_judged(lease_id: int, comparison_id: int) -> None:
    """In the submit transaction (hot path: one prepared statement instead of a model save)."""
    _rows(f"UPDATE {LEASES} SET state = %s, comparison_id = %s WHERE id = %s", [JUDGED, comparison_id, lease_id])


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


# --- The queue, for active selection -------------------------------------------------------------


def enqueue_pairs(
    project: Project,
    scored_pairs: Iterable[tuple[int, int, float]],
    *,
    source: str = PairCandidate.Source.ACTIVE,
    replace: bool = False,
) -> int:
    """Put (image id, image id, priority) pairs in the project's queue; existing rows get the new priority.

    With ``replace``, open rows of the same source that are not in this batch and were never leased are
    dropped, so that a refill replaces the previous selection. Returns the number of pairs written.
    """
    rows = {}
    for first, second, priority in scored_pairs:
        if first == second:
            continue
        rows[ordered(int(first), int(second))] = float(priority)
    started = timezone.now()
    with transaction.atomic():
        PairCandidate.objects.bulk_create(
            [
                PairCandidate(project=project, image_low_id=low, image_high_id=high, priority=priority, source=source)
                for (low, high), priority in rows.items()
            ],
            batch_size=1000,
            update_conflicts=True,
            unique_fields=["project", "image_low", "image_high"],
            update_fields=["priority", "source", "updated_at"],
        )
        if replace:
            # Rows this batch wrote have a fresh updated_at; older untouched, never-leased rows go.
            PairCandidate.objects.filter(
                project=project, source=source, is_open=True, judgments=0, updated_at__lt=started
            ).exclude(Exists(PairLease.objects.filter(candidate=OuterRef("pk")))).delete()
    return len(rows)


def open_queue_size(project: Project) -> int:
    """Open candidates in the queue: how a refill task decides whether it is time to refill."""
    return PairCandidate.objects.filter(project=project, is_open=True).count()


def reopen_for_overlap(project: Project) -> None:
    """After the project's overlap changed: reopen pairs that now want more judgments, close the rest."""
    PairCandidate.objects.filter(project=project, judgments__lt=project.overlap, is_open=False).update(
        is_open=True, full_until=None
    )
    PairCandidate.objects.filter(project=project, judgments__gte=project.overlap, is_open=True).update(
        is_open=False, full_until=None
    )


# --- Counters ------------------------------------------------------------------------------------


def recount_image_stats(project: Project, *, only_missing: bool = False) -> int:
    """(Re)build the per-image comparison counters from the comparisons, e.g. after a bulk load.

    Returns the number of images whose row was written.
    """
    images = Image.objects.filter(project=project)
    if only_missing:
        images = images.filter(stats__isnull=True)
        if not images.exists():
            return 0
    counts: dict[int, int] = {}
    for field in ("image_a", "image_b"):
        for image_id, n in (
            Comparison.objects.filter(project=project).values_list(field).annotate(n=Count("id")).order_by()
        ):
            counts[image_id] = counts.get(image_id, 0) + n
    written = 0
    batch: list[ImageStats] = []

    def flush():
        ImageStats.objects.bulk_create(
            batch,
            batch_size=2000,
            update_conflicts=not only_missing,
            unique_fields=["image"] if not only_missing else None,
            update_fields=["comparison_count"] if not only_missing else None,
            ignore_conflicts=only_missing,
        )

    for image_id in list(images.values_list("id", flat=True)):
        batch.append(ImageStats(image_id=image_id, project=project, comparison_count=counts.get(image_id, 0)))
        if len(batch) >= 2000:
            flush()
            written += len(batch)
            batch = []
    if batch:
        flush()
        written += len(batch)
    return written


# --- What the API and page show ------------------------------------------------------------------


def tags_by_image(image_ids: Iterable[int]) -> dict[int, list[str]]:
    """Tag names of each image, sorted (one query; raw, as it runs on every pair served)."""
    names: dict[int, list[str]] = {image_id: [] for image_id in image_ids}
    if not names:
        return names
    ids_in, params = _in("it.image_id", list(names))
    for image_id, name in _rows(
        f"SELECT it.image_id, t.name FROM {ImageTag._meta.db_table} it "
        f"JOIN {Tag._meta.db_table} t ON t.id = it.tag_id WHERE {ids_in} ORDER BY t.name",
        params,
    ):
        names[image_id].append(name)
    return names


def pairs_remaining(project: Project) -> dict[str, int]:
    """What is left to judge in the queue, for the progress page (cheap counts)."""
    now = timezone.now()
    open_rows = PairCandidate.objects.filter(project=project, is_open=True)
    return {
        "queued_pairs": open_rows.count(),
        "fully_leased": open_rows.filter(full_until__gt=now).count(),
        "images_never_compared": ImageStats.objects.filter(project=project, comparison_count=0).count(),
        "live_leases": PairLease.objects.filter(
            project=project, state=PairLease.State.LIVE, expires_at__gt=now
        ).count(),
    }

