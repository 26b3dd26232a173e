"""API of the image browser (managers): filtered, sorted keyset pages of images, and an image's comparisons."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from core.limits import MAX_ID
from core.api_input import validated_query
from core.api_errors import ERRORS
from labeling.project_scope import ProjectScopedMixin
from labeling.models import Image
from modeling.services import image_browser



class BrowseQuerySerializer(serializers.Serializer):
    tag = serializers.CharField(required=False, max_length=100)
    score_min = serializers.FloatField(required=False)
    score_max = serializers.FloatField(required=False)
    comparisons_min = serializers.IntegerField(required=False, min_value=0, max_value=2**31)
    comparisons_max = serializers.IntegerField(required=False, min_value=0, max_value=2**31)
    metadata_key = serializers.CharField(required=False, max_length=100)
    metadata_value = serializers.CharField(required=False, max_length=200,
                                           help_text="JSON (7, true, \"7\") or plain text.")
    sort = serializers.ChoiceField(choices=list(image_browser.SORTS), required=False)
    cursor = serializers.CharField(required=False, max_length=500)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=image_browser.MAX_LIMIT)

    def validate(self, data):
        for key in ("tag", "metadata_key", "metadata_value", "cursor"):
            if "\x00" in data.get(key, ""):
                raise ValidationError({key: ["NUL characters are not allowed."]})
        return data


BROWSED_IMAGE_FIELDS = {
    "id": serializers.IntegerField(), "external_id": serializers.CharField(), "file_name": serializers.CharField(),
    "score": serializers.FloatField(allow_null=True), "comparison_count": serializers.IntegerField(),
    "metadata": serializers.JSONField(), "caption": serializers.CharField(),
}


class ImageBrowseView(ProjectScopedMixin, APIView):
    @extend_schema(
        parameters=[BrowseQuerySerializer],
        responses={200: inline_serializer("BrowsePage", {
            "results": inline_serializer("BrowsedImage", BROWSED_IMAGE_FIELDS, many=True), "next_cursor": serializers.CharField(allow_null=True),
            "model_version": serializers.IntegerField(allow_null=True),
        }), **ERRORS},
        tags=["images"],
    )
    def get(self, request, slug):
        """Images filtered by tag, score range (active model version), comparison count and a metadata
        field, sorted, one keyset page at a time (pass ``next_cursor`` back as ``cursor``); no total."""
        self.require_manager("browse images")
        query = validated_query(BrowseQuerySerializer, request)
        # A cursor or sort it cannot use is a refusal (400, code bad_browse_request).
        page = image_browser.browse(self.project, image_browser.Filters(**query))
        return Response({
            "results": [
                {"id": image.pk, "external_id": image.external_id, "file_name": image.original_name,
                 "score": image.score_mean, "comparison_count": image.n_comparisons, "metadata": image.metadata,
                 "caption": image.caption}
                for image in page.images
            ],
            "next_cursor": page.next_cursor, "model_version": page.model_version_id,
        })


class ImageComparisonsView(ProjectScopedMixin, APIView):
    @extend_schema(
        parameters=[inline_serializer("ImageComparisonsQuery", {
            "before": serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)})],
        responses={200: inline_serializer("ImageComparisonsPage", {
            "results": inline_serializer("ImageComparison", {
                "id": serializers.IntegerField(), "image_a": serializers.IntegerField(),
                "image_b": serializers.IntegerField(), "outcome": serializers.CharField(),
                "rater": serializers.CharField(), "created_at": serializers.DateTimeField(),
                "is_gold": serializers.BooleanField(),
            }, many=True),
            "next_before": serializers.IntegerField(allow_null=True),
        }), **ERRORS},
        tags=["images"],
    )
    def get(self, request, slug, image_id):
        """The comparisons the image took part in, newest first (pass ``next_before`` back as ``before``)."""
        self.require_manager("see an image's comparisons")
        image = Image.objects.filter(project=self.project, pk=image_id).first() if image_id <= MAX_ID else None
        if image is None:
            raise NotFound("No such image in this project.")
        raw = request.query_params.get("before")
        try:
            before = int(raw) if raw else None
        except ValueError:
            raise ValidationError({"before": ["A comparison id."]}) from None
        if before is not None and not 0 < before <= MAX_ID:
            raise ValidationError({"before": ["A comparison id."]})
        rows, next_before = image_browser.image_comparisons(image, before=before)
        return Response({
            "results": [
                {"id": c.pk, "image_a": c.image_a_id, "image_b": c.image_b_id, "outcome": c.outcome,
                 "rater": c.rater.username, "created_at": c.created_at, "is_gold": c.is_gold}
                for c in rows
            ],
            "next_before": next_before,
        })
