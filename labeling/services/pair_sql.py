"""The hot-path SQL of pair serving: the few statements the rating loop runs on every request.

They are plain parameterised SQL because building the equivalent ORM querysets costs about a millisecond
of CPU each on a small server, several times what the database needs to answer them. The SQL is the same
on PostgreSQL and SQLite, except for the row locks (``FOR UPDATE SKIP LOCKED``), which SQLite neither has
nor needs (its transactions are IMMEDIATE: see ``labeling/services/pair_serving.py``). Everything else
in pair serving uses the ORM.
"""
from __future__ import annotations

from datetime import datetime
from datetime import timezone as dt_timezone

import psycopg
from django.db import connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from labeling.models import Comparison, Image, ImageStats, PairCandidate, PairLease, Project

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


def ordered(first_id: int, second_id: int) -> tuple[int, int]:
    """A pair as the queue keys it: (lower image id, higher image id)."""
    return (first_id, second_id) if first_id < second_id else (second_id, first_id)


def execute(sql: str, params) -> list[tuple]:
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


def lock_clause(skip_locked: bool = True) -> str:
    if not connection.features.has_select_for_update:
        return ""  # SQLite: the IMMEDIATE transaction already holds the database's write lock
    return " FOR UPDATE SKIP LOCKED" if skip_locked else " FOR UPDATE"


def db_time(value: datetime):
    return connection.ops.adapt_datetimefield_value(value)


def from_db_time(value) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    parsed = parse_datetime(value)  # SQLite returns text; Django stores it as naive UTC
    return timezone.make_aware(parsed, dt_timezone.utc) if timezone.is_naive(parsed) else parsed


def _marks(values) -> str:
    return ", ".join(["%s"] * len(values))


def queue_candidate(project: Project, rater, now: datetime, passed_over: list[int]) -> tuple | None:
    """(id, low image, high image) of the open candidate this rater may be served, best first, locked.

    An index scan of the open queue (``paircandidate_queue``) that skips candidates fully leased, locked
    by another request, or that the rater judged (either order), skipped or holds."""
    t = db_time(now)
    passed = f" AND c.id NOT IN ({_marks(passed_over)})" if passed_over else ""
    rows = execute(
        f"""SELECT c.id, c.image_low_id, c.image_high_id FROM {CANDIDATES} c
            WHERE c.project_id = %s AND c.is_open AND (c.full_until IS NULL OR c.full_until <= %s)
              AND NOT EXISTS (SELECT 1 FROM {LEASES} l
                              WHERE l.candidate_id = c.id AND l.rater_id = %s AND {_RATER_BARRED})
              AND NOT EXISTS (SELECT 1 FROM {COMPARISONS} m WHERE m.rater_id = %s
                              AND m.image_a_id = c.image_low_id AND m.image_b_id = c.image_high_id)
              AND NOT EXISTS (SELECT 1 FROM {COMPARISONS} m WHERE m.rater_id = %s
                              AND m.image_a_id = c.image_high_id AND m.image_b_id = c.image_low_id){passed}
              AND c.image_low_id NOT IN {_ARCHIVED} AND c.image_high_id NOT IN {_ARCHIVED}
            ORDER BY c.priority DESC, c.id LIMIT 1{lock_clause()}""",
        [project.pk, t, rater.pk, t, rater.pk, rater.pk, *passed_over, project.pk, project.pk],
    )
    return rows[0] if rows else None


def slots(project: Project, candidate_id: int, low: int, high: int, rater_id, now: datetime) -> tuple:
    """Counted afresh, in one round trip: (judgments of the pair in either order, of them by the rater,
    live leases, the earliest live lease's expiry, the rater's leases that bar them from the pair)."""
    t = db_time(now)
    pair = "((image_a_id = %s AND image_b_id = %s) OR (image_a_id = %s AND image_b_id = %s))"
    judged, by_rater, live, earliest, barred = execute(
        f"""SELECT
              (SELECT COUNT(*) FROM {COMPARISONS} WHERE project_id = %s AND {pair}),
              (SELECT COUNT(*) FROM {COMPARISONS} WHERE rater_id = %s AND {pair}),
              (SELECT COUNT(*) FROM {LEASES} WHERE candidate_id = %s AND state = '{LIVE}' AND expires_at > %s),
              (SELECT MIN(expires_at) FROM {LEASES} WHERE candidate_id = %s AND state = '{LIVE}' AND expires_at > %s),
              (SELECT COUNT(*) FROM {LEASES} l WHERE l.candidate_id = %s AND l.rater_id = %s AND {_RATER_BARRED})""",
        [project.pk, low, high, high, low, rater_id, low, high, high, low,
         candidate_id, t, candidate_id, t, candidate_id, rater_id, t],
    )[0]
    return judged, by_rater, live, from_db_time(earliest), barred


def store_slots(candidate_id: int, judged: int, live: int, earliest: datetime | None, overlap: int) -> None:
    """Write what the queue query needs to know about a candidate's slots."""
    is_open = judged < overlap
    full_until = earliest if is_open and judged + live >= overlap else None
    execute(
        f"UPDATE {CANDIDATES} SET judgments = %s, is_open = %s, full_until = %s, updated_at = %s WHERE id = %s",
        [judged, is_open, db_time(full_until) if full_until else None, db_time(timezone.now()), candidate_id],
    )


def fewest_compared_rows(project: Project, limit: int) -> list[tuple[int, int]]:
    return execute(
        f"SELECT image_id, comparison_count FROM {STATS} WHERE project_id = %s AND image_id NOT IN {_ARCHIVED} "
        "ORDER BY comparison_count, image_id LIMIT %s",
        [project.pk, project.pk, limit],
    )


def in_clause(column: str, values: list[int]) -> tuple[str, list]:
    """``column`` in ``values``: one array parameter on PostgreSQL (short SQL, cheap to parse and plan),
    a list of placeholders elsewhere."""
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s)", [list(values)]
    return f"{column} IN ({_marks(values)})", list(values)


def blocked_pairs(project: Project, rater, ids: list[int], now: datetime) -> set[tuple[int, int]]:
    """Pairs within ``ids`` that this rater may not be served right now: judged by them, skipped or held
    by them, or done or fully leased for everyone (one snapshot, one round trip)."""
    t = db_time(now)
    a_in, a_params = in_clause("image_a_id", ids)
    b_in, b_params = in_clause("image_b_id", ids)
    low_in, low_params = in_clause("image_low_id", ids)
    high_in, high_params = in_clause("image_high_id", ids)
    rows = execute(
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


def insert_and_lock_candidate(project: Project, low: int, high: int, now: datetime) -> tuple | None:
    """The pair's candidate row, created if missing, locked; None when another request holds it."""
    t = db_time(now)
    execute(
        f"""INSERT INTO {CANDIDATES}
              (project_id, image_low_id, image_high_id, priority, source, judgments, is_open, full_until,
               created_at, updated_at)
            VALUES (%s, %s, %s, 0, %s, 0, %s, NULL, %s, %s)
            ON CONFLICT (project_id, image_low_id, image_high_id) DO NOTHING""",
        [project.pk, low, high, PairCandidate.Source.FALLBACK.value, True, t, t],
    )
    rows = execute(
        f"SELECT id, image_low_id, image_high_id FROM {CANDIDATES} "
        f"WHERE project_id = %s AND image_low_id = %s AND image_high_id = %s{lock_clause()}",
        [project.pk, low, high],
    )
    return rows[0] if rows else None
