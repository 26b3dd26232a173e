"""The hot-path SQL of pair serving: the few statements the rating loop runs on every request.

They are plain parameterised SQL because building the equivalent ORM querysets costs about a millisecond
of CPU each on a small server, several times what the database needs to answer them. The SQL is the same
on PostgreSQL and SQLite, except for the row locks (``FOR UPDATE SKIP LOCKED``), which SQLite neither has
nor needs (its transactions are IMMEDIATE: see ``labeling/services/pair_serving.py``). Everything else
in pair serving uses the ORM. The statements run through ``prepared_sql.execute``.
"""
from __future__ import annotations

import json
from datetime import datetime

from django.db import connection
from django.utils import timezone

from core import prepared_sql
from core.prepared_sql import db_time, from_db_time
from labeling.models import Comparison, Image, ImageStats, ImageTag, PairCandidate, PairLease, Project, Tag
from labeling.services.comparison_groups import sql_metadata_text

CANDIDATES = PairCandidate._meta.db_table
LEASES = PairLease._meta.db_table
COMPARISONS = Comparison._meta.db_table
STATS = ImageStats._meta.db_table
IMAGES = Image._meta.db_table
IMAGE_TAGS = ImageTag._meta.db_table
TAGS = Tag._meta.db_table
LIVE, JUDGED, SKIPPED = PairLease.State.LIVE.value, PairLease.State.JUDGED.value, PairLease.State.SKIPPED.value

# A lease of this rater on candidate c (alias l) that bars the rater from being served c again.
_RATER_BARRED = f"(l.state IN ('{JUDGED}', '{SKIPPED}') OR (l.state = '{LIVE}' AND l.expires_at > %s))"
# The project's archived images (partial index ``image_archived``: a handful of rows, usually none).
_ARCHIVED = f"(SELECT x.id FROM {IMAGES} x WHERE x.project_id = %s AND x.archived_at IS NOT NULL)"


# Selected with the candidate a lease is made from, so that no extra round trip is spent on it: that lease
# transaction commits without waiting for the WAL flush (a few ms of fsync per request). A lease lost in a
# crash costs nothing (it would have expired, and the pair is served again); judgments, stored by the
# submit service, keep the full synchronous commit. SQLite has no such setting.
NO_FLUSH = ", set_config('synchronous_commit', 'off', true)" if connection.vendor == "postgresql" else ""


def ordered(first_id: int, second_id: int) -> tuple[int, int]:
    """A pair as the queue keys it: (lower image id, higher image id)."""
    return (first_id, second_id) if first_id < second_id else (second_id, first_id)


def lock_clause(skip_locked: bool = True) -> str:
    if not connection.features.has_select_for_update:
        return ""  # SQLite: the IMMEDIATE transaction already holds the database's write lock
    return " FOR UPDATE SKIP LOCKED" if skip_locked else " FOR UPDATE"


def _marks(values) -> str:
    return ", ".join(["%s"] * len(values))


def queue_candidate(project: Project, rater, now: datetime, passed_over: list[int]) -> tuple | None:
    """(id, low image, high image) of the open candidate this rater may be served, best first, locked.

    An index scan of the open queue (``paircandidate_queue``) that skips candidates fully leased, locked
    by another request, or that the rater judged (either order), skipped or holds."""
    t = db_time(now)
    passed = f" AND c.id NOT IN ({_marks(passed_over)})" if passed_over else ""
    same_group, group_params = _same_group_clause(project)
    rows = prepared_sql.execute(
        f"""SELECT c.id, c.image_low_id, c.image_high_id{NO_FLUSH} FROM {CANDIDATES} c
            WHERE c.project_id = %s AND c.is_open AND (c.full_until IS NULL OR c.full_until <= %s)
              AND NOT EXISTS (SELECT 1 FROM {LEASES} l
                              WHERE l.candidate_id = c.id AND l.rater_id = %s AND {_RATER_BARRED})
              AND NOT EXISTS (SELECT 1 FROM {COMPARISONS} m WHERE m.rater_id = %s
                              AND m.image_a_id = c.image_low_id AND m.image_b_id = c.image_high_id)
              AND NOT EXISTS (SELECT 1 FROM {COMPARISONS} m WHERE m.rater_id = %s
                              AND m.image_a_id = c.image_high_id AND m.image_b_id = c.image_low_id){passed}
              AND c.image_low_id NOT IN {_ARCHIVED} AND c.image_high_id NOT IN {_ARCHIVED}{same_group}
            ORDER BY c.priority DESC, c.id LIMIT 1{lock_clause()}""",
        [project.pk, t, rater.pk, t, rater.pk, rater.pk, *passed_over, project.pk, project.pk, *group_params],
    )
    return rows[0][:3] if rows else None


def _same_group_clause(project: Project) -> tuple[str, list]:
    """In a grouped project, the queue serves only candidates whose two images share a group (rows written
    before the key was set or changed stay in the table and are passed over)."""
    if not project.group_key:
        return "", []
    low, low_params = sql_metadata_text("x", project.group_key)
    high, high_params = sql_metadata_text("y", project.group_key)
    return (
        f"""
              AND EXISTS (SELECT 1 FROM {IMAGES} x, {IMAGES} y WHERE x.id = c.image_low_id AND y.id = c.image_high_id
                          AND {low} <> '' AND {low} = {high})""",
        [*low_params, *low_params, *high_params],
    )


def slots(project: Project, candidate_id: int, low: int, high: int, rater_id, now: datetime) -> tuple:
    """Counted afresh, in one round trip: (judgments of the pair in either order, of them by the rater,
    live leases, the earliest live lease's expiry, the rater's leases that bar them from the pair)."""
    t = db_time(now)
    pair = "((image_a_id = %s AND image_b_id = %s) OR (image_a_id = %s AND image_b_id = %s))"
    judged, by_rater, live, earliest, barred = prepared_sql.execute(
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
    prepared_sql.execute(
        f"UPDATE {CANDIDATES} SET judgments = %s, is_open = %s, full_until = %s, updated_at = %s WHERE id = %s",
        [judged, is_open, db_time(full_until) if full_until else None, db_time(timezone.now()), candidate_id],
    )


def fewest_compared_rows(project: Project, limit: int) -> list[tuple[int, int]]:
    return prepared_sql.execute(
        f"SELECT image_id, comparison_count FROM {STATS} WHERE project_id = %s AND image_id NOT IN {_ARCHIVED} "
        "ORDER BY comparison_count, image_id LIMIT %s",
        [project.pk, project.pk, limit],
    )


def fewest_compared_grouped_rows(project: Project, limit: int | None) -> list[tuple[int, int, str]]:
    """(image id, comparison count, group) of the ``limit`` least compared images that have a group (all when
    ``limit`` is None). Images written in bulk without counters count as never compared."""
    group, params = sql_metadata_text("i", project.group_key)
    rows = prepared_sql.execute(
        f"""SELECT i.id, COALESCE(s.comparison_count, 0) AS n, {group} AS g FROM {IMAGES} i
              LEFT JOIN {STATS} s ON s.image_id = i.id
            WHERE i.project_id = %s AND i.archived_at IS NULL AND {group} IS NOT NULL AND {group} <> ''
            ORDER BY n, i.id{" LIMIT %s" if limit is not None else ""}""",
        [*params, project.pk, *params, *params, *([limit] if limit is not None else [])],
    )
    return [(int(image_id), int(count), str(group)) for image_id, count, group in rows]


def in_clause(column: str, values: list[int]) -> tuple[str, list]:
    """``column`` in the integers ``values``: one array parameter on PostgreSQL (short SQL, cheap to parse and
    plan), sent as its text form (psycopg's list adapter costs far more CPU), a list of placeholders elsewhere."""
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s::bigint[])", ["{" + ",".join(str(int(value)) for value in values) + "}"]
    return f"{column} IN ({_marks(values)})", list(values)


def blocked_pairs(project: Project, rater, ids: list[int], now: datetime) -> set[tuple[int, int]]:
    """Pairs within ``ids`` that this rater may not be served right now: judged by them, skipped or held
    by them, or done or fully leased for everyone (one snapshot, one round trip)."""
    t = db_time(now)
    a_in, a_params = in_clause("image_a_id", ids)
    b_in, b_params = in_clause("image_b_id", ids)
    low_in, low_params = in_clause("image_low_id", ids)
    high_in, high_params = in_clause("image_high_id", ids)
    rows = prepared_sql.execute(
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
    prepared_sql.execute(
        f"""INSERT INTO {CANDIDATES}
              (project_id, image_low_id, image_high_id, priority, source, judgments, is_open, full_until,
               created_at, updated_at)
            VALUES (%s, %s, %s, 0, %s, 0, %s, NULL, %s, %s)
            ON CONFLICT (project_id, image_low_id, image_high_id) DO NOTHING""",
        [project.pk, low, high, PairCandidate.Source.FALLBACK.value, True, t, t],
    )
    rows = prepared_sql.execute(
        f"SELECT id, image_low_id, image_high_id{NO_FLUSH} FROM {CANDIDATES} "
        f"WHERE project_id = %s AND image_low_id = %s AND image_high_id = %s{lock_clause()}",
        [project.pk, low, high],
    )
    return rows[0][:3] if rows else None


# The image columns a served pair needs (the rest stay deferred): no dates or JSON, so nothing to convert.
PAIR_IMAGE_FIELDS = ("id", "project_id", "file", "thumbnail", "original_name", "width", "height", "caption")


def images_with_tags(first_id: int, second_id: int) -> dict[int, tuple[Image, list[str]]]:
    """Both images of a pair, with their tag names sorted, in one round trip (every pair served)."""
    if connection.vendor == "postgresql":
        names = "array_agg(names.name ORDER BY names.name)"
    else:  # a JSON array: a tag name may hold any character
        names = "json_group_array(names.name)"
    rows = prepared_sql.execute(
        f"""SELECT {", ".join("i." + field for field in PAIR_IMAGE_FIELDS)},
                   (SELECT {names} FROM (SELECT t.name FROM {IMAGE_TAGS} it JOIN {TAGS} t ON t.id = it.tag_id
                                         WHERE it.image_id = i.id ORDER BY t.name) names)
            FROM {IMAGES} i WHERE i.id IN (%s, %s)""",
        [first_id, second_id],
    )
    found = {}
    for *values, tag_names in rows:
        image = Image.from_db("default", PAIR_IMAGE_FIELDS, values)
        if isinstance(tag_names, str):
            tag_names = json.loads(tag_names)
        found[image.pk] = (image, list(tag_names or []))
    return found
