"""The rating loop's pairs: the next pair under a lease, skipping it, releasing it."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from core.api_errors import ERRORS, ErrorSerializer, refused
from labeling.api import serializers as s
from labeling.project_scope import ProjectScopedMixin
from labeling.services import crowd_links, leases, pair_serving, qualification


class NextPairView(ProjectScopedMixin, APIView):
    throttle_scope = "next_pair"
    throttle_classes = [ScopedRateThrottle]

    @extend_schema(
        responses={
            **ERRORS,
            200: s.NextPairSerializer,
            204: OpenApiResponse(description="Nothing is left for this rater to judge right now."),
            410: OpenApiResponse(ErrorSerializer, description='The campaign is complete (code "campaign_complete"): '
                                 "its ranking reached the manager's target and no more pairs are served; or a crowd "
                                 'worker reached their quota (code "quota_reached"). For a crowd worker the answer '
                                 "also carries completion_code, completion_url and quota."),
            403: OpenApiResponse(ErrorSerializer, description='The rater failed the qualification (code '
                                 '"not_qualified") or is paused by the running gold check (code "rater_paused").'),
        },
        tags=["rating"],
    )
    def get(self, request, slug):
        """Lease the next pair for the caller. The lease expires after TAGRANK_LEASE_SECONDS. A caller who
        already holds TAGRANK_MAX_LIVE_LEASES live leases gets the oldest of them back, not a new pair.
        Once the campaign is complete (its manager chose to stop at a target of ranking accuracy, and it
        was reached) the answer is 410 with code ``campaign_complete``; judgments of leases already held
        are still stored."""
        try:
            result = pair_serving.next_pair(self.project, request.user)
        except (pair_serving.CampaignComplete, qualification.NotQualified, qualification.RaterPaused,
                crowd_links.QuotaReached) as exc:
            # A crowd worker who is done (or whose campaign is) gets the completion code or URL with it.
            return refused(exc, **crowd_links.completion_for(self.project, request.user))
        if result is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(s.pair_payload(request, result[1], show_prompt=self.project.show_prompt,
                                       criteria=self.project.criteria))


class SkipView(ProjectScopedMixin, APIView):
    throttle_scope = "submit"
    throttle_classes = [ScopedRateThrottle]

    @extend_schema(
        request=s.LeaseRequestSerializer, responses={200: s.LeaseStateSerializer, 409: ErrorSerializer, **ERRORS},
        tags=["rating"],
    )
    def post(self, request, slug):
        """Skip a leased pair: its slot returns to others and the caller is not shown it again."""
        form = s.LeaseRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        lease = leases.end_lease(self.project, request.user, form.validated_data["lease"], skip=True)
        return Response({"lease": str(lease.token), "state": lease.state})


class ReleaseView(ProjectScopedMixin, APIView):
    @extend_schema(request=s.ReleaseRequestSerializer, responses={200: s.ReleasedSerializer, **ERRORS}, tags=["rating"])
    def post(self, request, slug):
        """Give back leases not judged (e.g. a prefetched pair when the page closes); the caller may get them later."""
        form = s.ReleaseRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        released = leases.release_leases(self.project, request.user, form.validated_data["leases"])
        return Response({"released": released})
