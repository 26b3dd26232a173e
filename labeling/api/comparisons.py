"""Judgments: submit one (idempotent by client key), list them, undo the latest."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied
from rest_framework.generics import GenericAPIView
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import FormParser
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from core.api_errors import ERRORS, ErrorSerializer
from core.api_input import validated_query
from labeling.api import serializers as s
from labeling.api.parsers import BoundedJSONParser
from labeling.models import Comparison
from labeling.project_scope import ProjectScopedMixin
from labeling.services import comparisons as comparison_service


class ComparisonPagination(CursorPagination):
    """Cursor pages: stable while comparisons keep arriving, and no COUNT(*) over a large table."""

    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000
    ordering = "-id"


def submit_throttles(view, methods=("POST",)):
    if view.request is not None and view.request.method in methods:
        return [ScopedRateThrottle()]
    return []


class ComparisonListView(ProjectScopedMixin, GenericAPIView):
    serializer_class = s.ComparisonSerializer
    pagination_class = ComparisonPagination
    throttle_scope = "submit"
    parser_classes = [BoundedJSONParser, FormParser]

    def get_throttles(self):
        return submit_throttles(self)

    def get_serializer_class(self):
        if self.request is not None and self.request.method == "GET" and self.role.is_manager:
            return s.ManagerComparisonSerializer
        return s.ComparisonSerializer

    def get_queryset(self):
        return Comparison.objects.filter(project=self.project).select_related("rater", "project")

    @extend_schema(
        parameters=[s.ComparisonFilterSerializer],
        responses={200: s.ManagerComparisonSerializer(many=True), **ERRORS},
        tags=["rating"],
    )
    def get(self, request, slug):
        """Comparisons of the project, newest first: all of them for managers, a rater's own for raters."""
        filters = validated_query(s.ComparisonFilterSerializer, request)
        comparisons = self.get_queryset()
        rater = filters.get("rater")
        if not self.role.is_manager:
            if rater is not None and rater != request.user.pk:
                raise PermissionDenied("Raters can read only their own comparisons.")
            rater = request.user.pk
        if rater is not None:
            comparisons = comparisons.filter(rater_id=rater)
        if "since" in filters:
            comparisons = comparisons.filter(created_at__gte=filters["since"])
        if "until" in filters:
            comparisons = comparisons.filter(created_at__lt=filters["until"])
        page = self.paginate_queryset(comparisons)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(
        request=s.ComparisonSubmitSerializer,
        responses={
            201: s.ComparisonSerializer,
            200: OpenApiResponse(s.ComparisonSerializer, description="A replay: the judgment stored earlier."),
            409: ErrorSerializer,
            410: ErrorSerializer,
            **ERRORS,
        },
        tags=["rating"],
    )
    def post(self, request, slug):
        """Store a judgment of a leased pair. A retry with the same client_key returns the first answer."""
        form = s.ComparisonSubmitSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        comparison, created = comparison_service.submit_comparison(
            self.project, request.user, lease=form.validated_data["lease"], winner=form.validated_data.get("winner"),
            client_key=form.validated_data["client_key"], response_ms=form.validated_data.get("response_ms"),
            answers=form.validated_data.get("answers"),
        )
        body = s.comparison_payload(comparison, self.project.slug, request.user.username)
        if self.project.criteria:  # several criteria: every stored answer (a replay gives the first ones)
            body["answers"] = dict(comparison.answers.values_list("criterion", "outcome"))
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class UndoView(ProjectScopedMixin, APIView):
    throttle_scope = "submit"
    throttle_classes = [ScopedRateThrottle]

    @extend_schema(
        request=s.UndoRequestSerializer,
        responses={200: s.UndoResponseSerializer, 409: ErrorSerializer, **ERRORS},
        tags=["rating"],
    )
    def post(self, request, slug):
        """Take back the caller's latest judgment (within TAGRANK_UNDO_SECONDS) and lease its pair again."""
        form = s.UndoRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        lease, undone_id = comparison_service.undo_last_comparison(
            self.project, request.user, comparison_id=form.validated_data.get("comparison")
        )
        return Response({**s.pair_payload(request, lease, show_prompt=self.project.show_prompt,
                                          criteria=self.project.criteria), "undone": undone_id})
