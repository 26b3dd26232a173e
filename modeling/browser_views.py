"""The image browser of a project (managers): filter, sort and page through the images, and open an
image's page with the comparisons it took part in. The work is in ``modeling.services.image_browser``."""
from __future__ import annotations

from django import forms
from django.http import Http404
from django.views.decorators.http import require_safe
from django.shortcuts import get_object_or_404, render

from labeling.models import Comparison, Image
from labeling.project_scope import manager_page
from modeling.models import HumanScore, ImageScore
from modeling.services import criterion_scores, image_browser


class BrowseForm(forms.Form):
    tag = forms.CharField(required=False, max_length=100)
    score_min = forms.FloatField(required=False, label="Score from")
    score_max = forms.FloatField(required=False, label="to")
    comparisons_min = forms.IntegerField(required=False, min_value=0, label="Comparisons from")
    comparisons_max = forms.IntegerField(required=False, min_value=0, label="to")
    metadata_key = forms.CharField(required=False, max_length=100, label="Metadata field")
    metadata_value = forms.CharField(required=False, max_length=200, label="equals")
    sort = forms.ChoiceField(required=False, choices=[
        ("newest", "Newest"), ("oldest", "Oldest"), ("-score", "Highest score"), ("score", "Lowest score"),
        ("-comparisons", "Most compared"), ("comparisons", "Least compared"),
    ])
    cursor = forms.CharField(required=False, widget=forms.HiddenInput)


def filters_from(data: dict) -> image_browser.Filters:
    return image_browser.Filters(
        tag=data.get("tag") or "", score_min=data.get("score_min"), score_max=data.get("score_max"),
        comparisons_min=data.get("comparisons_min"), comparisons_max=data.get("comparisons_max"),
        metadata_key=data.get("metadata_key") or "", metadata_value=data.get("metadata_value") or None,
        sort=data.get("sort") or "newest", cursor=data.get("cursor") or "",
        limit=data.get("limit") or 48,
    )


@manager_page(require_safe)
def image_browser_page(request, project):
    form = BrowseForm(request.GET or None)
    page, problem = None, None
    if form.is_valid() or not request.GET:
        try:
            page = image_browser.browse(project, filters_from(form.cleaned_data if request.GET else {}))
        except image_browser.BadBrowseRequest as exc:
            problem = str(exc)
    next_query = None
    if page and page.next_cursor:
        query = request.GET.copy()
        query["cursor"] = page.next_cursor
        next_query = query.urlencode()
    return render(request, "modeling/image_browser.html", {
        "project": project, "form": form, "page": page, "problem": problem, "next_query": next_query,
    })


@manager_page(require_safe)
def browser_image_page(request, project, image_id):
    if image_id > 2**63 - 1:
        raise Http404("No such image.")
    image = get_object_or_404(Image.objects.select_related("stats"), project=project, pk=image_id)
    try:
        before = int(request.GET["before"]) if request.GET.get("before") else None
    except ValueError:
        before = None
    comparisons, next_before = image_browser.image_comparisons(image, before=before)
    rows = []
    for comparison in comparisons:
        left = comparison.image_a_id == image.pk
        other = comparison.image_b if left else comparison.image_a
        mine = "a" if left else "b"
        if comparison.outcome in (Comparison.Outcome.TIE, Comparison.Outcome.BOTH_BAD):
            result = "tie" if comparison.outcome == Comparison.Outcome.TIE else "both bad"
        else:
            result = "won" if comparison.outcome == mine else "lost"
        rows.append({"comparison": comparison, "other": other, "side": "left" if left else "right", "result": result})
    return render(request, "modeling/browser_image.html", {
        "project": project, "image": image, "rows": rows, "next_before": next_before,
        "score": ImageScore.objects.filter(image=image, model_version__is_active=True).first(),
        "human": HumanScore.objects.filter(image=image).first(),
        "criterion_scores": criterion_scores.image_scores(image),
        "tags": list(image.image_tags.values_list("tag__name", flat=True).order_by("tag__name")),
    })
