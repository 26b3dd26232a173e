"""Curating a project's tag vocabulary (managers): create, rename, merge and delete tags.

Names are normalised like every tag (``Tag.normalise``). A rename to a name that exists is refused
(merge instead). A merge moves every image tag of the merged tags onto the target, keeping the
target's own where an image has both, then deletes the merged tags. A delete removes the tag from
every image and must be confirmed by repeating the tag's name. Each change is one transaction.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.db import IntegrityError, transaction

from labeling.models import ImageTag, Project, Tag
from labeling.services.tags import TagRefused, clean_name


class TagExists(TagRefused):
    code = "tag_exists"


class ConfirmationNeeded(TagRefused):
    code = "confirmation_needed"


@dataclass
class MergeReport:
    moved: int  # image tags now on the target
    already_there: int  # images that had the target too (their duplicate was dropped)
    merged_tags: list[str]


def create_tag(project: Project, name: str) -> Tag:
    cleaned = clean_name(name)
    try:
        with transaction.atomic():
            return Tag.objects.create(project=project, name=cleaned)
    except IntegrityError:
        raise TagExists(f"“{cleaned}” is already in the vocabulary.") from None


def rename_tag(tag: Tag, new_name: str) -> Tag:
    cleaned = clean_name(new_name)
    if cleaned == tag.name:
        return tag
    if Tag.objects.filter(project_id=tag.project_id, name=cleaned).exists():
        raise TagExists(f"“{cleaned}” is already in the vocabulary: merge “{tag.name}” into it instead.")
    try:
        with transaction.atomic():
            tag.name = cleaned
            tag.save(update_fields=["name"])
    except IntegrityError:
        raise TagExists(f"“{cleaned}” is already in the vocabulary.") from None
    return tag


def merge_tags(target: Tag, sources: list[Tag]) -> MergeReport:
    sources = [tag for tag in sources if tag.pk != target.pk]
    if not sources:
        raise TagRefused("Choose at least one other tag to merge into this one.")
    if any(tag.project_id != target.project_id for tag in sources):
        raise TagRefused("Tags can only be merged within one project.")
    source_ids = [tag.pk for tag in sources]
    with transaction.atomic():
        Tag.objects.select_for_update().filter(pk__in=[target.pk, *source_ids]).order_by("pk").exists()
        targeted = ImageTag.objects.filter(tag=target).values("image_id")
        duplicates = ImageTag.objects.filter(tag_id__in=source_ids, image_id__in=targeted)
        already_there = duplicates.count()
        duplicates.delete()
        # An image may carry two of the merged tags: keep the earliest of them.
        keep = {}
        for image_tag_id, image_id in (
            ImageTag.objects.filter(tag_id__in=source_ids).order_by("created_at", "id").values_list("id", "image_id")
        ):
            keep.setdefault(image_id, image_tag_id)
        dropped = ImageTag.objects.filter(tag_id__in=source_ids).exclude(id__in=list(keep.values()))
        already_there += dropped.count()
        dropped.delete()
        moved = ImageTag.objects.filter(id__in=list(keep.values())).update(tag=target)
        names = [tag.name for tag in sources]
        Tag.objects.filter(pk__in=source_ids).delete()
    return MergeReport(moved=moved, already_there=already_there, merged_tags=names)


def delete_tag(tag: Tag, confirm: str) -> int:
    """Delete the tag from the vocabulary and from every image; ``confirm`` must repeat its name."""
    if Tag.normalise(confirm or "") != tag.name:
        raise ConfirmationNeeded(f"To delete “{tag.name}” from every image, confirm by giving its name.")
    with transaction.atomic():
        removed = ImageTag.objects.filter(tag=tag).count()
        tag.delete()
    return removed
