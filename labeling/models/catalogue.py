"""A project's images, their tags and imported reference ratings."""
import math

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from labeling.models.project import Project


SCORE_BINS = 10  # AVA-style scores 1..10


IMAGE_EXTENSIONS = ("jpg", "png", "webp")  # what the importer writes (from the checked format, not the name)


def image_upload_path(image: "Image", filename: str) -> str:
    """``images/<project>/<sha[:2]>/<sha>.<ext>``: the content hash, never the uploaded name; an extension
    other than the importer's becomes ``.bin``, which media never serves."""
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    extension = extension if extension in IMAGE_EXTENSIONS else "bin"
    return f"images/{image.project_id}/{image.sha256[:2]}/{image.sha256}.{extension}"


def thumbnail_upload_path(image: "Image", filename: str) -> str:
    return f"thumbnails/{image.project_id}/{image.sha256[:2]}/{image.sha256}.webp"


class Image(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="images")
    file = models.FileField(upload_to=image_upload_path, max_length=300)
    thumbnail = models.FileField(upload_to=thumbnail_upload_path, max_length=300, blank=True)
    original_name = models.CharField(max_length=500, help_text="File name (relative path) at import.")
    sha256 = models.CharField(max_length=64)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    external_id = models.CharField(max_length=200, blank=True, db_index=True)
    caption = models.TextField(blank=True, help_text="Caption or generation prompt.")
    metadata = models.JSONField(default=dict, blank=True, help_text="E.g. cfg_scale, seed, sampler, source.")
    created_at = models.DateTimeField(auto_now_add=True)
    archived_at = models.DateTimeField(null=True, blank=True, help_text="Archived: hidden and no longer served.")

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "sha256"], name="image_unique_sha256_per_project"),
            models.CheckConstraint(condition=Q(width__gt=0) & Q(height__gt=0), name="image_positive_size"),
        ]
        indexes = [
            models.Index(fields=["project", "created_at"], name="image_project_created"),
            # Pair serving excludes the (few) archived images of a project on every request.
            models.Index(fields=["project"], condition=Q(archived_at__isnull=False), name="image_archived"),
            # Counting a project's images (progress, per-image targets, lists): an index-only scan of this
            # index instead of reading every row of the wide table.
            models.Index(fields=["project"], condition=Q(archived_at__isnull=True), name="image_unarchived"),
        ]

    def __str__(self):
        return self.original_name or f"image {self.pk}"


class Tag(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="tag_unique_name_per_project"),
            # Names are stored case-folded so "Cat" and "cat" are one tag.
            models.CheckConstraint(condition=Q(name=Lower("name")), name="tag_name_casefolded"),
            models.CheckConstraint(condition=~Q(name=""), name="tag_name_not_empty"),
        ]

    def __str__(self):
        return self.name

    @staticmethod
    def normalise(name: str) -> str:
        """The canonical form of a tag name: trimmed, inner whitespace collapsed, case-folded."""
        return " ".join(str(name).split()).casefold()


class ImageTag(models.Model):
    class Source(models.TextChoices):
        IMPORT = "import", "Import"
        RATER = "rater", "Rater"
        MODEL = "model", "Model"

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="image_tags")
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="image_tags")
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.IMPORT)
    rater = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="image_tags"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["image", "tag"], name="imagetag_unique"),
            models.CheckConstraint(
                condition=Q(source="rater", rater__isnull=False) | ~Q(source="rater"), name="imagetag_rater_source_has_rater"
            ),
        ]

    def __str__(self):
        return f"{self.image_id}:{self.tag_id}"


class ReferenceRating(models.Model):
    """An imported human score distribution, as in AVA: how many people gave each score 1..10."""

    image = models.OneToOneField(Image, on_delete=models.CASCADE, related_name="reference_rating")
    votes_1 = models.PositiveIntegerField(default=0)
    votes_2 = models.PositiveIntegerField(default=0)
    votes_3 = models.PositiveIntegerField(default=0)
    votes_4 = models.PositiveIntegerField(default=0)
    votes_5 = models.PositiveIntegerField(default=0)
    votes_6 = models.PositiveIntegerField(default=0)
    votes_7 = models.PositiveIntegerField(default=0)
    votes_8 = models.PositiveIntegerField(default=0)
    votes_9 = models.PositiveIntegerField(default=0)
    votes_10 = models.PositiveIntegerField(default=0)
    # Stored so that lists and exports can sort and filter without recomputing.
    mean = models.FloatField(editable=False)
    std = models.FloatField(editable=False)
    source = models.CharField(max_length=100, blank=True, help_text="E.g. AVA.")

    VOTE_FIELDS = [f"votes_{score}" for score in range(1, SCORE_BINS + 1)]

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(mean__gte=1) & Q(mean__lte=10), name="referencerating_mean_in_range"
            ),
        ]

    @property
    def votes(self) -> list[int]:
        return [getattr(self, field) for field in self.VOTE_FIELDS]

    @votes.setter
    def votes(self, counts):
        counts = [int(c) for c in counts]
        if len(counts) != SCORE_BINS or any(c < 0 for c in counts) or sum(counts) == 0:
            raise ValueError(f"a reference rating needs {SCORE_BINS} non-negative vote counts with at least one vote")
        for field, count in zip(self.VOTE_FIELDS, counts):
            setattr(self, field, count)
        self.mean, self.std = distribution_mean_std(counts)

    def save(self, *args, **kwargs):
        self.mean, self.std = distribution_mean_std(self.votes)
        super().save(*args, **kwargs)


def distribution_mean_std(counts) -> tuple[float, float]:
    total = sum(counts)
    if total <= 0:
        raise ValueError("a score distribution needs at least one vote")
    mean = sum(score * c for score, c in enumerate(counts, start=1)) / total
    variance = sum(c * (score - mean) ** 2 for score, c in enumerate(counts, start=1)) / total
    return mean, math.sqrt(variance)
