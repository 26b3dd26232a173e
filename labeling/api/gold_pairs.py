"""Gold pairs (managers): pairs with a known answer, mixed into the rating loop."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from core.api_errors import ERRORS
from labeling.api import serializers as s
from labeling.api.paging import StandardPagination
from labeling.models import GoldPair
from labeling.project_scope import ProjectScopedMixin


class GoldPairListView(ProjectScopedMixin, GenericAPIView):
    serializer_class = s.GoldPairSerializer
    pagination_class = StandardPagination

    def get_serializer(self, *args, **kwargs):
        return s.GoldPairSerializer(*args, project=self.project if self.request else None, **kwargs)

    @extend_schema(responses={200: s.GoldPairSerializer(many=True), **ERRORS}, tags=["gold pairs"])
    def get(self, request, slug):
        """The project's gold pairs (managers)."""
        self.require_manager("see gold pairs")
        page = self.paginate_queryset(GoldPair.objects.filter(project=self.project).order_by("id"))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(request=s.GoldPairSerializer, responses={201: s.GoldPairSerializer, **ERRORS}, tags=["gold pairs"])
    def post(self, request, slug):
        """Mark a pair with a known answer (``expected`` is the right answer with image_a on the left)."""
        self.require_manager("mark gold pairs")
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        serializer.save(project=self.project, created_by=request.user)
        return Response(serializer.data, status=201)
