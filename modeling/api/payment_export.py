"""The payment file over the API (managers): ``modeling.services.payment_export``, CSV, JSONL or Parquet."""
from __future__ import annotations

from core.export_views import ExportView, export_schema, requested_format
from core.streaming import streaming_response
from labeling.project_scope import ProjectScopedMixin
from modeling.services.exports import active_version_id
from modeling.services.payment_export import PAYMENT_COLUMNS, payment_chunks


class PaymentExportView(ProjectScopedMixin, ExportView):
    @export_schema("One row per rater and crowd worker id: judgments, time on task, gold accuracy, qualification, "
                   "weight, flags and completion code.")
    def get(self, request, slug):
        """The payment file: per rater (and external worker id) what a crowd platform's approval needs."""
        self.require_manager("export the payment file")
        output = requested_format(request)
        return streaming_response(output, PAYMENT_COLUMNS, payment_chunks(self.project), f"{self.project.slug}-payment",
                                  active_version_id(self.project))
