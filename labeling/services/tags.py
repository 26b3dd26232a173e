"""Raters and managers tagging images.

Tag names are case-folded (``Tag.normalise``). In a project with a closed vocabulary only its
existing tags can be added by raters; managers own the vocabulary and may still add new names.
A rater may remove the tags they added; managers may remove any tag.
"""
from __future__ import annotations

from django.db import IntegrityError, transaction

from core.refusals import Refusal
from labeling.models import Image, ImageTag, Project, Tag

TAG_MAX_LENGTH = 100


class TagRefused(Refusal):
    """A tag change refused."""

    code = "tag_refused"


class TagNotInVocabulary(TagRefused):
    code = "tag_not_in_vocabulary"


class TagNotOnImage(TagRefused):
    code = "tag_not_on_image"


class TagNotYours(TagRefused):
    code = "tag_not_yours"


def clean_name(name) -> str:
    if "\x00" in str(name or ""):  # PostgreSQL text cannot hold NUL: refuse it here, not with a 500
        raise TagRefused("A tag name cannot contain NUL characters.")
    cleaned = Tag.normalise(name or "")
    if not cleaned:
        raise TagRefused("The tag name is empty.")
    if len(cleaned) > TAG_MAX_LENGTH:
        raise TagRefused(f"A tag name has at most {TAG_MAX_LENGTH} characters.")
    return cleaned


def add_tag(image: Image, name: str, user, *, may_extend_vocabulary: bool) -> tuple[ImageTag, bool]:
    """Tag ``image`` with ``name``. Returns (image tag, created); adding a tag it has already is a no-op."""
    cleaned = clean_name(name)
    project: Project = image.project
    tag = Tag.objects.filter(project=project, name=cleaned).first()
    if tag is None:
        if project.tag_vocabulary == Project.TagVocabulary.CLOSED and not may_extend_vocabulary:
            raise TagNotInVocabulary(
                f"“{cleaned}” is not in this project's tag vocabulary, which is closed: choose one of its "
                "existing tags, or ask a manager to add it."
            )
        try:
            with transaction.atomic():
                tag, _ = Tag.objects.get_or_create(project=project, name=cleaned)
        except IntegrityError:  # created by a concurrent request a moment ago
            tag = Tag.objects.get(project=project, name=cleaned)
    try:
        with transaction.atomic():
            return ImageTag.objects.get_or_create(
                image=image, tag=tag, defaults={"source": ImageTag.Source.RATER, "rater": user}
            )
    except IntegrityError:
        return ImageTag.objects.get(image=image, tag=tag), False


def remove_tag(image: Image, name: str, user, *, is_manager: bool) -> None:
    cleaned = clean_name(name)
    image_tag = ImageTag.objects.filter(image=image, tag__name=cleaned).first()
    if image_tag is None:
        raise TagNotOnImage(f"The image has no tag “{cleaned}”.")
    added_by_user = image_tag.source == ImageTag.Source.RATER and image_tag.rater_id == user.pk
    if not (is_manager or added_by_user):
        raise TagNotYours("You can remove only the tags you added; ask a manager to remove this one.")
    image_tag.delete()


def image_tags(image: Image) -> list[ImageTag]:
    return list(ImageTag.objects.filter(image=image).select_related("tag").order_by("tag__name"))
