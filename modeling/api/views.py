"""The model-loop API under /api/v1/: model versions, retraining, training runs, promotion and rollback.

Access (``labeling.access``): anonymous callers get 401; a caller who is not an active member of the
project gets 404 (the project is not confirmed to exist); raters get 403 everywhere here, since
versions, runs and promotions reveal scores to raters who judge blind; managers read and act.
"""
from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from django.db import transaction
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from core.api_errors import ErrorSerializer, error_responses
from labeling import access
from labeling.models import Project
from modeling.api import serializers as s
from modeling.models import ModelVersion, Promotion, TrainingRun
from modeling.services import promotion as promotion_service
from modeling.services import stopping_rule, warm_start
from modeling.services import training_runs as training_service

ERRORS = error_responses(401, 403, 404)
READ_ERRORS = ERRORS  # managers only: raters get 403


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


def manager_project(request, project: Project | None, what: str = "project", action: str = "see the models") -> Project:
    role = access.role_in(request.user, project, what).require_manager(action)
    return access.writes_to(role, request.method).project


def project_from_slug(request, slug: str, action: str = "see the models") -> Project:
    role = access.project_role(request.user, slug).require_manager(action)
    return access.writes_to(role, request.method).project


def version_for(request, version_id: int, action: str = "see the models") -> ModelVersion:
    version = ModelVersion.objects.select_related("project").filter(pk=version_id).first()
    manager_project(request, version.project if version else None, "model version", action)
    return version


class ProjectListView(GenericAPIView):
    """A page of one project's rows (managers); each list names its rows and serializer, and is ``listed``."""

    pagination_class = Pagination

    def rows(self, project):  # pragma: no cover - overridden
        raise NotImplementedError

    def get(self, request, slug):
        page = self.paginate_queryset(self.rows(project_from_slug(request, slug)))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


def listed(description: str):
    """Class decorator: the OpenAPI entry of a ``ProjectListView``'s GET, a page of its serializer's rows."""

    def document(view: type[ProjectListView]) -> type[ProjectListView]:
        schema = extend_schema(description=description, responses={200: view.serializer_class(many=True), **READ_ERRORS},
                               tags=["models"])
        return extend_schema_view(get=schema)(view)

    return document


@listed("The project's model versions, newest first, with status, metrics and scoring progress.")
class ModelVersionListView(ProjectListView):
    serializer_class = s.ModelVersionSerializer

    def rows(self, project):
        return ModelVersion.objects.filter(project=project).select_related("project", "training_run")


class ModelVersionDetailView(APIView):
    @extend_schema(responses={200: s.ModelVersionSerializer, **READ_ERRORS}, tags=["models"])
    def get(self, request, version_id):
        """One model version."""
        return Response(s.ModelVersionSerializer(version_for(request, version_id), context={"request": request}).data)


class RetrainView(APIView):
    @extend_schema(
        request=None,
        responses={202: s.RetrainAcceptedSerializer, **ERRORS},
        tags=["models"],
        description="Queue a training run now (managers). At most one run per project is open: when one is "
        "already queued or running, that run is returned with created=false.",
    )
    def post(self, request, slug):
        """Retrain now."""
        project = project_from_slug(request, slug, "retrain the model")
        run, created = training_service.request_training(
            project, trigger=TrainingRun.Trigger.MANUAL, reason=f"requested by {request.user.username}", user=request.user
        )
        body = {
            "training_run": run.pk, "created": created, "status": run.status,
            "url": reverse("api-training-run", kwargs={"run_id": run.pk}, request=request),
        }
        return Response(body, status=status.HTTP_202_ACCEPTED)


@listed("The project's training runs, newest first.")
class TrainingRunListView(ProjectListView):
    serializer_class = s.TrainingRunSerializer

    def rows(self, project):
        return TrainingRun.objects.filter(project=project).select_related("project", "requested_by")


class TrainingRunDetailView(APIView):
    @extend_schema(responses={200: s.TrainingRunSerializer, **READ_ERRORS}, tags=["models"])
    def get(self, request, run_id):
        """A training run: status, progress (0..1), stage, log, and the error when it failed."""
        run = TrainingRun.objects.select_related("project", "requested_by").filter(pk=run_id).first()
        manager_project(request, run.project if run else None, "training run")
        return Response(s.TrainingRunSerializer(run, context={"request": request}).data)


class _PromotionView(APIView):
    action_label = ""

    def act(self, version, request, reason):  # pragma: no cover - overridden
        raise NotImplementedError

    def post(self, request, version_id):
        version = version_for(request, version_id, self.action_label)
        form = s.ReasonSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        logged = self.act(version, request, form.validated_data["reason"])  # a refusal is a 409 (refusal_statuses)
        return Response(s.PromotionSerializer(logged).data, status=status.HTTP_202_ACCEPTED)


PROMOTION_RESPONSES = {
    202: OpenApiResponse(s.PromotionSerializer, description="Logged; the version is scoring every image and "
                         "becomes active when that is complete (the previous one serves until then)."),
    400: ErrorSerializer,
    409: OpenApiResponse(ErrorSerializer, description="The version cannot be made active (failed, already active...)."),
    **ERRORS,
}


class PromoteView(_PromotionView):
    action_label = "promote a model version"

    @extend_schema(request=s.ReasonSerializer, responses=PROMOTION_RESPONSES, tags=["models"])
    def post(self, request, version_id):
        """Promote a version (managers): it scores every image, then becomes the active one."""
        return super().post(request, version_id)

    def act(self, version, request, reason):
        return promotion_service.promote(version, user=request.user, reason=reason)


class RollbackView(_PromotionView):
    action_label = "roll back the model"

    @extend_schema(request=s.ReasonSerializer, responses=PROMOTION_RESPONSES, tags=["models"])
    def post(self, request, version_id):
        """Roll back to a version that was active before (managers)."""
        return super().post(request, version_id)

    def act(self, version, request, reason):
        return promotion_service.rollback(version, user=request.user, reason=reason)


@listed("The promotion log: which version was made active, when, by whom and why.")
class PromotionListView(ProjectListView):
    serializer_class = s.PromotionSerializer

    def rows(self, project):
        return Promotion.objects.filter(project=project).select_related("decided_by")


class TrainingSettingsView(APIView):
    @extend_schema(responses={200: s.TrainingSettingsSerializer, **READ_ERRORS}, tags=["models"])
    def get(self, request, slug):
        """The project's training settings (defaults until a manager changes them)."""
        project = project_from_slug(request, slug)
        return Response(s.TrainingSettingsSerializer(promotion_service.training_settings(project)).data)

    @extend_schema(request=s.TrainingSettingsSerializer, responses={200: s.TrainingSettingsSerializer, 400: ErrorSerializer,
                                                                    **ERRORS}, tags=["models"])
    def patch(self, request, slug):
        """Change the training settings (managers); the next training run uses them."""
        project = project_from_slug(request, slug, "change the training settings")
        current = promotion_service.training_settings(project)
        previous_warm_start = current.warm_start_version_id
        serializer = s.TrainingSettingsSerializer(current, data=request.data, partial=True,
                                                  context={"request": request, "project": project})
        serializer.is_valid(raise_exception=True)
        with transaction.atomic():
            serializer.save(project=project)
            stopping_rule.apply_stopping_rule(project)  # a new target, or the rule turned on or off, applies at once
            warm_start.settings_saved(project, previous_warm_start)  # a new warm start is scored on the worker
        return Response(serializer.data)


class RankingAccuracyView(APIView):
    @extend_schema(responses={200: s.RankingAccuracySerializer, **READ_ERRORS}, tags=["models"])
    def get(self, request, slug):
        """The expected ranking accuracy (SRCC against the truth, with its interval) and the stopping target
        (managers). Computed with each human-score fit; docs/active-learning.md, "When to stop"."""
        project = project_from_slug(request, slug, "see the ranking accuracy")
        return Response(s.RankingAccuracySerializer(stopping_rule.accuracy_summary(project)).data)
