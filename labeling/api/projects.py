"""Projects of the caller: the list with counts, one project, and its progress."""
from __future__ import annotations

from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api_errors import ERRORS
from labeling import access
from labeling.api import serializers as s
from labeling.api.paging import StandardPagination
from labeling.models import Comparison, Image, Membership, Tag
from labeling.project_scope import ProjectScopedMixin
from labeling.services import comparisons as comparison_service
from labeling.services import campaign_target, pair_queue


def projects_with_counts(user, include_archived: bool = False):
    def count_of(model, **filters):
        rows = model.objects.filter(project=OuterRef("pk"), **filters).order_by().values("project")
        # COUNT(*), not of the ids: an index on the project (image_unarchived for the images) answers it alone.
        return Coalesce(Subquery(rows.annotate(n=Count("*")).values("n")[:1], output_field=IntegerField()), 0)

    projects = access.projects_for(user)
    if not include_archived:
        projects = projects.filter(archived_at=None)
    return projects.annotate(
        image_count=count_of(Image, archived_at=None),
        tag_count=count_of(Tag),
        comparison_count=count_of(Comparison),
        my_comparison_count=count_of(Comparison, rater=user),
    )


def roles_for(user, projects) -> dict[int, str]:
    return access.roles_for(user, projects)


class ProjectListView(GenericAPIView):
    serializer_class = s.ProjectSerializer
    pagination_class = StandardPagination

    def get_queryset(self):
        return projects_with_counts(self.request.user).order_by("name", "id")

    @extend_schema(responses={200: s.ProjectSerializer(many=True)}, tags=["projects"])
    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        serializer = self.get_serializer(page, many=True, context={"roles": roles_for(request.user, page)})
        return self.get_paginated_response(serializer.data)

    @extend_schema(request=s.ProjectSerializer, responses={201: s.ProjectSerializer, **ERRORS}, tags=["projects"])
    def post(self, request):
        """Create a project (staff, or users with the ``labeling.add_project`` permission); you become its manager."""
        if not access.can_create_projects(request.user):
            raise PermissionDenied("You may not create projects; ask an administrator.")
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        project = serializer.save(created_by=request.user)
        Membership.objects.create(project=project, user=request.user, role=Membership.Role.MANAGER)
        project = projects_with_counts(request.user).get(pk=project.pk)
        return Response(
            s.ProjectSerializer(project, context={"roles": {project.pk: "manager"}}).data, status=201
        )


class ProjectDetailView(ProjectScopedMixin, GenericAPIView):
    serializer_class = s.ProjectSerializer

    def _project_with_counts(self):
        return projects_with_counts(self.request.user, include_archived=True).get(pk=self.project.pk)

    @extend_schema(responses={200: s.ProjectSerializer, **ERRORS}, tags=["projects"])
    def get(self, request, slug):
        return Response(self.get_serializer(self._project_with_counts(), context={"roles": {self.project.pk: self.role.name}}).data)

    @extend_schema(request=s.ProjectSerializer, responses={200: s.ProjectSerializer, **ERRORS}, tags=["projects"])
    def patch(self, request, slug):
        """Change a project's settings (managers). Changing the overlap reopens or closes queued pairs."""
        self.require_manager("change the project")
        old_overlap = self.project.overlap
        serializer = self.get_serializer(self.project, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        project = serializer.save()
        if project.overlap != old_overlap:
            pair_queue.reopen_for_overlap(project)
        campaign_target.refresh_completion(project)  # a new target may complete or reopen the campaign
        return Response(self.get_serializer(self._project_with_counts(), context={"roles": {project.pk: "manager"}}).data)


class ProgressView(ProjectScopedMixin, APIView):
    @extend_schema(
        parameters=[OpenApiParameter("days", int, description="Days of per-day counts (1-366, default 30).")],
        responses={200: s.ProgressSerializer, **ERRORS},
        tags=["projects"],
    )
    def get(self, request, slug):
        """Comparisons per day and per rater (with gold accuracy), and the pairs left in the queue (managers)."""
        self.require_manager("see the project's progress")
        try:
            days = int(request.query_params.get("days", 30))
        except ValueError:
            raise ValidationError({"days": ["A whole number of days."]}) from None
        if not 1 <= days <= 366:
            raise ValidationError({"days": ["Between 1 and 366."]})
        progress = comparison_service.project_progress(self.project, days=days)
        return Response(s.ProgressSerializer(progress).data)
