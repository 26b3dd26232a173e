"""API of vocabulary curation (managers): create, rename, merge and delete tags."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from django.db.models import Count
from rest_framework.exceptions import NotFound
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import FormParser

from labeling.api.parsers import BoundedJSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from core.limits import MAX_ID
from core.api_errors import ERRORS, error_responses
from core.api_input import validated_query
from labeling.api import image_serializers
from labeling.api.paging import StandardPagination
from labeling.project_scope import ProjectScopedMixin

from labeling.models import Tag
from labeling.services import vocabulary

CURATION_ERRORS = error_responses(400, 401, 403, 404, 409)


class VocabularyTagNameSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)


class MergeSerializer(serializers.Serializer):
    tags = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=MAX_ID), min_length=1,
                                 max_length=1000, help_text="Ids of the tags to merge into this one.")


TagOut = inline_serializer("CuratedTag", {
    "id": serializers.IntegerField(), "name": serializers.CharField(), "image_count": serializers.IntegerField(),
})


def tag_payload(tag: Tag) -> dict:
    return {"id": tag.pk, "name": tag.name, "image_count": tag.image_tags.count()}


class CurationMixin(ProjectScopedMixin):
    parser_classes = [BoundedJSONParser, FormParser]

    def tag(self, tag_id: int) -> Tag:
        return self.managed_row(Tag, tag_id, "curate the vocabulary", "No such tag in this project.")


class VocabularyCreateView(CurationMixin, APIView):
    @extend_schema(request=VocabularyTagNameSerializer, responses={201: TagOut, **CURATION_ERRORS}, tags=["vocabulary"])
    def post(self, request, slug):
        """Add a tag to the vocabulary (e.g. before raters start, in a closed vocabulary)."""
        self.require_manager("curate the vocabulary")
        form = VocabularyTagNameSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        tag = vocabulary.create_tag(self.project, form.validated_data["name"])
        return Response(tag_payload(tag), status=201)


class VocabularyTagView(CurationMixin, APIView):
    @extend_schema(request=VocabularyTagNameSerializer, responses={200: TagOut, **CURATION_ERRORS}, tags=["vocabulary"])
    def patch(self, request, slug, tag_id):
        """Rename a tag (on every image). A name already in use is refused with 409: merge instead."""
        tag = self.tag(tag_id)
        form = VocabularyTagNameSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        tag = vocabulary.rename_tag(tag, form.validated_data["name"])
        return Response(tag_payload(tag))

    @extend_schema(
        parameters=[OpenApiParameter("confirm", str, required=True, description="The tag's name, to confirm.")],
        responses={200: inline_serializer("DeletedTag", {"deleted": serializers.CharField(),
                                                         "removed_from_images": serializers.IntegerField()}),
                   **CURATION_ERRORS},
        tags=["vocabulary"],
    )
    def delete(self, request, slug, tag_id):
        """Delete a tag from the vocabulary and from every image; ``?confirm=`` must repeat its name."""
        tag = self.tag(tag_id)
        name = tag.name
        removed = vocabulary.delete_tag(tag, request.query_params.get("confirm", ""))
        return Response({"deleted": name, "removed_from_images": removed})


class VocabularyMergeView(CurationMixin, APIView):
    @extend_schema(
        request=MergeSerializer,
        responses={200: inline_serializer("MergeResult", {
            "tag": TagOut, "moved": serializers.IntegerField(), "already_there": serializers.IntegerField(),
            "merged_tags": serializers.ListField(child=serializers.CharField()),
        }), **CURATION_ERRORS},
        tags=["vocabulary"],
    )
    def post(self, request, slug, tag_id):
        """Merge other tags into this one: their image tags move here and they are deleted."""
        target = self.tag(tag_id)
        form = MergeSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        sources = list(Tag.objects.filter(project=self.project, pk__in=form.validated_data["tags"]))
        missing = set(form.validated_data["tags"]) - {tag.pk for tag in sources}
        if missing:
            raise NotFound(f"No tag {sorted(missing)[0]} in this project.")
        report = vocabulary.merge_tags(target, sources)
        return Response({"tag": tag_payload(target), "moved": report.moved, "already_there": report.already_there,
                         "merged_tags": report.merged_tags})


class VocabularyView(ProjectScopedMixin, GenericAPIView):
    serializer_class = image_serializers.VocabularyTagSerializer
    pagination_class = StandardPagination

    @extend_schema(
        parameters=[image_serializers.VocabularyFilterSerializer],
        responses={200: image_serializers.VocabularyTagSerializer(many=True), **ERRORS},
        tags=["images"],
    )
    def get(self, request, slug):
        """The project's tag vocabulary, for autocompletion: most used first."""
        filters = validated_query(image_serializers.VocabularyFilterSerializer, request)
        tags = Tag.objects.filter(project=self.project).annotate(image_count=Count("image_tags"))
        prefix = filters.get("q")
        if prefix:
            tags = tags.filter(name__startswith=Tag.normalise(prefix))
        page = self.paginate_queryset(tags.order_by("-image_count", "name"))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)
