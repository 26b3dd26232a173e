"""The human side of Tagrank: projects, their images and tags, and the comparisons raters make."""
import math

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Lower

SCORE_BINS = 10  # AVA-style scores 1..10


class Project(models.Model):
    class TagVocabulary(models.TextChoices):
        OPEN = "open", "Open: raters may add new tags"
        CLOSED = "closed", "Closed: only tags already in the project"

    class PairStrategy(models.TextChoices):
        ACTIVE = "active", "Active: most informative pairs"
        RANDOM = "random", "Random pairs"
        ROUND_ROBIN = "round_robin", "Round robin: fewest comparisons first"

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    question = models.CharField(
        max_length=500, default="Which image has the better quality?", help_text="Shown to raters above the two images."
    )
    description = models.TextField(blank=True)
    tag_vocabulary = models.CharField(max_length=10, choices=TagVocabulary.choices, default=TagVocabulary.OPEN)
    overlap = models.PositiveSmallIntegerField(default=1, help_text="Judgments wanted per pair, from different raters.")
    gold_rate = models.FloatField(default=0.0, help_text="Share of served pairs that are gold pairs (0..1).")
    allow_ties = models.BooleanField(default=True)
    pair_strategy = models.CharField(max_length=20, choices=PairStrategy.choices, default=PairStrategy.ACTIVE)
    retrain_min_new_comparisons = models.PositiveIntegerField(
        default=50, help_text="Retrain once this many comparisons arrived since the active model was trained."
    )
    retrain_max_age_hours = models.PositiveIntegerField(
        default=24, help_text="Also retrain when the active model is older than this and anything is new."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(overlap__gte=1), name="project_overlap_at_least_one"),
            models.CheckConstraint(condition=Q(gold_rate__gte=0) & Q(gold_rate__lte=1), name="project_gold_rate_0_1"),
        ]
        permissions = [
            ("manage_project", "Can manage a project: images, raters, models"),
            ("export_project", "Can export a project's scores and data"),
        ]

    def __str__(self):
        return self.name


class Membership(models.Model):
    """A user's role in one project. Raters rate; managers also import, invite, export and retrain."""

    class Role(models.TextChoices):
        RATER = "rater", "Rater"
        MANAGER = "manager", "Manager"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.RATER)
    is_active = models.BooleanField(default=True, help_text="Deactivated raters can no longer rate this project.")
    excluded_from_training = models.BooleanField(
        default=False, help_text="Leave this rater's comparisons out of training and the human scores (reversible)."
    )
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="membership_unique_user_per_project")]

    def __str__(self):
        return f"{self.user} · {self.role} · {self.project}"


def image_upload_path(image: "Image", filename: str) -> str:
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else "bin"
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

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "sha256"], name="image_unique_sha256_per_project"),
            models.CheckConstraint(condition=Q(width__gt=0) & Q(height__gt=0), name="image_positive_size"),
        ]
        indexes = [models.Index(fields=["project", "created_at"], name="image_project_created")]

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


class Comparison(models.Model):
    """One rater's judgment of one pair. ``image_a`` is always the image that was shown on the left."""

    class Outcome(models.TextChoices):
        A = "a", "A (left) is better"
        B = "b", "B (right) is better"
        TIE = "tie", "Tie"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="comparisons")
    image_a = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="comparisons_as_a")
    image_b = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="comparisons_as_b")
    outcome = models.CharField(max_length=3, choices=Outcome.choices)
    rater = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="comparisons")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    response_ms = models.PositiveIntegerField(null=True, blank=True)
    client_key = models.CharField(max_length=64, help_text="Set by the client; a retry with the same key is a replay.")
    is_gold = models.BooleanField(default=False, help_text="The pair was a gold pair with a known answer.")
    gold_correct = models.BooleanField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=~Q(image_a=F("image_b")), name="comparison_distinct_images"),
            models.UniqueConstraint(fields=["rater", "client_key"], name="comparison_unique_client_key_per_rater"),
            models.CheckConstraint(condition=Q(outcome__in=["a", "b", "tie"]), name="comparison_outcome_valid"),
        ]
        indexes = [
            models.Index(fields=["project", "created_at"], name="comparison_project_created"),
            models.Index(fields=["project", "rater"], name="comparison_project_rater"),
        ]

    def __str__(self):
        return f"{self.image_a_id} vs {self.image_b_id}: {self.outcome}"
