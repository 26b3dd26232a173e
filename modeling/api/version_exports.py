"""Streamed export of a project's model versions with their metrics (managers).

``?format=csv|jsonl|parquet``. ``metrics`` and ``config`` are nested JSON (JSON text in CSV and
Parquet). The response names the project's active model version (``X-Model-Version``, file name), and
the ``is_active`` column marks it.
"""
from __future__ import annotations

from core.export_views import ExportView, export_schema, requested_format
from core.streaming import streaming_response
from labeling.project_scope import ProjectScopedMixin
from modeling.services.exports import MODEL_VERSION_COLUMNS, active_version_id, model_version_chunks


class ModelVersionsExportView(ProjectScopedMixin, ExportView):
    @export_schema("Every model version of the project with its status, training data size and metrics.")
    def get(self, request, slug):
        """Every model version with its status, training data size, metrics and configuration."""
        self.require_manager("export model versions")
        output = requested_format(request)
        return streaming_response(
            output, MODEL_VERSION_COLUMNS, model_version_chunks(self.project), f"{self.project.slug}-model-versions",
            active_version_id(self.project),
        )
