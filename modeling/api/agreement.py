"""The dashboards' numbers as JSON, and the reversible exclusion of a rater from training.

Both are for the project's managers. The numbers are the latest stored ``AgreementReport``: nothing is
computed on request; POST asks the worker for a fresh report.
"""
from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api_errors import ErrorSerializer, error_responses
from labeling.project_scope import ProjectScopedMixin

from labeling.models import Membership
from labeling.services import invites as invite_service
from modeling.services import agreement, criterion_scores
import worker.dispatch as dispatch

ERRORS = error_responses(401, 403, 404)


def report_json(report) -> dict:
    """The stored report as the API and the dashboard's CSV links give it."""
    return {
        "report_id": report.pk,
        "computed_at": report.computed_at.isoformat(),
        "model_version": report.model_version_id,
        "n_comparisons": report.n_comparisons,
        **report.data,
    }


class AgreementView(ProjectScopedMixin, APIView):
    @extend_schema(
        parameters=[OpenApiParameter("criterion", str, description="Projects with several criteria: whose answers "
                                     "the report reads (default: the primary criterion).")],
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="The latest stored agreement report."),
                   400: ErrorSerializer, **ERRORS},
        tags=["dashboards"],
    )  # fmt: skip
    def get(self, request, slug):
        """Human–human and model–human agreement, the rater table and the charts' data, as last computed.

        404 with code ``no_report`` until the first report is computed (POST here, or wait for the schedule).
        """
        self.require_manager("see the project's agreement numbers")
        try:
            criterion = criterion_scores.resolve(self.project, request.query_params.get("criterion"))
        except ValueError as error:
            raise ValidationError({"criterion": [str(error)]}) from None
        report = agreement.latest_report(self.project, criterion)
        if report is None:
            raise NotFound(detail={"detail": "No agreement report yet: POST here to compute one.", "code": "no_report"})
        return Response(report_json(report))

    @extend_schema(request=None, responses={202: OpenApiResponse(OpenApiTypes.OBJECT), **ERRORS}, tags=["dashboards"])
    def post(self, request, slug):
        """Refit the human scores and recompute the report on the worker (``default`` queue)."""
        self.require_manager("recompute the agreement numbers")
        dispatch.send_metrics_refresh(self.project.pk)
        return Response({"detail": "Recomputing: the new report replaces the current one when ready."},
                        status=status.HTTP_202_ACCEPTED)


class ExclusionSerializer(serializers.Serializer):
    excluded = serializers.BooleanField(help_text="true: leave this rater's comparisons out of training and the "
                                                  "human scores; false: take them back in.")


class ExclusionResponseSerializer(serializers.Serializer):
    user_id = serializers.IntegerField()
    username = serializers.CharField()
    excluded = serializers.BooleanField()


class RaterExclusionView(ProjectScopedMixin, APIView):
    @extend_schema(request=ExclusionSerializer, responses={200: ExclusionResponseSerializer, 400: ErrorSerializer,
                                                           **ERRORS}, tags=["dashboards"])
    def post(self, request, slug, user_id):
        """Exclude a rater's comparisons from training and the human scores, or include them again.

        Nothing is deleted; the human scores are refitted and the report recomputed in the background.
        """
        self.require_manager("exclude raters from training")
        body = ExclusionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            membership = invite_service.set_rater_excluded(
                self.project, user_id, body.validated_data["excluded"], by=request.user.username
            )  # fmt: skip
        except Membership.DoesNotExist:
            raise NotFound("This user is not a member of the project.") from None
        return Response({"user_id": membership.user_id, "username": membership.user.username,
                         "excluded": membership.excluded_from_training})
