"""The project dashboard: model–human and human–human agreement, read from the latest stored report.

Nothing here computes agreement: the page draws the stored numbers (``modeling.services.agreement``),
so it loads in milliseconds whatever the project's size. "Recompute now" and the rater exclusion
buttons enqueue the work on the worker.
"""
from __future__ import annotations

import io

from django.conf import settings
from django.contrib import messages
from django.core.cache import cache
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from core import spreadsheet_safety
from labeling.models import Membership
from labeling.services import invites as invite_service
from labeling.project_scope import manager_page
from modeling import charts
from modeling.models import ModelVersion, is_demo_encoder
from modeling.services import agreement, criterion_scores, stopping_rule
import worker.dispatch as dispatch

RATER_ROWS_SHOWN = 50  # and every flagged rater


@manager_page(require_safe)
def dashboard(request, project):
    criterion = page_criterion(request, project)
    report = agreement.latest_report(project, criterion)
    data = report.data if report else None
    version = None
    if data and data["model"]["chart_version_id"]:
        version = ModelVersion.objects.filter(pk=data["model"]["chart_version_id"]).first()
    encoder = version.encoder_id if version else (data["encoder"]["id"] if data else settings.TAGRANK_ENCODER)
    excluded = set(
        Membership.objects.filter(project=project, excluded_from_training=True).values_list("user_id", flat=True)
    )
    members = set(Membership.objects.filter(project=project).values_list("user_id", flat=True))
    context = {
        "project": project,
        "report": report,
        "data": data,
        "chart_version": version,
        # The header and the demo banner of base.html show the encoder behind the scores in view.
        "tagrank_encoder": encoder,
        "tagrank_demo_encoder": is_demo_encoder(encoder),
        "flag_labels": agreement.FLAG_LABELS,
        "accuracy": stopping_rule.accuracy_summary(project),
        # Several criteria: a selector; the numbers below are those of the chosen one's answers.
        "criteria": project.criteria or [],
        "criterion": criterion or "",
    }
    if data:
        context.update(_panels(project.slug, data, excluded, members))
        # A report never changes: its charts are drawn once per process.
        key = f"tagrank:dashboard-charts:{report.pk}:{report.computed_at.timestamp()}"
        context["svg"] = cache.get_or_set(key, lambda: _charts(data), 3600)
    return render(request, "modeling/dashboard.html", context)


def _panels(slug: str, data: dict, excluded: set[int], members: set[int]) -> dict:
    versions = data["model"]["versions"]
    chart_version = next((version for version in versions if version["id"] == data["model"]["chart_version_id"]), None)
    # Flagged raters first, then by volume; a project with thousands of raters shows the first ones
    # here and all of them in the CSV.
    ordered = sorted(data["raters"], key=lambda row: (not row["flags"], -row["comparisons"], row["username"]))
    shown = ordered[:max(RATER_ROWS_SHOWN, sum(1 for row in ordered if row["flags"]))]
    exclusion_url = reverse("project-rater-exclusion", args=[slug, 0]).replace("/0/", "/{}/")
    raters = [
        # The report's exclusion flag is from when it was computed; the button shows the live state.
        {**row, "excluded_now": row["user_id"] in excluded, "is_member": row["user_id"] in members,
         "exclusion_url": exclusion_url.format(row["user_id"])}
        for row in shown
    ]
    return {
        "versions": versions,
        "headline": chart_version,
        "posters": [version for version in versions if version.get("poster")],
        "raters": raters,
        "raters_not_shown": len(ordered) - len(shown),
        "flagged_raters": sum(1 for row in ordered if row["flags"]),
    }


def _charts(data: dict) -> dict:
    chart_data = data["charts"]
    return {
        "agreement_by_version": charts.agreement_by_version(chart_data["agreement_by_version"]),
        "scatter": charts.scatter(chart_data["scatter"]["points"] if chart_data["scatter"] else []),
        "model_histogram": charts.histogram(chart_data["histogram"]["model"], "model-histogram",
                                            "model score (1–10)", charts.COLORS["model"]),
        "human_histogram": charts.histogram(chart_data["histogram"]["human"], "human-histogram",
                                            "human score (Bradley–Terry)", charts.COLORS["human"]),
        "comparisons_per_day": charts.comparisons_per_day(chart_data["comparisons_per_day"]),
    }


@manager_page(require_POST)
def recompute(request, project):
    dispatch.send_metrics_refresh(project.pk)
    messages.success(request, "Recomputing the human scores and the dashboard; reload in a little while.")
    return redirect("project-dashboard", slug=project.slug)


@manager_page(require_POST)
def rater_exclusion(request, project, user_id):
    excluded = request.POST.get("excluded") in ("1", "true", "on")
    try:
        membership = invite_service.set_rater_excluded(project, user_id, excluded, by=request.user.username)
    except Membership.DoesNotExist:
        raise Http404("This user is not a member of the project.") from None
    name = membership.user.username
    messages.success(
        request,
        f"{name}'s comparisons are now left out of training and the human scores." if excluded
        else f"{name}'s comparisons count again for training and the human scores.",
    )
    return redirect(reverse("project-dashboard", args=[project.slug]) + "#raters")


# --- CSV downloads of every chart's and table's numbers -------------------------------------------


def _estimate_columns(prefix: str, value: dict | None) -> dict:
    value = value or {}
    return {prefix: value.get("value"), f"{prefix}_low": value.get("low"), f"{prefix}_high": value.get("high")}


def _raters(data):
    for row in data["raters"]:
        yield {
            "user_id": row["user_id"], "username": row["username"], "excluded": row["excluded"],
            "comparisons": row["comparisons"], "on_shared_pairs": row["on_shared_pairs"],
            "gold_accuracy": row["gold"]["value"], "gold_judgments": row["gold"]["n"],
            "majority_agreement": row["majority_agreement"]["value"], "majority_judgments": row["majority_agreement"]["n"],
            "median_response_ms": row["median_response_ms"], "left_share": row["left_share"],
            "right_share": row["right_share"], "tie_share": row["tie_share"], "side_p_value": row["side_p_value"],
            "weight": row.get("weight"), "flags": ";".join(row["flags"]),
        }  # fmt: skip


def _versions(data):
    for version in data["model"]["versions"]:
        yield {
            "version": version["id"], "status": version["status"], "is_active": version["is_active"],
            "encoder": version["encoder_id"], "trained_on_comparisons": version["trained_on"],
            **_estimate_columns("heldout_agreement", version["heldout_agreement"]),
            "heldout_judgments": version["heldout_agreement"]["n"],
            **_estimate_columns("model_on_ceiling_pairs", version["ceiling"]["model"]),
            **_estimate_columns("human_ceiling", version["ceiling"]["human"]),
            **_estimate_columns("ceiling_gap", version["ceiling"]["gap"]),
            "ceiling_judgments": version["ceiling"]["judgments"],
            **_estimate_columns("srcc_human", version["human_correlation"]["srcc"]),
            **_estimate_columns("lcc_human", version["human_correlation"]["lcc"]),
            "correlation_images": version["human_correlation"]["images"], "source": version["source"],
        }  # fmt: skip


def _poster(data):
    for version in data["model"]["versions"]:
        for model, row in (version.get("poster") or {}).items():
            yield {"version": version["id"], "model": model, **row}


def _scatter(data):
    for point in (data["charts"]["scatter"] or {}).get("points", []):
        yield {key: point.get(key) for key in ("image_id", "name", "model", "human", "comparisons", "url")}


def _histogram(data):
    for series in ("model", "human"):
        histogram = data["charts"]["histogram"][series]
        if histogram:
            for low, high, count in zip(histogram["edges"], histogram["edges"][1:], histogram["counts"]):
                yield {"series": series, "bin_low": low, "bin_high": high, "images": count}


def _disagreeing(data):
    for row in data["charts"]["disagreeing_pairs"]:
        yield {
            "image_lo": row["image_lo"]["image_id"], "image_lo_name": row["image_lo"].get("name"),
            "image_hi": row["image_hi"]["image_id"], "image_hi_name": row["image_hi"].get("name"),
            "votes_lo": row["votes_lo"], "votes_hi": row["votes_hi"], "ties": row["ties"],
            "model_lo": row["image_lo"]["model"], "model_hi": row["image_hi"]["model"],
            "human_lo": row["image_lo"]["human"], "human_hi": row["image_hi"]["human"],
            "net_votes_against_model": row["net_against_model"],
        }  # fmt: skip


def _uncertain(data):
    for row in data["charts"]["uncertain_images"]:
        yield {key: row.get(key) for key in ("image_id", "name", "human_mean", "human_sd", "comparisons", "model_mean")}


CSV_TABLES = {
    "raters": _raters,
    "versions": _versions,
    "poster": _poster,
    "agreement-by-version": lambda data: iter(data["charts"]["agreement_by_version"]),
    "scatter": _scatter,
    "histogram": _histogram,
    "comparisons-per-day": lambda data: iter(data["charts"]["comparisons_per_day"]),
    "disagreeing-pairs": _disagreeing,
    "uncertain-images": _uncertain,
    "coverage": lambda data: iter(data["coverage"]),
}


@manager_page(require_safe)
def table_csv(request, project, table):
    if table not in CSV_TABLES:
        raise Http404("No such table.")
    report = agreement.latest_report(project, page_criterion(request, project))
    if report is None:
        raise Http404("No report yet.")
    rows = list(CSV_TABLES[table](report.data))
    buffer = io.StringIO()
    if rows:
        writer = spreadsheet_safety.SafeDictWriter(buffer, fieldnames=list(rows[0].keys()), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{project.slug}-{table}-report{report.pk}.csv"'
    return response


def page_criterion(request, project) -> str | None:
    """The ?criterion= of the dashboard, the analyses' pages and their CSVs: None (the primary) or a secondary
    key; 404 otherwise."""
    try:
        return criterion_scores.resolve(project, request.GET.get("criterion"))
    except ValueError as error:
        raise Http404(str(error)) from None
