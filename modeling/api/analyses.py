"""The poster's analyses over the API: per-tag scores, scores against a metadata field, explanations.

Everything here is for the project's managers (raters judge blind). Explanations are computed on a
worker: the API answers from the cache, or 202 with the URL to poll.
Computation lives in ``modeling.services.analyses`` and ``modeling.services.explanations``.
"""
from __future__ import annotations

import io
import json

from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api_errors import JsonErrorsMixin, error_responses
from core.limits import MAX_ID
from core import spreadsheet_safety
from labeling.project_scope import ProjectScopedMixin, image_role

from modeling.services import analyses, criterion_scores, explanations

ERRORS = error_responses(401, 403, 404)
VERSION_PARAM = OpenApiParameter("version", int, description="A model version id (default: the active one).")
CRITERION_PARAM = OpenApiParameter("criterion", str, description="Projects with several criteria: whose human scores "
                                   "fill the Human column (default: the primary criterion).")


FORMAT_PARAM = OpenApiParameter("format", str, enum=["json", "csv"])


def json_or_csv(json_description: str, csv_description: str) -> dict:
    """The 200 answers of a table served as JSON, or as CSV with ``?format=csv``."""
    return {(200, "application/json"): OpenApiResponse(OpenApiTypes.OBJECT, description=json_description),
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description=csv_description)}


def csv_attachment(text: str, file_name: str) -> Response:
    response = Response(text)  # rendered by CSVRenderer
    response["Content-Disposition"] = f'attachment; filename="{file_name}"'
    return response


class CSVRenderer(BaseRenderer):
    """``?format=csv``: DRF reads ``format`` as the renderer to use, so CSV is a renderer here."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, str):
            return data.encode(self.charset)
        return json.dumps(data).encode(self.charset)  # errors stay readable


def _int_param(request, name: str, default: int | None, minimum: int = 1) -> int | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError({name: "must be an integer"}) from None
    if value < minimum:
        raise ValidationError({name: f"must be at least {minimum}"})
    if value > MAX_ID:  # beyond any id, and the database driver's integers
        raise ValidationError({name: f"must be at most {MAX_ID}"})
    return value


def criterion_param(project, request) -> str | None:
    """The ``?criterion=``: None (the primary, or none asked) or a secondary key; a 400 for a key the project lacks."""
    try:
        return criterion_scores.resolve(project, request.query_params.get("criterion"))
    except ValueError as error:
        raise ValidationError({"criterion": [str(error)]}) from None


def _version(project, request):
    """The version to analyse; none to analyse is a refusal (404, code no_model)."""
    return analyses.analysed_version(project, _int_param(request, "version", None))


class TagSummaryView(ProjectScopedMixin, JsonErrorsMixin, APIView):
    renderer_classes = [JSONRenderer, CSVRenderer]

    @extend_schema(
        parameters=[OpenApiParameter("min_images", int, description="Leave out tags with fewer images (default 3)."),
                    FORMAT_PARAM, VERSION_PARAM, CRITERION_PARAM],
        responses={**json_or_csv("One row per tag: images, Ours, Baseline, Human (mapped to 1–10), reference mean, "
                                 "differences with intervals.", "The same rows as CSV."), **ERRORS},
        tags=["analyses"],
    )  # fmt: skip
    def get(self, request, slug):
        """Mean score per tag from the tags model, the image-only baseline and the humans (poster's TextTag table)."""
        self.require_manager("see the per-tag analysis")
        min_images = _int_param(request, "min_images", analyses.DEFAULT_MIN_IMAGES)
        criterion = criterion_param(self.project, request)
        summary = analyses.tag_summary(self.project, min_images=min_images, version=_version(self.project, request),
                                       criterion=criterion)
        if request.accepted_renderer.format == "csv":
            buffer = io.StringIO()
            spreadsheet_safety.writer(buffer).writerows(analyses.tag_summary_csv_rows(summary))
            name = f"{self.project.slug}-tags" + (f"-{criterion}" if criterion else "")
            return csv_attachment(buffer.getvalue(), f"{name}.csv")
        return Response(summary)


class MetadataSummaryView(ProjectScopedMixin, APIView):
    @extend_schema(
        parameters=[OpenApiParameter("by_tag", bool, description="Also one series per tag."),
                    OpenApiParameter("min_images", int, description="Tags with fewer images get no series."),
                    VERSION_PARAM, CRITERION_PARAM],
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="Per value (or quantile bin) of the field: "
                                        "images, mean model, human and CLIP similarity with intervals."), **ERRORS},
        tags=["analyses"],
    )  # fmt: skip
    def get(self, request, slug, field):
        """Model score, human score and CLIP prompt/tag–image similarity against a metadata field, numeric or text."""
        self.require_manager("see the generation-parameter analysis")
        by_tag = request.query_params.get("by_tag", "").lower() in ("1", "true", "yes")
        criterion = criterion_param(self.project, request)
        summary = analyses.metadata_summary(  # an unknown field is a refusal (404, code unknown_field)
            self.project, field, by_tag=by_tag, version=_version(self.project, request), criterion=criterion,
            min_images=_int_param(request, "min_images", analyses.DEFAULT_MIN_IMAGES))
        return Response(summary)


class MetadataFieldsView(ProjectScopedMixin, APIView):
    @extend_schema(responses={200: OpenApiResponse(OpenApiTypes.OBJECT), **ERRORS}, tags=["analyses"])
    def get(self, request, slug):
        """The metadata fields of the project's images the analyses group by, with how many images carry each and
        their kind: ``numeric`` (by value or quantile bin) or ``text`` (by distinct value: a generator, a sampler)."""
        self.require_manager("see the generation-parameter analysis")
        return Response({"fields": analyses.metadata_fields(self.project)})


def _explained(request, image_id):
    """The image and the version to explain it with: for the project's managers only (an explanation
    reveals the score), and only the project's own versions. Nothing is loaded here."""
    image, role = image_role(request, image_id)
    role.require_manager("see why an image got its score")
    # No version to explain with is a refusal (404, code no_model).
    return image, explanations.explained_version(image, _int_param(request, "version", None))


def queued(request, image, version) -> Response:
    """202: a worker is computing the explanation; poll ``url`` until it answers 200."""
    url = request.build_absolute_uri(
        reverse("api-image-explanation", kwargs={"image_id": image.pk}) + f"?version={version.pk}")
    body = {"detail": "The explanation is being computed on a worker; poll the url.", "code": "explanation_queued",
            "image": image.pk, "model_version": version.pk, "url": url}
    return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": url, "Retry-After": "5"})


QUEUED = OpenApiResponse(OpenApiTypes.OBJECT, description="Not computed yet: a worker is on it; poll ``url``.")


class ExplanationView(APIView):
    @extend_schema(
        parameters=[VERSION_PARAM],
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="Score, per-text attention and "
                                        "leave-one-out differences, region occlusion deltas."),
                   202: QUEUED, **ERRORS},
        tags=["analyses"],
    )  # fmt: skip
    def get(self, request, image_id):
        """Why this image got its score (managers): which of its tags moved it, and which regions mattered."""
        image, version = _explained(request, image_id)
        explanation = explanations.request_explanation(image, version)
        return Response(explanation) if explanation is not None else queued(request, image, version)


class ExplanationPngView(APIView):
    @extend_schema(parameters=[VERSION_PARAM],
                   responses={(200, "image/png"): OpenApiTypes.BINARY, 202: QUEUED, **ERRORS}, tags=["analyses"])
    def get(self, request, image_id):
        """The region heat map over the image (red: raised the score, blue: lowered it), as PNG (managers)."""
        image, version = _explained(request, image_id)
        png = explanations.cached_heat_map_png(image, version)
        if png is None:
            explanations.request_explanation(image, version)
            return queued(request, image, version)
        return HttpResponse(png, content_type="image/png")
