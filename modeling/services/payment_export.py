"""The payment file: one row per rater of a project (and per crowd worker id), for approving or rejecting
submissions on a crowd platform: judgments, time on task, gold accuracy, the qualification result, the
rater's weight in the human scores, the dashboards' flags and the completion code.

Streamed in constant memory (``keyset_chunks`` over memberships, each row's counts by subqueries). The
weight and flags are the latest agreement report's (the dashboards' numbers, ``weight_as_of`` says
when they were computed); a rater the report has not seen yet has none. Columns: ``docs/exports.md``.
"""
from __future__ import annotations

import json

from django.db.models import Count, IntegerField, Max, Min, OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce

from core.streaming import Column, keyset_chunks, mapped
from labeling.models import Comparison, CrowdWorker, Membership, Project
from modeling.services.agreement import latest_report

PAYMENT_COLUMNS = [
    Column("rater_id", "int"), Column("rater"), Column("role"), Column("is_active", "bool"),
    Column("external_worker_id"), Column("campaign_link"), Column("platform_params", "json"),
    Column("judgments", "int"), Column("first_judgment_at", "time"), Column("last_judgment_at", "time"),
    Column("time_on_task_s", "float"), Column("time_span_s", "float"),
    Column("gold_judged", "int"), Column("gold_correct", "int"), Column("gold_accuracy", "float"),
    Column("qualification"), Column("paused", "bool"), Column("pause_reason"),
    Column("excluded_from_training", "bool"), Column("weight", "float"), Column("weight_as_of", "time"),
    Column("flags"), Column("completed", "bool"), Column("completed_at", "time"), Column("completion_code"),
]


def payment_chunks(project: Project):
    """Rows of ``PAYMENT_COLUMNS``, one per membership, in id order."""
    mine = Comparison.objects.filter(project=project, rater_id=OuterRef("user_id")).order_by().values("rater_id")

    def per_rater(expression, output_field=None, **filters):
        rows = mine.filter(**filters).annotate(v=expression).values("v")[:1]
        return Subquery(rows, output_field=output_field)

    worker = CrowdWorker.objects.filter(project=project, user_id=OuterRef("user_id"))
    members = Membership.objects.filter(project=project).annotate(
        n=Coalesce(per_rater(Count("pk"), IntegerField()), 0),
        first_at=per_rater(Min("created_at")), last_at=per_rater(Max("created_at")),
        total_ms=per_rater(Sum("response_ms")),
        n_gold=Coalesce(per_rater(Count("pk"), IntegerField(), is_gold=True), 0),
        n_gold_right=Coalesce(per_rater(Count("pk"), IntegerField(), is_gold=True, gold_correct=True), 0),
        worker_id=Subquery(worker.values("external_id")[:1]),
        link_name=Subquery(worker.values("link__name")[:1]), link_id=Subquery(worker.values("link_id")[:1]),
        params=Subquery(worker.values("platform_params")[:1]),
        completed_at=Subquery(worker.values("completed_at")[:1]),
        code=Subquery(worker.values("link__completion_code")[:1]),
    )
    fields = [
        "id", "user_id", "user__username", "role", "is_active", "worker_id", "link_name", "link_id", "params", "n",
        "first_at", "last_at", "total_ms", "n_gold", "n_gold_right", "qualification", "paused_at", "pause_reason",
        "excluded_from_training", "completed_at", "code",
    ]
    report = latest_report(project)
    standing = {row["user_id"]: row for row in (report.data.get("raters", []) if report else [])}
    as_of = report.computed_at if report else None

    def row(v):
        (_, user_id, name, role, active, worker_id, link_name, link_id, params, n, first, last, total_ms, gold,
         right, qualification, paused_at, pause_reason, excluded, completed_at, code) = v
        seen = standing.get(user_id, {})
        return (
            user_id, name, role, active, worker_id, (link_name or f"link {link_id}") if link_id else None,
            _json(params), n, first, last, total_ms / 1000.0 if total_ms is not None else None,
            (last - first).total_seconds() if first and last else None, gold, right, right / gold if gold else None,
            qualification or None, paused_at is not None, pause_reason if paused_at else "", excluded,
            seen.get("weight"), as_of if seen else None, ";".join(seen.get("flags", [])),
            completed_at is not None, completed_at, code if completed_at is not None else None,
        )

    return mapped(keyset_chunks(members, fields), row)


def _json(value):
    """``platform_params`` as read through a subquery: a dict, or its JSON text on some databases."""
    if isinstance(value, str):
        return json.loads(value)
    return value
