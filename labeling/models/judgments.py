"""The raters' judgments (comparisons and their criteria answers) and the counters kept from them."""
from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import F, Q

from labeling.models.catalogue import Image
from labeling.models.project import Project


class Comparison(models.Model):
    """One rater's judgment of one pair. ``image_a`` is always the image that was shown on the left."""

    class Outcome(models.TextChoices):
        A = "a", "A (left) is better"
        B = "b", "B (right) is better"
        TIE = "tie", "Tie"
        BOTH_BAD = "bad", "Both bad"

    # PROTECT: deleting a project or image with judgments fails; archive it, or purge it on purpose
    # (manage.py purge_project), which exports first.
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="comparisons")
    image_a = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="comparisons_as_a")
    image_b = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="comparisons_as_b")
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
            models.CheckConstraint(condition=Q(outcome__in=["a", "b", "tie", "bad"]), name="comparison_outcome_valid"),
        ]
        indexes = [
            models.Index(fields=["project", "created_at"], name="comparison_project_created"),
            models.Index(fields=["project", "rater"], name="comparison_project_rater"),
        ]

    def __str__(self):
        return f"{self.image_a_id} vs {self.image_b_id}: {self.outcome}"


MAX_CRITERIA = 4
CRITERION_KEY_VALIDATOR = RegexValidator(r"^[a-z][a-z0-9_]{0,39}$", "A criterion key: a-z, digits, _ (40 at most).")


def primary_criterion(criteria: list[dict]) -> str | None:
    """The criterion whose answer is the judgment's outcome (what the human scores and the model use)."""
    keys = [criterion["key"] for criterion in criteria]
    return "overall" if "overall" in keys else (keys[0] if keys else None)


class CriterionAnswer(models.Model):
    """One answer of a judgment in a project with several criteria (``Project.criteria``). The primary
    criterion's answer is also the comparison's ``outcome``, so everything built on outcomes keeps working."""

    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="answers")
    criterion = models.CharField(max_length=40)
    outcome = models.CharField(max_length=3, choices=Comparison.Outcome.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["comparison", "criterion"], name="criterionanswer_unique"),
            models.CheckConstraint(condition=Q(outcome__in=["a", "b", "tie", "bad"]), name="criterionanswer_outcome_valid"),
        ]

    def __str__(self):
        return f"{self.comparison_id} {self.criterion}: {self.outcome}"


class RaterDayCount(models.Model):
    """One rater's judgments in one project on one day (UTC): what the progress, project and dashboard pages
    show without counting comparisons.

    Kept by database triggers on the comparisons table (``labeling/migrations/0014_rater_day_counts.py``), in
    the statement that inserts, updates or deletes comparisons, whichever way it happens: a judgment, an
    undo, a bulk import, a purge, a fix by hand. Only a load that turns triggers off (``COPY`` with
    ``session_replication_role = replica``, as the benchmarks do) must call
    ``labeling.services.rater_counts.recount_rater_days(project)`` afterwards.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    rater = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    comparisons = models.IntegerField(default=0)
    decided_left = models.IntegerField(default=0, help_text="Judgments for image a (the left one).")
    decided_right = models.IntegerField(default=0, help_text="Judgments for image b (the right one).")
    gold_judged = models.IntegerField(default=0)
    gold_correct = models.IntegerField(default=0)
    response_ms_sum = models.BigIntegerField(default=0, help_text="Over the judgments that sent a response time.")
    response_ms_count = models.IntegerField(default=0)
    last_at = models.DateTimeField(null=True, blank=True, help_text="The day's latest judgment.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "rater", "day"], name="raterdaycount_unique")]
        indexes = [models.Index(fields=["project", "day"], name="raterdaycount_project_day")]

    def __str__(self):
        return f"{self.rater_id} on {self.day}: {self.comparisons} judgments"


class ImageStats(models.Model):
    """Counters kept per image so that pair serving never counts comparisons on the fly.

    Written by ``labeling.services.image_stats`` alone, in the transaction that stores or deletes a comparison;
    its docstring lists the paths (ORM saves, the rating hot path, bulk loads) and where each one calls it.
    """

    image = models.OneToOneField(Image, primary_key=True, on_delete=models.CASCADE, related_name="stats")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    comparison_count = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name_plural = "image stats"
        # "The images with the fewest comparisons" is an index range scan, not a sort of the project.
        indexes = [models.Index(fields=["project", "comparison_count", "image"], name="imagestats_fewest")]

    def __str__(self):
        return f"{self.image_id}: {self.comparison_count} comparisons"
