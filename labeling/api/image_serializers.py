"""The API's serializers of images and tags: a rater's and a manager's view of an image, uploads, image and
vocabulary filters, an image's tags."""
from __future__ import annotations

import json

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from labeling import json_safety
from labeling.models import Image, ImageTag, Tag
from labeling.services.tags import TAG_MAX_LENGTH
from labeling.api.serializers import file_urls


class RaterImageSerializer(serializers.ModelSerializer):
    """A rater's view of an image: its id, the picture and thumbnail (their URLs name the content hash, never
    the file), its size and tags. Nothing about where it came from: no file name, external id, caption, prompt
    or metadata, which can tell the condition being judged. A field that a project may show raters is added in
    ``to_representation`` when the project allows it: the prompt (caption) with ``show_prompt``, as next-pair
    shows it."""

    url = serializers.SerializerMethodField()
    thumbnail_url = serializers.SerializerMethodField()
    tags = serializers.SerializerMethodField()

    class Meta:
        model = Image
        fields = ["id", "url", "thumbnail_url", "width", "height", "tags"]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, image) -> str:
        return file_urls(self.context.get("request"), image)[0]

    @extend_schema_field(OpenApiTypes.URI)
    def get_thumbnail_url(self, image) -> str:
        return file_urls(self.context.get("request"), image)[1]

    def get_tags(self, image) -> list[str]:
        return sorted(image_tag.tag.name for image_tag in image.image_tags.all())

    def to_representation(self, image):
        shown = super().to_representation(image)
        if self.context.get("show_prompt"):
            shown["prompt"] = image.caption
        return shown


class ManagerImageSerializer(RaterImageSerializer):
    """A manager's view of an image: the rater's, and where it came from, its judgments count and import time."""

    comparison_count = serializers.SerializerMethodField()

    class Meta(RaterImageSerializer.Meta):
        fields = [
            "id", "url", "thumbnail_url", "original_name", "external_id", "caption", "width", "height",
            "metadata", "tags", "comparison_count", "created_at",
        ]
        read_only_fields = fields

    def get_comparison_count(self, image) -> int:
        stats = getattr(image, "stats", None)
        return stats.comparison_count if stats is not None else 0


def image_serializer_for(role) -> type[RaterImageSerializer]:
    """The view of images that ``role`` (an ``access.ProjectRole``) may see."""
    return ManagerImageSerializer if role.sees_image_sources else RaterImageSerializer


class ImageUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="One JPEG, PNG or WebP file per request.")
    tags = serializers.CharField(required=False, allow_blank=True, help_text="Tag names separated by ; or ,")
    external_id = serializers.CharField(required=False, allow_blank=True, max_length=200)
    caption = serializers.CharField(required=False, allow_blank=True, max_length=20000)
    metadata = serializers.CharField(
        required=False, allow_blank=True, help_text="A JSON object, e.g. {\"seed\": 7, \"cfg_scale\": 6.5}."
    )

    def validate_tags(self, value) -> list[str]:
        names = [Tag.normalise(name) for name in value.replace(",", ";").split(";")]
        names = [name for name in names if name]
        if any(len(name) > TAG_MAX_LENGTH for name in names):
            raise serializers.ValidationError(f"A tag name has at most {TAG_MAX_LENGTH} characters.")
        return names

    def validate_metadata(self, value) -> dict:
        if not value.strip():
            return {}
        try:
            parsed = json_safety.loads(value)
        except json.JSONDecodeError as exc:
            raise serializers.ValidationError(f"Not valid JSON: {exc.msg}.") from None
        if not isinstance(parsed, dict):
            raise serializers.ValidationError("Must be a JSON object.")
        return parsed


class ImageUploadResultSerializer(ManagerImageSerializer):
    duplicate = serializers.SerializerMethodField()

    class Meta(ManagerImageSerializer.Meta):
        fields = ManagerImageSerializer.Meta.fields + ["duplicate"]
        read_only_fields = fields

    def get_duplicate(self, image) -> bool:
        return bool(self.context.get("duplicate"))


class ImageFilterSerializer(serializers.Serializer):
    tag = serializers.CharField(required=False, max_length=TAG_MAX_LENGTH)
    has_score = serializers.BooleanField(required=False, allow_null=True, default=None)
    external_id = serializers.CharField(required=False, max_length=200, help_text="Managers only.")


class ImageTagSerializer(serializers.ModelSerializer):
    name = serializers.CharField(source="tag.name")
    rater = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True,
                                         help_text="Who added it; for raters only when it was themselves.")

    class Meta:
        model = ImageTag
        fields = ["name", "source", "rater", "created_at"]
        read_only_fields = fields

    def to_representation(self, image_tag):
        data = super().to_representation(image_tag)
        viewer = self.context.get("viewer")
        if not self.context.get("sees_names") and (viewer is None or image_tag.rater_id != viewer.pk):
            data["rater"] = None  # raters see who added a tag only when it was themselves
        return data


class TagNameSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=TAG_MAX_LENGTH * 2)


class VocabularyFilterSerializer(serializers.Serializer):
    q = serializers.CharField(
        required=False, allow_blank=True, max_length=TAG_MAX_LENGTH, help_text="Names starting with this (any case)."
    )


class VocabularyTagSerializer(serializers.ModelSerializer):
    image_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Tag
        fields = ["id", "name", "image_count"]
        read_only_fields = fields
