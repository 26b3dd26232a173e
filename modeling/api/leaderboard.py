"""The leaderboard of a categorical metadata field over the API (managers): JSON, or CSV with ``?format=csv``.

``GET /api/v1/projects/{slug}/leaderboard/?field=generator``; computed by ``modeling.services.leaderboard``.
"""
from __future__ import annotations

import io

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from core import spreadsheet_safety
from core.api_errors import ERRORS, JsonErrorsMixin
from labeling.project_scope import ProjectScopedMixin
from modeling.api.analyses import FORMAT_PARAM, CSVRenderer, criterion_param, csv_attachment, json_or_csv
from modeling.services import analyses, leaderboard


def leaderboard_body(result: leaderboard.FieldLeaderboard) -> dict:
    level = (result.human or result.model).level if (result.human or result.model) else 0.95
    return {
        "field": result.field,
        "criterion": result.criterion,
        "grouped_by": result.grouped_by or None,
        "level": level,
        "comparisons": result.n_comparisons,
        "model_version": result.model_version_id,
        "values": leaderboard.board_rows(result),
        "human_win_rates": leaderboard.win_rate_matrix(result.human, result.values),
        "model_win_rates": leaderboard.win_rate_matrix(result.model, result.values),
    }


def leaderboard_csv(result: leaderboard.FieldLeaderboard) -> str:
    buffer = io.StringIO()
    writer = spreadsheet_safety.writer(buffer, lineterminator="\n")
    writer.writerow(leaderboard.CSV_COLUMNS)
    for row in leaderboard.board_rows(result):
        writer.writerow(["" if row[column] is None else row[column] for column in leaderboard.CSV_COLUMNS])
    return buffer.getvalue()


class LeaderboardView(ProjectScopedMixin, JsonErrorsMixin, APIView):
    renderer_classes = [JSONRenderer, CSVRenderer]

    @extend_schema(
        parameters=[OpenApiParameter("field", str, required=True, description="A categorical metadata field, e.g. generator."),
                    OpenApiParameter("criterion", str, description="Projects with several criteria: whose answers "
                                     "(default: the primary criterion)."),
                    FORMAT_PARAM],
        responses={**json_or_csv("Per value: the Bradley–Terry rating from the human judgments across values and "
                                 "from the active model's scores, each with a 95 % bootstrap interval, its rank and "
                                 "rank interval; the win-rate matrices.", "The boards as CSV."), **ERRORS},
        tags=["analyses"],
    )  # fmt: skip
    def get(self, request, slug):
        """The leaderboard of a categorical metadata field (e.g. which generator wins), human and model side by side."""
        self.require_manager("see the leaderboard")
        field = request.query_params.get("field") or ""
        criterion = criterion_param(self.project, request)
        if not field:
            fields = leaderboard.candidate_fields(self.project)
            raise ValidationError({"field": [f"Name a metadata field. Candidates: {', '.join(fields) or 'none'}."]})
        try:
            result = leaderboard.field_leaderboard(self.project, field, criterion=criterion)
        except leaderboard.LeaderboardUnavailable as exc:
            raise ValidationError({"field": [str(exc)]}) from exc
        if request.accepted_renderer.format == "csv":
            return csv_attachment(leaderboard_csv(result), f"{self.project.slug}-leaderboard-{field}.csv")
        return Response({**leaderboard_body(result), **analyses.criterion_named(self.project, criterion)})
