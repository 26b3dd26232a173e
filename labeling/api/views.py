"""The labelling API under /api/v1/. Views check access and shape requests; services do the work."""
from __future__ import annotations

from django.contrib.auth import authenticate
from django.db.models import Count, Exists, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.pagination import CursorPagination, PageNumberPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from labeling import access
from labeling.api.parsers import BoundedJSONParser
from labeling.api import image_list_filters
from labeling.api import serializers as s
from labeling.api import token_auth
from labeling.api.permissions import ProjectScopedMixin, image_role
from labeling.login_limits import lockout_response
from labeling.models import Comparison, GoldPair, Image, ImageTag, Membership, Tag
from labeling.services import api_tokens
from labeling.services import comparisons as comparison_service
from labeling.services import campaign_target, crowd_links, leases, pair_queue, pair_serving, qualification
from labeling.services import tags as tag_service
from labeling.services import vocabulary as vocabulary_service
from labeling.services.imports import RejectedImage, import_uploaded_file
import worker.dispatch as dispatch

ERRORS = {400: s.ErrorSerializer, 401: s.ErrorSerializer, 403: s.ErrorSerializer, 404: s.ErrorSerializer}


# The HTTP status of each refusal the services raise (they know nothing of HTTP); any other is a 400.
REFUSAL_STATUS = {
    leases.LeaseForeign: 403,
    leases.LeaseExpired: 410,
    leases.LeaseClosed: 409,
    comparison_service.ClientKeyReused: 409,
    comparison_service.NothingToUndo: 404,
    comparison_service.UndoRefused: 409,
    tag_service.TagNotOnImage: 404,
    tag_service.TagNotYours: 403,
    vocabulary_service.TagExists: 409,
    pair_serving.CampaignComplete: 410,
    qualification.NotQualified: 403,
    qualification.RaterPaused: 403,
    crowd_links.QuotaReached: 410,
}


def refusal_status(exc) -> int:
    return next((code for kind, code in REFUSAL_STATUS.items() if isinstance(exc, kind)), 400)


def refused(exc, **extra) -> Response:
    """A service's refusal (``labeling.services.refusals.Refusal``) as a 4xx with the message and a stable code."""
    return Response({"detail": exc.message, "code": exc.code, **extra}, status=refusal_status(exc))


class StandardPagination(PageNumberPagination):
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


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


# --- Auth ------------------------------------------------------------------------------------------


class TokenView(APIView):
    """Exchange a user name and password for an API token (the same token until it expires or is revoked).

    JSON only: no multipart or form parsing on an anonymous endpoint. Failed attempts count towards the
    login limit (django-axes) shared with the login page."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"
    parser_classes = [BoundedJSONParser]

    @extend_schema(
        request=s.TokenRequestSerializer,
        responses={200: s.TokenResponseSerializer, 400: s.ErrorSerializer, 429: s.ErrorSerializer},
        auth=[],
        tags=["auth"],
    )
    def post(self, request):
        form = s.TokenRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        user = authenticate(request, username=form.validated_data["username"], password=form.validated_data["password"])
        if getattr(request, "axes_locked_out", False):
            return lockout_response(request)
        if user is None or not user.is_active:
            return Response(
                {"detail": "Unknown user name or wrong password.", "code": "invalid_credentials"}, status=400
            )
        token = token_auth.issue_token(user)
        return Response({"token": token.key, "expires_at": token.created + token_auth.token_ttl()})


class TokenRevokeView(APIView):
    """Revoke the caller's API token (sign out every script using it); the next token request issues a new one."""

    @extend_schema(request=None, responses={204: OpenApiResponse(description="Revoked."), **ERRORS}, tags=["auth"])
    def post(self, request):
        api_tokens.revoke_tokens(request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Projects --------------------------------------------------------------------------------------


def projects_with_counts(user, include_archived: bool = False):
    def count_of(model, **filters):
        rows = model.objects.filter(project=OuterRef("pk"), **filters).order_by().values("project")
        return Coalesce(Subquery(rows.annotate(n=Count("pk")).values("n")[:1], output_field=IntegerField()), 0)

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


# --- Pairs and comparisons ---------------------------------------------------------------------------


class NextPairView(ProjectScopedMixin, APIView):
    throttle_scope = "next_pair"
    throttle_classes = [ScopedRateThrottle]

    @extend_schema(
        responses={
            **ERRORS,
            200: s.NextPairSerializer,
            204: OpenApiResponse(description="Nothing is left for this rater to judge right now."),
            410: OpenApiResponse(s.ErrorSerializer, description='The campaign is complete (code "campaign_complete"): '
                                 "its ranking reached the manager's target and no more pairs are served; or a crowd "
                                 'worker reached their quota (code "quota_reached"). For a crowd worker the answer '
                                 "also carries completion_code, completion_url and quota."),
            403: OpenApiResponse(s.ErrorSerializer, description='The rater failed the qualification (code '
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
        filters = s.validated_query(s.ComparisonFilterSerializer, request)
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
            409: s.ErrorSerializer,
            410: s.ErrorSerializer,
            **ERRORS,
        },
        tags=["rating"],
    )
    def post(self, request, slug):
        """Store a judgment of a leased pair. A retry with the same client_key returns the first answer."""
        form = s.ComparisonSubmitSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            comparison, created = comparison_service.submit_comparison(
                self.project, request.user, lease=form.validated_data["lease"], winner=form.validated_data.get("winner"),
                client_key=form.validated_data["client_key"], response_ms=form.validated_data.get("response_ms"),
                answers=form.validated_data.get("answers"),
            )
        except leases.LeaseError as exc:
            return refused(exc)
        body = s.comparison_payload(comparison, self.project.slug, request.user.username)
        if self.project.criteria:  # several criteria: every stored answer (a replay gives the first ones)
            body["answers"] = dict(comparison.answers.values_list("criterion", "outcome"))
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class UndoView(ProjectScopedMixin, APIView):
    throttle_scope = "submit"
    throttle_classes = [ScopedRateThrottle]

    @extend_schema(
        request=s.UndoRequestSerializer,
        responses={200: s.UndoResponseSerializer, 409: s.ErrorSerializer, **ERRORS},
        tags=["rating"],
    )
    def post(self, request, slug):
        """Take back the caller's latest judgment (within TAGRANK_UNDO_SECONDS) and lease its pair again."""
        form = s.UndoRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            lease, undone_id = comparison_service.undo_last_comparison(
                self.project, request.user, comparison_id=form.validated_data.get("comparison")
            )
        except leases.LeaseError as exc:
            return refused(exc)
        return Response({**s.pair_payload(request, lease, show_prompt=self.project.show_prompt,
                                          criteria=self.project.criteria), "undone": undone_id})


class SkipView(ProjectScopedMixin, APIView):
    throttle_scope = "submit"
    throttle_classes = [ScopedRateThrottle]

    @extend_schema(
        request=s.LeaseRequestSerializer, responses={200: s.LeaseStateSerializer, 409: s.ErrorSerializer, **ERRORS},
        tags=["rating"],
    )
    def post(self, request, slug):
        """Skip a leased pair: its slot returns to others and the caller is not shown it again."""
        form = s.LeaseRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            lease = leases.end_lease(self.project, request.user, form.validated_data["lease"], skip=True)
        except leases.LeaseError as exc:
            return refused(exc)
        return Response({"lease": str(lease.token), "state": lease.state})


class ReleaseView(ProjectScopedMixin, APIView):
    @extend_schema(request=s.ReleaseRequestSerializer, responses={200: s.ReleasedSerializer, **ERRORS}, tags=["rating"])
    def post(self, request, slug):
        """Give back leases not judged (e.g. a prefetched pair when the page closes); the caller may get them later."""
        form = s.ReleaseRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        released = leases.release_leases(self.project, request.user, form.validated_data["leases"])
        return Response({"released": released})


# --- Images and tags -------------------------------------------------------------------------------


class ImageListView(ProjectScopedMixin, GenericAPIView):
    serializer_class = s.ManagerImageSerializer
    pagination_class = StandardPagination
    parser_classes = [MultiPartParser, FormParser]

    def get_queryset(self):
        return (
            Image.objects.filter(project=self.project, archived_at=None)
            .select_related("stats")
            .prefetch_related("image_tags__tag")
            .order_by("id")
        )

    @extend_schema(parameters=[s.ImageFilterSerializer], responses={200: s.ManagerImageSerializer(many=True), **ERRORS},
                   tags=["images"])
    def get(self, request, slug):
        """The project's images; ``has_score`` refers to the project's active model version. Raters get the
        rater's view (id, URLs, size, tags: no file name, external id, caption or metadata) and may filter by
        tag only."""
        filters = s.validated_query(s.ImageFilterSerializer, request)
        images = self.get_queryset()
        if filters.get("tag"):
            images = images.filter(
                Exists(ImageTag.objects.filter(image=OuterRef("pk"), tag__name=Tag.normalise(filters["tag"])))
            )
        if filters.get("external_id"):
            if not self.role.sees_image_sources:
                raise PermissionDenied("Raters judge blind: only managers may look images up by external id.")
            images = images.filter(external_id=filters["external_id"])
        has_score = filters.get("has_score")
        if has_score is not None and not self.role.sees_scores:
            raise PermissionDenied("Raters judge blind: only managers may filter images by score.")
        images = image_list_filters.apply_registered(images, self.project, filters)  # has_score
        page = self.paginate_queryset(images)
        view = s.image_serializer_for(self.role)
        serializer = view(page, many=True, context={"request": request, "show_prompt": self.project.show_prompt})
        return self.get_paginated_response(serializer.data)

    @extend_schema(
        request={"multipart/form-data": s.ImageUploadSerializer},
        responses={
            201: s.ImageUploadResultSerializer,
            200: OpenApiResponse(s.ImageUploadResultSerializer, description="A duplicate: the image already stored."),
            413: s.ErrorSerializer,
            **ERRORS,
        },
        tags=["images"],
    )
    def post(self, request, slug):
        """Upload one image (managers). It is validated like an import; a bad file is refused with the reason."""
        self.require_manager("upload images")
        if len(request.FILES.getlist("file")) > 1:
            raise ValidationError({"file": ["Upload one file per request."]})
        form = s.ImageUploadSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        upload = form.validated_data["file"]
        try:
            image, created = import_uploaded_file(
                self.project, upload, upload.name, tags=form.validated_data.get("tags", []),
                caption=form.validated_data.get("caption", ""), metadata=form.validated_data.get("metadata", {}),
                external_id=form.validated_data.get("external_id", ""),
            )
        except RejectedImage as exc:
            return Response({"detail": f"{upload.name}: {exc}", "code": "image_rejected", "file": upload.name},
                            status=400)
        if created:
            dispatch.send_images_imported(self.project.pk, [image.pk])
        image = self.get_queryset().get(pk=image.pk)
        body = s.ImageUploadResultSerializer(image, context={"request": request, "duplicate": not created}).data
        return Response(body, status=201 if created else 200)


class ImageTagsView(APIView):
    parser_classes = [BoundedJSONParser, FormParser]

    def _image(self, request, image_id):
        self.image, self.role = image_role(request, image_id)
        return self.image

    def _tags_response(self, status_code=200):
        viewer = {"viewer": self.request.user, "sees_names": self.role.is_manager}
        return Response(s.ImageTagSerializer(tag_service.image_tags(self.image), many=True, context=viewer).data,
                        status=status_code)

    @extend_schema(responses={200: s.ImageTagSerializer(many=True), **ERRORS}, tags=["images"])
    def get(self, request, image_id):
        """The image's tags (an image has a handful, so the list is not paginated)."""
        self._image(request, image_id)
        return self._tags_response()

    @extend_schema(
        request=s.TagNameSerializer,
        responses={201: s.ImageTagSerializer(many=True), 200: s.ImageTagSerializer(many=True), **ERRORS},
        tags=["images"],
    )
    def post(self, request, image_id):
        """Add a tag; in a closed vocabulary only existing tags (managers may add new ones). Answers the image's tags."""
        image = self._image(request, image_id)
        form = s.TagNameSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            _, created = tag_service.add_tag(
                image, form.validated_data["name"], request.user, may_extend_vocabulary=self.role.is_manager
            )
        except tag_service.TagRefused as exc:
            return refused(exc)
        return self._tags_response(201 if created else 200)

    @extend_schema(
        parameters=[OpenApiParameter("name", str, required=True, description="The tag to remove.")],
        responses={200: s.ImageTagSerializer(many=True), **ERRORS},
        tags=["images"],
    )
    def delete(self, request, image_id):
        """Remove a tag: raters only the tags they added, managers any. Answers the image's remaining tags."""
        image = self._image(request, image_id)
        name = request.query_params.get("name")
        if not name:
            raise ValidationError({"name": ["Give the tag to remove as ?name=…"]})
        try:
            tag_service.remove_tag(image, name, request.user, is_manager=self.role.is_manager)
        except tag_service.TagRefused as exc:
            return refused(exc)
        return self._tags_response()


class VocabularyView(ProjectScopedMixin, GenericAPIView):
    serializer_class = s.VocabularyTagSerializer
    pagination_class = StandardPagination

    @extend_schema(
        parameters=[s.VocabularyFilterSerializer],
        responses={200: s.VocabularyTagSerializer(many=True), **ERRORS},
        tags=["images"],
    )
    def get(self, request, slug):
        """The project's tag vocabulary, for autocompletion: most used first."""
        filters = s.validated_query(s.VocabularyFilterSerializer, request)
        tags = Tag.objects.filter(project=self.project).annotate(image_count=Count("image_tags"))
        prefix = filters.get("q")
        if prefix:
            tags = tags.filter(name__startswith=Tag.normalise(prefix))
        page = self.paginate_queryset(tags.order_by("-image_count", "name"))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


# --- Gold pairs, progress ----------------------------------------------------------------------------


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
