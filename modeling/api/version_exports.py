"""Streamed export of a project's model versions with their metrics (managers).

``?format=csv|jsonl|parquet``. ``metrics`` and ``config`` are nested JSON (JSON text in CSV and
Parquet). The response names the project's active model version (``X-Model-Version``, file name), and
the ``is_active`` column marks it.
"""
from __future__ import annotations

from core.export_views import ExportView, export_schema, requested_format
from core.streaming import Column, keyset_chunks, streaming_response
from labeling.models import Project
from labeling.project_scope import ProjectScopedMixin
from modeling.models import ModelVersion
from modeling.services.score_export import active_version_id

MODEL_VERSION_COLUMNS = [
    Column("model_version", "int"), Column("created_at", "time"), Column("status"), Column("is_active", "bool"),
    Column("activated_at", "time"), Column("encoder_id"), Column("n_comparisons", "int"),
    Column("last_comparison_id", "int"), Column("training_seconds", "float"), Column("status_reason"),
    Column("trained_by"), Column("metrics", "json"), Column("config", "json"),
]
_FIELDS = [
    "id", "created_at", "status", "is_active", "activated_at", "encoder_id", "n_comparisons", "last_comparison_id",
    "training_seconds", "status_reason", "trained_by__username", "metrics", "config",
]


def model_version_chunks(project: Project):
    return keyset_chunks(ModelVersion.objects.filter(project=project), _FIELDS)


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
