"""A project: what raters judge and how pairs are served, its targets and retraining policy."""
from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q


# A metadata key that groups images for pairing: letters, digits and _ . - (it is used inside a JSON path).
GROUP_KEY_VALIDATOR = RegexValidator(
    r"^(?!.*__)[A-Za-z_][A-Za-z0-9_.-]*$",
    "A metadata key: a letter or _ first, then letters, digits, _ . or - (no double underscore).",
    code="group_key",
)


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
    instructions = models.TextField(
        blank=True, help_text="What raters should judge and how, in Markdown: shown before the first pair and "
        "behind the rating page's help key."
    )
    tag_vocabulary = models.CharField(max_length=10, choices=TagVocabulary.choices, default=TagVocabulary.OPEN)
    overlap = models.PositiveSmallIntegerField(default=1, help_text="Judgments wanted per pair, from different raters.")
    gold_rate = models.FloatField(default=0.0, help_text="Share of served pairs that are gold pairs (0..1).")
    allow_ties = models.BooleanField(default=True)
    # Generated-image campaigns (issue 27): the prompt shown to raters, pairs within a group, "both bad".
    show_prompt = models.BooleanField(
        default=False, help_text="Show raters the images' caption (their prompt) above the pair. Off: raters judge blind."
    )
    group_key = models.CharField(
        max_length=100, blank=True, default="", validators=[GROUP_KEY_VALIDATOR],
        help_text="A metadata key (e.g. prompt_id): every pair served is two images with the same value. "
        "Empty: pairs across the whole project.",
    )
    allow_both_bad = models.BooleanField(default=False, help_text="Raters may answer that both images are bad.")
    criteria = models.JSONField(
        default=list, blank=True,
        help_text='Several questions per pair: [{"key": "alignment", "question": "Which matches the prompt better?"}, '
        '...], 2 to 4 of them; the one keyed "overall" (else the first) is the judgment\'s outcome. Empty: the '
        "question above alone.",
    )
    pair_strategy = models.CharField(max_length=20, choices=PairStrategy.choices, default=PairStrategy.ACTIVE)
    retrain_min_new_comparisons = models.PositiveIntegerField(
        default=50, help_text="Retrain once this many comparisons arrived since the active model was trained."
    )
    retrain_max_age_hours = models.PositiveIntegerField(
        default=24, help_text="Also retrain when the active model is older than this and anything is new."
    )
    qualification_gold_pairs = models.PositiveSmallIntegerField(
        default=0, help_text="Gold pairs a rater answers before ordinary pairs are served (0: no qualification). "
        "Gold keeps checking afterwards: a rater whose running gold accuracy falls below the threshold is paused."
    )
    qualification_min_accuracy = models.FloatField(
        default=0.8, help_text="Gold accuracy (0..1) needed to pass the qualification and to stay unpaused."
    )
    target_judgments = models.PositiveIntegerField(
        null=True, blank=True, help_text="The campaign's target: this many judgments in all (or per image, below)."
    )
    target_judgments_per_image = models.FloatField(
        null=True, blank=True, help_text="Or the target as judgments per image: this many times the active images."
    )
    stop_at_judgment_target = models.BooleanField(
        default=False, help_text="Stop serving pairs once the target is met (raising it reopens the campaign)."
    )
    weight_raters_by_reliability = models.BooleanField(
        default=True,
        help_text="Weight each rater's comparisons in the human scores by their estimated reliability "
        "(random clickers count for little); untick for the unweighted fit.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Projects and images are archived, never deleted by the app: their comparisons are kept (PROTECT).
    archived_at = models.DateTimeField(null=True, blank=True, help_text="Archived: hidden and no longer served.")
    # Set and cleared by the model loop's stopping rule (labeling does not import it): while set, no pair is served.
    campaign_completed_at = models.DateTimeField(
        null=True, blank=True,
        help_text="The campaign reached its target of ranking accuracy and stopped serving pairs.",
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(overlap__gte=1), name="project_overlap_at_least_one"),
            models.CheckConstraint(condition=Q(gold_rate__gte=0) & Q(gold_rate__lte=1), name="project_gold_rate_0_1"),
            models.CheckConstraint(condition=Q(qualification_min_accuracy__gte=0) & Q(qualification_min_accuracy__lte=1),
                                   name="project_qualification_accuracy_0_1"),
            models.CheckConstraint(condition=Q(target_judgments__isnull=True) | Q(target_judgments_per_image__isnull=True),
                                   name="project_one_judgment_target"),
            models.CheckConstraint(condition=Q(target_judgments_per_image__isnull=True) | Q(target_judgments_per_image__gt=0),
                                   name="project_target_per_image_positive"),
        ]
        permissions = [
            ("manage_project", "Can manage a project: images, raters, models"),
            ("export_project", "Can export a project's scores and data"),
        ]

    def __str__(self):
        return self.name
