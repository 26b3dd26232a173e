"""Judgment counts per rater and per day, read from the counters (``RaterDayCount``), never from the comparisons.

The counters are kept by database triggers in the statement that stores, changes or deletes a comparison
(``labeling/migrations/0014_rater_day_counts.py``), so every page that shows "how many" reads a few rows
per rater and day instead of counting 10^7 comparisons. ``recount_rater_days`` rebuilds a project's
counters from its comparisons: for loads that bypass triggers (the benchmarks' COPY with replication
role ``replica``), and as the reference the tests compare the counters against.
"""
from __future__ import annotations

from datetime import date

from django.db import connection, transaction
from django.db.models import Max, Sum

from labeling.models import Comparison, Project, RaterDayCount

COUNTED = ("comparisons", "decided_left", "decided_right", "gold_judged", "gold_correct", "response_ms_sum",
           "response_ms_count")


def _day_sql() -> str:
    return "(created_at AT TIME ZONE 'UTC')::date" if connection.vendor == "postgresql" else "date(created_at)"


def recount_rater_days(project: Project) -> int:
    """Rebuild the project's counters from its comparisons (one grouped statement). Returns the rows written."""
    table, comparisons = RaterDayCount._meta.db_table, Comparison._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        RaterDayCount.objects.filter(project=project).delete()
        cursor.execute(
            f"""INSERT INTO {table} (project_id, rater_id, day, {", ".join(COUNTED)}, last_at)
                SELECT project_id, rater_id, {_day_sql()}, count(*), sum(CASE WHEN outcome = 'a' THEN 1 ELSE 0 END),
                       sum(CASE WHEN outcome = 'b' THEN 1 ELSE 0 END), sum(CASE WHEN is_gold THEN 1 ELSE 0 END),
                       sum(CASE WHEN is_gold AND gold_correct THEN 1 ELSE 0 END), coalesce(sum(response_ms), 0),
                       count(response_ms), max(created_at)
                FROM {comparisons} WHERE project_id = %s GROUP BY 1, 2, 3""",
            [project.pk],
        )  # fmt: skip
        return cursor.rowcount


def _counted(project: Project):
    return RaterDayCount.objects.filter(project=project, comparisons__gt=0)


def project_total(project: Project, *, excluding_raters=()) -> int:
    """All of the project's judgments (but those of ``excluding_raters``, ids)."""
    return _counted(project).exclude(rater_id__in=list(excluding_raters)).aggregate(n=Sum("comparisons"))["n"] or 0


def rater_total(project: Project, rater) -> int:
    """One rater's judgments in the project."""
    return _counted(project).filter(rater=rater).aggregate(n=Sum("comparisons"))["n"] or 0


def per_day(project: Project, since: date | None = None, *, gold: bool = False) -> list[dict]:
    """``[{"day", "comparisons"}]`` (and ``"gold"``, judgments of gold pairs, if asked) for the days from
    ``since`` (UTC; all days if None) with judgments, oldest first."""
    rows = _counted(project)
    if since is not None:
        rows = rows.filter(day__gte=since)
    sums = {"n": Sum("comparisons"), **({"gold": Sum("gold_judged")} if gold else {})}
    return [{"day": row["day"], "comparisons": row["n"], **({"gold": row["gold"]} if gold else {})}
            for row in rows.values("day").annotate(**sums).order_by("day")]


def per_rater(project: Project) -> dict[int, dict]:
    """Per rater id: ``n`` judgments, ``left`` and ``right`` (decided for image a, b), ``gold_judged``,
    ``gold_correct``, ``last`` (when) and ``mean_ms`` (over the judgments that sent a response time)."""
    rows = _counted(project).values("rater").annotate(
        n=Sum("comparisons"), left=Sum("decided_left"), right=Sum("decided_right"), gold_judged=Sum("gold_judged"),
        gold_correct=Sum("gold_correct"), ms_sum=Sum("response_ms_sum"), ms_count=Sum("response_ms_count"),
        last=Max("last_at"),
    ).order_by()
    counts = {}
    for row in rows:
        row["mean_ms"] = row["ms_sum"] / row["ms_count"] if row["ms_count"] else None
        counts[row["rater"]] = row
    return counts
