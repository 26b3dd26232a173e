"""The preference-pairs export (managers): ``GET /api/v1/projects/{slug}/export/preferences/``.

(prompt, chosen, rejected) rows for reward-model and DPO training, streamed in JSON Lines (default), Parquet
or CSV by the shared export stack; rows from ``labeling.services.preference_pairs``. Options:
``unit=judgment|pair``, ``ties=include``, ``both_bad=include``, ``image_bytes=true`` (Parquet only).
Format: docs/exports.md, "Preference pairs".
"""
from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import ValidationError

from core.export_views import ExportView, export_schema
from core.streaming import FORMATS, streaming_response
from labeling.project_scope import ProjectScopedMixin
from labeling.services import preference_pairs
from labeling.services.data_exports import active_model_version_id


def _choice(request, name: str, choices: tuple[str, ...], default: str) -> str:
    value = request.query_params.get(name) or default
    if value not in choices:
        raise ValidationError({name: [f"one of {', '.join(choices)}"]})
    return value


OPTIONS = [
    OpenApiParameter("unit", str, enum=["judgment", "pair"], description="One row per judgment (default) or per pair."),
    OpenApiParameter("ties", str, enum=["exclude", "include"], description="Ties (default: left out)."),
    OpenApiParameter("both_bad", str, enum=["exclude", "include"], description='"Both bad" (default: left out).'),
    OpenApiParameter("image_bytes", str, enum=["false", "true"], description="The images' bytes (Parquet only)."),
    OpenApiParameter("criterion", str, description="Projects with several criteria: whose answers (default: the primary)."),
]


class PreferencesExportView(ProjectScopedMixin, ExportView):
    @extend_schema(parameters=OPTIONS)
    @export_schema("(prompt, chosen, rejected) rows for reward-model training: one per judgment or per pair.")
    def get(self, request, slug):
        """Preference pairs for training: prompt, chosen and rejected image (id, file name, URL; the bytes in
        Parquet on request), label, criterion, rater and agreement. Ties and "both bad" on request."""
        self.require_manager("export preference pairs")
        output = _choice(request, "format", FORMATS, "jsonl")  # JSON Lines by default, unlike the other exports
        unit = _choice(request, "unit", ("judgment", "pair"), "judgment")
        with_bytes = _choice(request, "image_bytes", ("true", "false"), "false") == "true"
        if with_bytes and output != "parquet":
            raise ValidationError({"image_bytes": ["Image bytes come only in Parquet (format=parquet)."]})
        keys = [item["key"] for item in self.project.criteria or []]
        criterion = request.query_params.get("criterion") or None
        if criterion is not None and criterion not in keys:
            raise ValidationError({"criterion": [f"one of this project's criteria: {', '.join(keys) or 'none (one question)'}"]})
        options = preference_pairs.PreferenceRequest(
            criterion=criterion,
            unit=unit,
            include_ties=_choice(request, "ties", ("include", "exclude"), "exclude") == "include",
            include_both_bad=_choice(request, "both_bad", ("include", "exclude"), "exclude") == "include",
            with_image_bytes=with_bytes,
            base_url=request.build_absolute_uri("/").rstrip("/"),
        )
        chunks = (preference_pairs.judgment_chunks if unit == "judgment" else preference_pairs.pair_chunks)(
            self.project, options
        )
        return streaming_response(
            output, preference_pairs.columns(unit, with_bytes), chunks, f"{self.project.slug}-preferences-{unit}",
            active_model_version_id(self.project),
        )

