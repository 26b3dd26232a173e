"""Reinstating a failed or paused rater over the API (managers): ``labeling.services.qualification``."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api_errors import ERRORS
from labeling.project_scope import ProjectScopedMixin
from labeling.models import Membership
from labeling.services import qualification


REINSTATED = inline_serializer("RaterReinstated", {
    "rater": serializers.IntegerField(),
    "qualification": serializers.CharField(allow_null=True),
    "paused_at": serializers.DateTimeField(allow_null=True),
})


class RaterReinstateView(ProjectScopedMixin, APIView):
    @extend_schema(request=None, responses={200: REINSTATED, **ERRORS}, tags=["projects"])
    def post(self, request, slug, user_id):
        """Let a rater who failed the qualification, or was paused, rate again; their judgments count again."""
        self.require_manager("reinstate raters")
        try:
            membership = qualification.reinstate(self.project, user_id, by=request.user)
        except Membership.DoesNotExist:
            raise NotFound("No such rater in this project.") from None
        return Response({"rater": membership.user_id, "qualification": membership.qualification or None,
                         "paused_at": membership.paused_at})
