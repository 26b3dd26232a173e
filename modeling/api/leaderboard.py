"""The leaderboard of a categorical metadata field over the API (managers): JSON, or CSV with ``?format=csv``.

``GET /api/v1/projects/{slug}/leaderboard/?field=generator``; computed by ``modeling.services.leaderboard``.
"""
from __future__ import annotations

import io

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling import spreadsheet_safety
from labeling.api.permissions import ProjectScopedMixin
from labeling.api.serializers import ErrorSerializer
from modeling.api.analyses import CSVRenderer
from modeling.services import leaderboard

ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}


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


class LeaderboardView(ProjectScopedMixin, APIView):
    renderer_classes = [JSONRenderer, CSVRenderer]

    @extend_schema(
        parameters=[OpenApiParameter("field", str, required=True, description="A categorical metadata field, e.g. generator."),
                    OpenApiParameter("criterion", str, description="Projects with several criteria: whose answers "
                                     "(default: the primary criterion)."),
                    OpenApiParameter("format", str, enum=["json", "csv"])],
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="Per value: the Bradley–Terry rating from "
                                        "the human judgments across values and from the active model's scores, each "
                                        "with a 95 % bootstrap interval, its rank and rank interval; the win-rate "
                                        "matrices."), **ERRORS},
        tags=["analyses"],
    )  # fmt: skip
    def get(self, request, slug):
        """The leaderboard of a categorical metadata field (e.g. which generator wins), human and model side by side."""
        self.require_manager("see the leaderboard")
        field = request.query_params.get("field") or ""
        if not field:
            fields = leaderboard.candidate_fields(self.project)
            raise ValidationError({"field": [f"Name a metadata field. Candidates: {', '.join(fields) or 'none'}."]})
        try:
            result = leaderboard.field_leaderboard(self.project, field,
                                                   criterion=request.query_params.get("criterion") or None)
        except leaderboard.LeaderboardUnavailable as exc:
            raise ValidationError({"field": [str(exc)]}) from exc
        if request.accepted_renderer.format == "csv":
            response = Response(leaderboard_csv(result))
            response["Content-Disposition"] = f'attachment; filename="{self.project.slug}-leaderboard-{field}.csv"'
            return response
        return Response(leaderboard_body(result))
