"""The Django side of the model: trained model versions and the scores they give images.

The ML code itself lives in ``modeling.ml`` and imports nothing from Django.
"""
from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from core.models import WorkerJob
from labeling.models import Image, Project


def weights_upload_path(version: "ModelVersion", filename: str) -> str:
    return f"models/{version.project_id}/{filename}"



def is_demo_encoder(encoder) -> bool:
    """The tiny encoder built in code (setting "tiny", id "tiny-v1"): its scores mean nothing."""
    return str(encoder).startswith("tiny")

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
    # Added with the model loop (migration 0003).
    last_comparison_id = models.PositiveBigIntegerField(
        default=0, help_text="The newest comparison in its training data: the trigger counts new ones from here."
    )
    training_seconds = models.FloatField(null=True, blank=True, help_text="Wall time of its training run.")
    activated_at = models.DateTimeField(null=True, blank=True)
    scoring_total = models.PositiveIntegerField(default=0, help_text="Images to score before it can become active.")
    scoring_done = models.PositiveIntegerField(default=0)
    scoring_started_at = models.DateTimeField(null=True, blank=True)
    scoring_updated_at = models.DateTimeField(
        null=True, blank=True, help_text="Written by each scoring batch; a stale value means the scorer died."
    )
    scoring_finished_at = models.DateTimeField(null=True, blank=True)

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
        return is_demo_encoder(self.encoder_id)

    @property
    def scoring_fraction(self) -> float | None:
        """How much of the rescoring is done (0..1), or None before it started."""
        if not self.scoring_total:
            return None
        return min(self.scoring_done / self.scoring_total, 1.0)


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
        # The image browser's score order pages along this index instead of sorting every scored image.
        indexes = [models.Index(fields=["model_version", "mean", "image"], name="imagescore_by_mean")]

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


class CriterionScore(models.Model):
    """The human score of an image on a secondary criterion of a project with several (``Project.criteria``):
    the Bradley–Terry fit of that criterion's answers (``modeling/services/criterion_scores.py``).

    The primary criterion's scores are the ``HumanScore`` rows (its answer is the judgment's outcome), so a
    project with one question has none of these."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="criterion_scores")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="criterion_scores")
    criterion = models.CharField(max_length=40)
    mean = models.FloatField(help_text="Posterior mean on the Bradley–Terry (logit) scale.")
    variance = models.FloatField(help_text="Posterior variance (Laplace).")
    n_comparisons = models.PositiveIntegerField(default=0, help_text="Answers to this criterion about the image.")
    fitted_at = models.DateTimeField(help_text="When the fit's comparisons were read.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["image", "criterion"], name="criterionscore_unique_per_criterion"),
        ]
        indexes = [models.Index(fields=["project", "criterion", "mean"], name="criterionscore_project_mean")]

    def __str__(self):
        return f"{self.image_id} ({self.criterion}): {self.mean:.2f}"


class HumanScoreStamp(models.Model):
    """A project's stored human scores as a whole: bumped, under a row lock, by every write of them.

    A worker that remembers what it last read or wrote (``modeling/services/human_score_writes.py``) writes
    only the scores that moved while the version is the one it remembers, and all of them otherwise."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, primary_key=True,
                                   related_name="human_score_stamp")
    version = models.BigIntegerField(default=0, help_text="Writes of the project's human scores so far.")
    fitted_at = models.DateTimeField(null=True, blank=True, help_text="When the stored fit's comparisons were read.")
    fit_seconds = models.FloatField(
        null=True, blank=True, help_text="How long the stored fit took: a refill refits first only while this is short."
    )
    # Nullable, so that code from before the column (a replica mid-deployment) still inserts a stamp.
    rater_weights = models.JSONField(
        null=True, blank=True,
        help_text="The stored fit's raters' attentive probabilities ({rater_ids, attentive, comparisons}): the next fit's start.",
    )

    def __str__(self):
        return f"human scores of project {self.project_id}, version {self.version}"


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
    criterion = models.CharField(
        max_length=40, blank=True, default="",
        help_text="A secondary criterion whose answers the report reads; empty: the primary one (the outcome).",
    )

    class Meta:
        ordering = ["-computed_at", "-id"]
        get_latest_by = "computed_at"

    def __str__(self):
        return f"{self.project.slug} report {self.computed_at:%Y-%m-%d %H:%M}"


class RankingAccuracy(models.Model):
    """The expected ranking accuracy of a project's human scores, from their posterior (one row per project).

    Written with each stored human-score fit (``modeling/services/stopping_rule.py``); the stopping rule
    compares it with the target in the training settings.
    """

    project = models.OneToOneField(Project, on_delete=models.CASCADE, primary_key=True,
                                   related_name="ranking_accuracy")
    expected_srcc = models.FloatField(help_text="Expected SRCC between the current ranking and the truth.")
    srcc_low = models.FloatField(help_text="Lower end of the interval (5 % quantile over posterior draws).")
    srcc_high = models.FloatField(help_text="Upper end of the interval (95 % quantile).")
    n_images = models.PositiveIntegerField()
    images_per_draw = models.PositiveIntegerField(help_text="Fewer than n_images when subsampled.")
    draws = models.PositiveIntegerField()
    n_comparisons = models.PositiveIntegerField(help_text="Comparisons in the fit it was computed from.")
    computed_at = models.DateTimeField()

    def __str__(self):
        return f"{self.project_id}: expected SRCC {self.expected_srcc:.3f}"


class WarmStartScore(models.Model):
    """A score of this project's image by another project's model version, its warm start
    (``TrainingSettings.warm_start_version``, ``modeling/services/warm_start.py``).

    Kept apart from ``ImageScore``, which holds a version's scores of its own project's images only: the
    exports, the browser and the promotion read those, and must never meet another project's images.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="warm_start_scores")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="warm_start_scores")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="warm_start_scores")
    mean = models.FloatField(help_text="Expected score on 1..10.")
    uncertainty = models.FloatField(default=0.0)
    scored_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model_version", "image"], name="warmstartscore_unique_per_version"),
        ]
        indexes = [models.Index(fields=["project", "model_version"], name="warmstartscore_project_version")]

    def __str__(self):
        return f"{self.image_id}@v{self.model_version_id} (warm start): {self.mean:.2f}"


# --- The model loop: features, training runs, promotions ----------------------------------------


class TrainingSettings(models.Model):
    """Per-project knobs of the model loop; a project without a row uses the defaults.

    Kept in the database (not in settings) so that every worker, on any host, trains a project
    with the same hyperparameters, and so that a manager or a test can change them per project.
    """

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="training_settings")
    hyperparameters = models.JSONField(
        default=dict,
        blank=True,
        help_text='Overrides of modeling.ml.training.TrainConfig, e.g. {"epochs": 10, "ranker": {"width": 64}}.',
    )
    promotion_tolerance = models.FloatField(
        default=0.02,
        help_text="A new version becomes active when its held-out pairwise agreement is at least the active "
        "version's minus this.",
    )
    train_baseline = models.BooleanField(
        default=True, help_text="Also train the image-only baseline, for the comparison row of the metrics."
    )
    ranking_lambda = models.FloatField(
        default=1.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(10.0)],
        help_text="λ of the ranking key, score = quality + λ · CLIP image-tag similarity (docs/ranker.md): "
        "how much a tag that matches its image raises the score beyond what the raters' comparisons show. 0 = off.",
    )
    # The stopping rule (modeling/services/stopping_rule.py, docs/active-learning.md "When to stop").
    target_srcc = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Target of the expected ranking accuracy (SRCC between the ranking and the truth), e.g. 0.9.",
    )
    stop_at_target = models.BooleanField(
        default=False, help_text="Stop serving pairs once the expected ranking accuracy reaches the target.",
    )
    # A warm start (modeling/services/warm_start.py): another project's version, same encoder and question.
    warm_start_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="A model version of another project whose scores are this project's prior until it has its own.",
    )
    criterion = models.CharField(
        max_length=40, blank=True, default="",
        help_text="Projects with several criteria: whose answers the model is trained on (empty: the primary one).",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "training settings"
        constraints = [
            models.CheckConstraint(
                condition=Q(promotion_tolerance__gte=0) & Q(promotion_tolerance__lte=1),
                name="trainingsettings_tolerance_0_1",
            ),
            models.CheckConstraint(
                condition=Q(ranking_lambda__gte=0) & Q(ranking_lambda__lte=10), name="trainingsettings_lambda_0_10"
            ),
            models.CheckConstraint(
                condition=Q(target_srcc__isnull=True) | (Q(target_srcc__gte=0) & Q(target_srcc__lte=1)),
                name="trainingsettings_target_srcc_0_1",
            ),
        ]

    def __str__(self):
        return f"training settings of {self.project}"


class ImageFeatures(models.Model):
    """Bookkeeping: this image's encoder features are in the feature store.

    The arrays live on disk (``modeling.ml.features.FeatureStore``); the row makes "which images
    still need features" one query, for the sweep and for progress on the Models page.
    """

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="features")
    encoder_id = models.CharField(max_length=300)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "image features"
        constraints = [
            models.UniqueConstraint(fields=["image", "encoder_id"], name="imagefeatures_unique_per_encoder"),
        ]

    def __str__(self):
        return f"features of {self.image_id} ({self.encoder_id})"


class TrainingRun(WorkerJob):
    """One request to train a project's model, from queued to succeeded or failed.

    At most one run per project is open (queued or running): a partial unique index in the database
    enforces it, so two triggers at once, or a trigger racing a manager's "retrain now", make one run.
    A running run writes ``heartbeat_at``; one whose heartbeat went stale (its worker died) is marked
    failed by the trigger check, so it never blocks the next run.
    """

    class Trigger(models.TextChoices):
        MANUAL = "manual", "A manager asked for it"
        NEW_COMPARISONS = "new_comparisons", "Enough new comparisons"
        MAX_AGE = "max_age", "The active model is too old"

    class Failure(models.TextChoices):
        ERROR = "error", "The training raised an error"
        WORKER_LOST = "worker_lost", "The worker stopped sending heartbeats"
        TIME_LIMIT = "time_limit", "The time limit was reached"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="training_runs")
    trigger = models.CharField(max_length=20, choices=Trigger.choices, default=Trigger.MANUAL)
    trigger_reason = models.CharField(max_length=300, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    dispatched_at = models.DateTimeField(
        null=True, blank=True, help_text="When its task message was last sent; empty if the broker refused it."
    )
    progress = models.FloatField(default=0.0, help_text="0..1")
    stage = models.CharField(max_length=100, blank=True)
    log = models.TextField(blank=True)
    error = models.TextField(blank=True)
    failure_kind = models.CharField(max_length=12, choices=Failure.choices, blank=True)
    celery_task_id = models.CharField(max_length=255, blank=True)
    worker = models.CharField(max_length=255, blank=True, help_text="host:pid of the worker that claimed it.")
    attempts = models.PositiveSmallIntegerField(default=0)
    model_version = models.OneToOneField(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="training_run"
    )

    class Meta(WorkerJob.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["project"],
                condition=Q(status__in=["queued", "running"]),
                name="trainingrun_one_open_per_project",
            ),
            models.CheckConstraint(condition=Q(progress__gte=0) & Q(progress__lte=1), name="trainingrun_progress_0_1"),
        ]
        indexes = [models.Index(fields=["project", "-created_at"], name="trainingrun_project_recent")]

    def __str__(self):
        return f"{self.project.slug} training run {self.pk} ({self.status})"


class Promotion(models.Model):
    """The log of which model version was made active, by whom and why.

    A promotion is requested first (the version starts scoring every image) and completed when the
    switch happened; until then the previous version keeps serving.
    """

    class Kind(models.TextChoices):
        AUTOMATIC = "automatic", "Automatic (champion/challenger)"
        MANUAL = "manual", "Promoted by a manager"
        ROLLBACK = "rollback", "Rolled back by a manager"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="promotions")
    from_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="promotions_away"
    )
    to_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="promotions")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True, help_text="When the version became active.")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.project.slug}: v{self.from_version_id} → v{self.to_version_id} ({self.kind})"


class PairRefillState(models.Model):
    """When a project's pair queue was last refilled, and whether a refill sent from the submit path is
    still in flight (so that judgments arriving together send one refill, not one each)."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, primary_key=True,
                                   related_name="pair_refill_state")
    refilled_at = models.DateTimeField(null=True, blank=True, help_text="When the last refill began to read.")
    in_flight_until = models.DateTimeField(
        null=True, blank=True, help_text="A refill was sent; another is sent only after it ends or this passes."
    )
    pairs_written = models.PositiveIntegerField(
        null=True, blank=True, help_text="Pairs the last refill wrote: the queue is low once half of them are gone."
    )

    def __str__(self):
        return f"pair refills of project {self.project_id}"
