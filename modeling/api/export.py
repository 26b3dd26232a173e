"""The scores export (``GET /api/v1/projects/<slug>/scores/``): one row per image, streamed as CSV, JSON Lines
or Parquet in constant memory. The rows come from ``modeling/services/exports.py``, the rendering from
``core.streaming`` like every other export; columns are listed in docs/exports.md."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.views import APIView

from core.export_views import ExportView, export_schema, requested_format
from core.limits import MAX_ID
from core.streaming import streaming_response
from labeling.project_scope import ProjectScopedMixin
from modeling.models import ModelVersion
from modeling.services import criterion_scores, exports


class ScoresExportView(ProjectScopedMixin, ExportView):
    def perform_content_negotiation(self, request, force=False):
        # Unlike the other exports, an unknown ?format= here has always been DRF's 404 (no renderer for it).
        return APIView.perform_content_negotiation(self, request, force)

    @export_schema(
        "One row per image: its model score (10-bin distribution, uncertainty), human score, comparison count and tags.",
        parameters=[OpenApiParameter("model_version", int, description="A model version id; default: the active one."),
                    OpenApiParameter("criterion", str, description="Projects with several criteria: whose human "
                                     "scores fill the human_score columns (default: the primary criterion).")],
    )
    def get(self, request, slug):
        """Every image with its model score (10-bin distribution, uncertainty), human score and comparison
        count, streamed. Uses the project's active model version unless ``model_version`` is given."""
        self.require_export()
        output = requested_format(request)
        version_id = self.model_version_id(request)
        try:
            criterion = criterion_scores.resolve(self.project, request.query_params.get("criterion"))
        except ValueError as error:
            raise ValidationError({"criterion": [str(error)]}) from None
        columns, chunks = exports.export_rows(output, self.project, version_id, criterion)
        name = f"{self.project.slug}-scores" + (f"-{criterion}" if criterion else "")
        return streaming_response(output, columns, chunks, name, version_id)

    def model_version_id(self, request) -> int | None:
        raw_version = request.query_params.get("model_version")
        if not raw_version:
            return exports.active_version_id(self.project)
        try:
            version_id = int(raw_version)
        except ValueError:
            raise ValidationError({"model_version": ["A model version id (a whole number)."]}) from None
        if not 0 < version_id <= MAX_ID or not ModelVersion.objects.filter(project=self.project, pk=version_id).exists():
            raise NotFound(f"Model version {version_id} is not a version of this project.")
        return version_id
