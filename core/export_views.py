"""The base of the API's streamed exports: ``?format=csv|jsonl|parquet`` through DRF, errors always JSON.

A project's export view is ``class View(ProjectScopedMixin, ExportView)``: access comes from the app, the
rendering from here, the rows from ``core.streaming``.
"""
from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from core.api_errors import ErrorSerializer, JsonErrorsMixin
from core.streaming import FORMATS


def requested_format(request) -> str:
    output = request.query_params.get("format") or "csv"
    if output not in FORMATS:
        raise ValidationError({"format": ["csv, jsonl or parquet."]})
    return output


class _StreamRenderer(JSONRenderer):
    """Lets ``?format=csv|jsonl|parquet`` pass DRF's content negotiation; errors still render as JSON."""

    def __init__(self, media_type: str, format: str):
        self.media_type, self.format = media_type, format


class ExportView(JsonErrorsMixin, APIView):
    """Base of the streamed exports: ``?format=``, errors always JSON."""

    def get_renderers(self):
        return [
            _StreamRenderer("text/csv", "csv"), _StreamRenderer("application/jsonl", "jsonl"),
            _StreamRenderer("application/vnd.apache.parquet", "parquet"), JSONRenderer(),
        ]

    def perform_content_negotiation(self, request, force=False):
        # An unknown ?format= is answered by ``requested_format`` with a 400, not DRF's 404.
        return super().perform_content_negotiation(request, force=True)



def export_schema(description: str, parameters: list[OpenApiParameter] = ()):
    """The OpenAPI description of an export: ``?format=`` (and ``parameters``), three bodies, JSON errors."""
    return extend_schema(
        parameters=[
            OpenApiParameter("format", str, enum=list(FORMATS), description="csv (default), jsonl or parquet."),
            *parameters,
        ],
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description=description),
            (200, "application/jsonl"): OpenApiResponse(OpenApiTypes.STR, description=description),
            (200, "application/vnd.apache.parquet"): OpenApiResponse(OpenApiTypes.BINARY, description=description),
            (400, "application/json"): ErrorSerializer,
            (401, "application/json"): ErrorSerializer,
            (403, "application/json"): ErrorSerializer,
            (404, "application/json"): ErrorSerializer,
        },
        tags=["export"],
    )
