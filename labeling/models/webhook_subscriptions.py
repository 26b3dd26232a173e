"""Webhooks (labeling/services/webhooks.py): managers register URLs per project; every event becomes one
delivery per subscribed webhook, posted by the worker with retries and an HMAC signature."""
from django.conf import settings
from django.db import models

from labeling.models.project import Project


class Webhook(models.Model):
    class Event(models.TextChoices):
        MODEL_VERSION_ACTIVATED = "model_version.activated", "A model version was activated"
        TRAINING_FAILED = "training.failed", "A training run failed"
        JUDGMENTS_TARGET_REACHED = "judgments.target_reached", "The project reached a number of judgments"
        IMPORT_FINISHED = "import.finished", "An import job finished"
        RANKING_TARGET_REACHED = "ranking.target_reached", "The expected ranking accuracy reached its target"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=1000)
    secret = models.CharField(max_length=64, editable=False, help_text="Key of the X-Tagrank-Signature HMAC.")
    events = models.JSONField(default=list, help_text="Event names this webhook receives.")
    target_judgments = models.PositiveIntegerField(
        null=True, blank=True, help_text="For judgments.target_reached: the number of judgments to wait for."
    )
    target_reached_at = models.DateTimeField(null=True, blank=True, help_text="When the target was announced.")
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"webhook {self.pk} of {self.project}: {self.url}"


class WebhookDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed (retries used up)"

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=40)
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["webhook", "-id"], name="webhookdelivery_recent")]

    def __str__(self):
        return f"{self.event} → {self.webhook_id} ({self.status})"
