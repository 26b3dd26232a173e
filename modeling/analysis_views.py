"""The analyses' pages: the per-tag table, the generation-parameter panel, and an image's explanation.

The numbers come from ``modeling.services.analyses`` / ``explanations``; the views only pick the
project, the field and the version, and draw (``modeling/charts.py``). Project panels are for managers (as the dashboard);
an image page is for any member of its project, with scores only for managers.
"""
from __future__ import annotations

import io

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from core import spreadsheet_safety
from labeling import access
from labeling.models import ImageTag
from labeling.project_scope import manager_page
from modeling import charts
from modeling.dashboard_views import page_criterion
from modeling.models import HumanScore, ImageScore
from modeling.services import analyses, criterion_scores, explanations


def _version_or_none(project):
    try:
        return analyses.analysed_version(project)
    except analyses.AnalysisUnavailable:
        return None


def _criterion_context(project, criterion: str | None) -> dict:
    """Several criteria: the selector's choices and the one shown (as on the dashboard)."""
    return {"criteria": project.criteria or [], "criterion": criterion or ""}


@manager_page(require_safe)
def tag_panel(request, project):
    version = _version_or_none(project)
    raw = request.GET.get("min_images", "")
    min_images = max(1, int(raw)) if raw.isdigit() else analyses.DEFAULT_MIN_IMAGES
    criterion = page_criterion(request, project)
    summary = analyses.tag_summary(project, min_images=min_images, version=version, criterion=criterion) \
        if version else None
    if summary and request.GET.get("format") == "csv":
        buffer = io.StringIO()
        spreadsheet_safety.writer(buffer).writerows(analyses.tag_summary_csv_rows(summary))
        response = HttpResponse(buffer.getvalue(), content_type="text/csv")
        name = f"{project.slug}-tags" + (f"-{criterion}" if criterion else "")
        response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
        return response
    if summary:
        # The poster's column order, then the reference mean and the differences.
        for row in summary["rows"]:
            row["cells"] = [row[c] for c in ("baseline", "ours", "human", "reference", "ours_minus_human",
                                             "baseline_minus_human")]
    return render(request, "modeling/analysis_tags.html",
                  {"project": project, "version": version, "summary": summary, "min_images": min_images,
                   **_criterion_context(project, criterion)})


@manager_page(require_safe)
def metadata_panel(request, project):
    fields = analyses.metadata_fields(project)
    names = [f["field"] for f in fields]
    field = request.GET.get("field") or (names[0] if names else None)
    if field is not None and field not in names:
        raise Http404(f"{field!r} is not a metadata field of this project that the analyses group by.")
    version = _version_or_none(project)
    criterion = page_criterion(request, project)
    summary = svg = None
    if field and version:
        summary = analyses.metadata_summary(project, field, by_tag=request.GET.get("by_tag") == "1", version=version,
                                            criterion=criterion)
        svg = charts.metadata_plot(summary)
        for group in summary["groups"] + [g for entry in summary.get("by_tag", []) for g in entry["groups"]]:
            group["cells"] = [group["model"], group["human"], group["clip_similarity"]]
    return render(request, "modeling/analysis_metadata.html",
                  {"project": project, "fields": fields, "field": field, "version": version, "summary": summary,
                   "svg": svg, "by_tag": request.GET.get("by_tag") == "1", **_criterion_context(project, criterion)})


@login_required
@require_safe
def image_detail(request, image_id):
    """Any member sees the image, its tags and the question; only managers see its scores, metadata and
    explanation (raters judge blind). The explanation comes from the cache, or is queued on a worker."""
    image, role = access.image_role(request.user, image_id)
    context = {"image": image, "project": image.project, "can_manage": role.is_manager, "sees_scores": role.sees_scores,
               "sees_image_sources": role.sees_image_sources,
               "tags": list(ImageTag.objects.filter(image=image).values_list("tag__name", flat=True).order_by("tag__name"))}
    if role.sees_scores:
        explanation, problem, version = None, None, None
        try:
            version = explanations.explained_version(image)
            explanation = explanations.request_explanation(image, version)
            if explanation is None:
                problem = "The explanation is being computed on a worker; reload in a little while."
        except explanations.ExplanationUnavailable as exc:
            problem = str(exc)
        context.update({
            "version": version, "explanation": explanation, "problem": problem,
            "texts": sorted(explanation["texts"], key=lambda t: -abs(t["delta"])) if explanation else [],
            "scores": ImageScore.objects.filter(image=image).select_related("model_version").order_by("-model_version_id")[:5],
            "human": HumanScore.objects.filter(image=image).first(),
            "criterion_scores": criterion_scores.image_scores(image),
        })
    return render(request, "modeling/analysis_image.html", context)


@login_required
@require_safe
def image_heat_map(request, image_id):
    """The heat map PNG for the page's <img> (managers; session-authenticated, like the page)."""
    image, role = access.image_role(request.user, image_id)
    role.require_manager("see why an image got its score")
    try:
        png = explanations.cached_heat_map_png(image, explanations.explained_version(image))
    except explanations.ExplanationUnavailable as exc:
        raise Http404(str(exc)) from exc
    if png is None:
        raise Http404("The explanation is still being computed.")
    return HttpResponse(png, content_type="image/png")
