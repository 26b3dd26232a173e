"""Reinstating a failed or paused rater over the API (managers): ``labeling.services.qualification``."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.project_scope import ProjectScopedMixin
from labeling.models import Membership
from labeling.services import qualification


class RaterReinstateView(ProjectScopedMixin, APIView):
    @extend_schema(request=None, tags=["projects"])
    def post(self, request, slug, user_id):
        """Let a rater who failed the qualification, or was paused, rate again; their judgments count again."""
        self.require_manager("reinstate raters")
        try:
            membership = qualification.reinstate(self.project, user_id, by=request.user)
        except Membership.DoesNotExist:
            raise NotFound("No such rater in this project.") from None
        return Response({"rater": membership.user_id, "qualification": membership.qualification or None,
                         "paused_at": membership.paused_at})
