"""Streamed exports of a project's raw data (managers): comparisons, image tags and raters.

``?format=csv|jsonl|parquet`` (default csv). Each response names the project's active model version
(``X-Model-Version`` and the file name) so that a download can be matched with the scores export
taken at the same time. Columns are listed in docs/exports.md.
"""
from __future__ import annotations

from core.export_views import ExportView, export_schema, requested_format
from core.streaming import pieces_response, streaming_response
from labeling.project_scope import ProjectScopedMixin
from labeling.services.data_exports import EXPORTS, active_model_version_id, comparison_export


def _data_export_view(kind: str, description: str):
    class View(ProjectScopedMixin, ExportView):
        @export_schema(description)
        def get(self, request, slug):
            self.require_manager(f"export {kind.replace('-', ' ')}")
            output = requested_format(request)
            name, version = f"{self.project.slug}-{kind}", active_model_version_id(self.project)
            if kind == "comparisons":  # PostgreSQL renders this one (labeling/services/data_exports.py)
                return pieces_response(output, comparison_export(self.project, output), name, version)
            columns, chunks = EXPORTS[kind]
            return streaming_response(output, columns, chunks(self.project), name, version)

    View.__name__ = View.__qualname__ = "".join(part.title() for part in kind.split("-")) + "ExportView"
    View.get.__doc__ = description
    return View


ComparisonsExportView = _data_export_view(
    "comparisons", "Every comparison: images, outcome, winner, rater, time, response time, lease and gold outcome; in a "
    "project with several criteria, one answer_<key> column per criterion."
)
ImageTagsExportView = _data_export_view("image-tags", "Every tag on every image, with its source and rater.")
RatersExportView = _data_export_view("raters", "Every member with their judging statistics.")
