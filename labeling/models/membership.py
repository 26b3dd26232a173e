"""Who takes part in a project: members and their standing, invitations, crowd links and crowd workers."""
from django.conf import settings
from django.db import models
from django.db.models import F, Q

from labeling.models.project import Project


class Membership(models.Model):
    """A user's role in one project. Raters rate; managers also import, invite, export and retrain."""

    class Role(models.TextChoices):
        RATER = "rater", "Rater"
        MANAGER = "manager", "Manager"

    class Qualification(models.TextChoices):
        NONE = "", "Not decided (or none required)"
        PASSED = "passed", "Passed"
        FAILED = "failed", "Failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.RATER)
    is_active = models.BooleanField(default=True, help_text="Deactivated raters can no longer rate this project.")
    excluded_from_training = models.BooleanField(
        default=False, help_text="Leave this rater's comparisons out of training and the human scores (reversible)."
    )
    joined_at = models.DateTimeField(auto_now_add=True)
    # Qualification (labeling/services/qualification.py). A failed or paused rater's judgments are left out of
    # training and the human scores, as an excluded rater's are.
    qualification = models.CharField(
        max_length=8, choices=Qualification.choices, default=Qualification.NONE, blank=True,
        help_text="The qualification round's result, where the project has one.",
    )
    paused_at = models.DateTimeField(null=True, blank=True, help_text="Paused: no pairs served (gold accuracy fell).")
    pause_reason = models.CharField(max_length=300, blank=True)
    gold_checked_since = models.DateTimeField(
        null=True, blank=True, help_text="The running gold accuracy counts gold judgments from here (set on reinstating)."
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="membership_unique_user_per_project")]

    @property
    def is_paused(self) -> bool:
        return self.paused_at is not None

    def __str__(self):
        return f"{self.user} · {self.role} · {self.project}"


class RaterEvent(models.Model):
    """Why a rater's standing in a project changed: qualification passed or failed, paused, reinstated."""

    class Kind(models.TextChoices):
        QUALIFIED = "qualified", "Passed the qualification"
        FAILED = "failed", "Failed the qualification"
        PAUSED = "paused", "Paused"
        REINSTATED = "reinstated", "Reinstated by a manager"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="rater_events")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="rater_events")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    reason = models.CharField(max_length=300, blank=True)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                           help_text="The manager who acted (empty: automatic).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["project", "user", "-id"], name="raterevent_recent")]

    def __str__(self):
        return f"{self.user_id} {self.kind} in {self.project_id}"


class Invite(models.Model):
    """A sign-up link for a project: whoever opens it may create an account and join with ``role``."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="invites")
    token = models.CharField(max_length=64, unique=True, editable=False)
    role = models.CharField(max_length=10, choices=Membership.Role.choices, default=Membership.Role.RATER)
    note = models.CharField(max_length=200, blank=True, help_text="Who it is for (shown to managers only).")
    max_uses = models.PositiveIntegerField(default=1)
    uses = models.PositiveIntegerField(default=0)
    expires_at = models.DateTimeField()
    is_active = models.BooleanField(default=True, help_text="Untick to revoke the link.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.CheckConstraint(condition=Q(uses__lte=F("max_uses")), name="invite_uses_within_max")]

    def __str__(self):
        return f"invite to {self.project} as {self.role}"


class CampaignLink(models.Model):
    """A link to paste into a crowd platform (Prolific, MTurk, Toloka): whoever opens it with a worker id gets
    a passwordless rater identity in the project, rates up to ``quota`` pairs, then sees the completion code
    or is sent to the completion URL (labeling/services/crowd_links.py)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="campaign_links")
    token = models.CharField(max_length=64, unique=True, editable=False)
    name = models.CharField(max_length=200, blank=True, help_text="E.g. the study on the platform (managers only).")
    worker_param = models.CharField(
        max_length=40, default="PROLIFIC_PID",
        help_text="The URL parameter that carries the worker's id, e.g. PROLIFIC_PID (Prolific) or workerId (MTurk).",
    )
    quota = models.PositiveIntegerField(default=50, help_text="Judgments per worker; then the worker is done.")
    completion_code = models.CharField(max_length=100, blank=True, help_text="Shown to a worker who is done.")
    completion_url = models.URLField(max_length=1000, blank=True,
                                     help_text="Or: where a worker who is done is sent (e.g. the platform's page).")
    expires_at = models.DateTimeField()
    max_workers = models.PositiveIntegerField(default=100, help_text="Workers the link admits at most.")
    is_active = models.BooleanField(default=True, help_text="Untick to close the link.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.CheckConstraint(condition=Q(quota__gte=1), name="campaignlink_quota_positive")]

    def __str__(self):
        return f"campaign link {self.name or self.pk} of {self.project}"


class CrowdWorker(models.Model):
    """A crowd worker's passwordless rater identity in a project, keyed by their id on the crowd platform."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="crowd_workers")
    link = models.ForeignKey(CampaignLink, on_delete=models.PROTECT, related_name="workers")
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="crowd_worker")
    external_id = models.CharField(max_length=200, help_text="The worker's id on the crowd platform.")
    platform_params = models.JSONField(default=dict, blank=True,
                                       help_text="The link's other URL parameters at the last visit (e.g. SESSION_ID).")
    started_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True, help_text="When the worker reached the quota.")

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "external_id"], name="crowdworker_unique_id_per_project"),
        ]

    def __str__(self):
        return f"crowd worker {self.external_id} in {self.project}"
