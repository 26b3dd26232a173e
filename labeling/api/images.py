"""Images: the filtered list, uploads, and the tags of one image."""
from __future__ import annotations

from django.db.models import Exists, OuterRef
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api_errors import ERRORS, ErrorSerializer
from core.api_input import validated_query
from labeling.api import image_list_filters
from labeling.api import image_serializers
from labeling.api.parsers import BoundedJSONParser
from labeling.api.paging import StandardPagination
from labeling.models import Image, ImageTag, Tag
from labeling.project_scope import ProjectScopedMixin, image_role
from labeling.services import tags as tag_service
from labeling.services.imports import import_uploaded_file


class ImageListView(ProjectScopedMixin, GenericAPIView):
    serializer_class = image_serializers.ManagerImageSerializer
    pagination_class = StandardPagination
    parser_classes = [MultiPartParser, FormParser]

    def get_queryset(self):
        return (
            Image.objects.filter(project=self.project, archived_at=None)
            .select_related("stats")
            .prefetch_related("image_tags__tag")
            .order_by("id")
        )

    @extend_schema(parameters=[image_serializers.ImageFilterSerializer], responses={200: image_serializers.ManagerImageSerializer(many=True), **ERRORS},
                   tags=["images"])
    def get(self, request, slug):
        """The project's images; ``has_score`` refers to the project's active model version. Raters get the
        rater's view (id, URLs, size, tags: no file name, external id, caption or metadata) and may filter by
        tag only."""
        filters = validated_query(image_serializers.ImageFilterSerializer, request)
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
        view = image_serializers.image_serializer_for(self.role)
        serializer = view(page, many=True, context={"request": request, "show_prompt": self.project.show_prompt})
        return self.get_paginated_response(serializer.data)

    @extend_schema(
        request={"multipart/form-data": image_serializers.ImageUploadSerializer},
        responses={
            201: image_serializers.ImageUploadResultSerializer,
            200: OpenApiResponse(image_serializers.ImageUploadResultSerializer, description="A duplicate: the image already stored."),
            413: ErrorSerializer,
            **ERRORS,
        },
        tags=["images"],
    )
    def post(self, request, slug):
        """Upload one image (managers). It is validated like an import; a bad file is refused with the reason."""
        self.require_manager("upload images")
        if len(request.FILES.getlist("file")) > 1:
            raise ValidationError({"file": ["Upload one file per request."]})
        form = image_serializers.ImageUploadSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        upload = form.validated_data["file"]
        image, created = import_uploaded_file(  # a rejected file is a refusal (400, code image_rejected)
            self.project, upload, upload.name, tags=form.validated_data.get("tags", []),
            caption=form.validated_data.get("caption", ""), metadata=form.validated_data.get("metadata", {}),
            external_id=form.validated_data.get("external_id", ""),
        )
        image = self.get_queryset().get(pk=image.pk)
        body = image_serializers.ImageUploadResultSerializer(image, context={"request": request, "duplicate": not created}).data
        return Response(body, status=201 if created else 200)


class ImageTagsView(APIView):
    parser_classes = [BoundedJSONParser, FormParser]

    def _image(self, request, image_id):
        self.image, self.role = image_role(request, image_id)
        return self.image

    def _tags_response(self, status_code=200):
        viewer = {"viewer": self.request.user, "sees_names": self.role.is_manager}
        return Response(image_serializers.ImageTagSerializer(tag_service.image_tags(self.image), many=True, context=viewer).data,
                        status=status_code)

    @extend_schema(responses={200: image_serializers.ImageTagSerializer(many=True), **ERRORS}, tags=["images"])
    def get(self, request, image_id):
        """The image's tags (an image has a handful, so the list is not paginated)."""
        self._image(request, image_id)
        return self._tags_response()

    @extend_schema(
        request=image_serializers.TagNameSerializer,
        responses={201: image_serializers.ImageTagSerializer(many=True), 200: image_serializers.ImageTagSerializer(many=True), **ERRORS},
        tags=["images"],
    )
    def post(self, request, image_id):
        """Add a tag; in a closed vocabulary only existing tags (managers may add new ones). Answers the image's tags."""
        image = self._image(request, image_id)
        form = image_serializers.TagNameSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        _, created = tag_service.add_tag(
            image, form.validated_data["name"], request.user, may_extend_vocabulary=self.role.is_manager
        )
        return self._tags_response(201 if created else 200)

    @extend_schema(
        parameters=[OpenApiParameter("name", str, required=True, description="The tag to remove.")],
        responses={200: image_serializers.ImageTagSerializer(many=True), **ERRORS},
        tags=["images"],
    )
    def delete(self, request, image_id):
        """Remove a tag: raters only the tags they added, managers any. Answers the image's remaining tags."""
        image = self._image(request, image_id)
        name = request.query_params.get("name")
        if not name:
            raise ValidationError({"name": ["Give the tag to remove as ?name=…"]})
        tag_service.remove_tag(image, name, request.user, is_manager=self.role.is_manager)
        return self._tags_response()
