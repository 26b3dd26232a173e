"""The Django side of the model: trained model versions and the scores they give images.

The ML code itself lives in ``modeling.ml`` and imports nothing from Django.
"""
from django.conf import settings
from django.db import models
from django.db.models import Q

from labeling.models import Image, Project


def weights_upload_path(version: "ModelVersion", filename: str) -> str:
    return f"models/{version.project_id}/{filename}"


class ModelVersion(models.Model):
    class Status(models.TextChoices):
        TRAINING = "training", "Training"
        CANDIDATE = "candidate", "Candidate (trained, not promoted)"
        SCORING = "scoring", "Scoring all images"
        ACTIVE = "active", "Active"
        RETIRED = "retired", "Retired"
        FAILED = "failed", "Failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="model_versions")
    created_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.TRAINING, db_index=True)
    encoder_id = models.CharField(max_length=300, help_text="Which CLIP encoder produced the features.")
    config = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    weights = models.FileField(upload_to=weights_upload_path, max_length=300, blank=True)
    n_comparisons = models.PositiveIntegerField(default=0, help_text="Comparisons it was trained on.")
    is_active = models.BooleanField(default=False)
    status_reason = models.TextField(blank=True, help_text="Why it failed or was not promoted.")
    trained_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project"], condition=Q(is_active=True), name="modelversion_one_active_per_project"
            ),
        ]

    def __str__(self):
        return f"{self.project.slug} v{self.pk} ({self.status})"

    @property
    def is_demo_encoder(self) -> bool:
        return self.encoder_id.startswith("tiny")


class ImageScore(models.Model):
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="scores")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="scores")
    mean = models.FloatField(help_text="Expected score on 1..10.")
    distribution = models.JSONField(help_text="Ten probabilities for scores 1..10.")
    uncertainty = models.FloatField(default=0.0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model_version", "image"], name="imagescore_unique_per_version"),
            models.CheckConstraint(condition=Q(mean__gte=1) & Q(mean__lte=10), name="imagescore_mean_in_range"),
        ]

    def __str__(self):
        return f"{self.image_id}@v{self.model_version_id}: {self.mean:.2f}"


class HumanScore(models.Model):
    """The human score of an image: a Bradley–Terry posterior fitted from all of a project's comparisons.

    Refitted by a task (not per request); exports and dashboards read it beside the model's score.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="human_scores")
    image = models.OneToOneField(Image, on_delete=models.CASCADE, related_name="human_score")
    mean = models.FloatField(help_text="Posterior mean on the Bradley–Terry (logit) scale.")
    variance = models.FloatField(help_text="Posterior variance (Laplace).")
    n_comparisons = models.PositiveIntegerField(default=0)
    fitted_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["project", "mean"], name="humanscore_project_mean")]

    def __str__(self):
        return f"{self.image_id}: {self.mean:.2f} ± {self.variance ** 0.5:.2f}"


class AgreementReport(models.Model):
    """Stored dashboard numbers for a project (human–human and model–human agreement, charts' data).

    Computed by a task on the ``default`` queue after training and on a schedule; pages and the
    agreement API read the latest report instead of scanning comparisons per request.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="agreement_reports")
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="agreement_reports"
    )
    computed_at = models.DateTimeField(auto_now_add=True, db_index=True)
    n_comparisons = models.PositiveIntegerField(default=0)
    data = models.JSONField(default=dict)

    class Meta:
        ordering = ["-computed_at", "-id"]
        get_latest_by = "computed_at"

    def __str__(self):
        return f"{self.project.slug} report {self.computed_at:%Y-%m-%d %H:%M}"
