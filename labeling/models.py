"""The human side of Tagrank: projects, their images and tags, and the comparisons raters make."""
import math

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Lower

SCORE_BINS = 10  # AVA-style scores 1..10


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


# --- Pair serving ------------------------------------------------------------------------------
# Added with the rating loop: per-image counters, the pair queue, leases, gold pairs, invitations.


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

    Created with the image (``labeling/signals.py``) and kept in step with comparisons in the same transaction
    that stores or deletes one. Rows written in bulk (``bulk_create``) bypass the signals; call
    ``labeling.services.image_stats.recount_image_stats(project)`` after such a load.
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


class PairCandidate(models.Model):
    """One unordered pair in a project's pair queue.

    Active selection (a Celery task) writes rows with a priority; ``next_pair`` reads the open row
    with the highest priority that this rater may judge and leases it. The fallback strategy adds
    its own rows (priority 0), so every lease goes through one lockable row per pair, and that lock
    is what keeps concurrent requests from handing out more slots than the project's overlap.
    """

    class Source(models.TextChoices):
        ACTIVE = "active", "Active selection"
        RANDOM = "random", "Random"
        ROUND_ROBIN = "round_robin", "Round robin"
        FALLBACK = "fallback", "Fallback (fewest comparisons)"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="pair_candidates")
    image_low = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="+")
    image_high = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="+")
    priority = models.FloatField(default=0.0, help_text="Higher is served first.")
    source = models.CharField(max_length=12, choices=Source.choices, default=Source.FALLBACK)
    judgments = models.PositiveIntegerField(default=0, help_text="Comparisons stored for this pair (either order).")
    is_open = models.BooleanField(default=True, help_text="False once the pair has the project's overlap of judgments.")
    full_until = models.DateTimeField(
        null=True, blank=True, help_text="Every slot is leased until then (the earliest live lease expires)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "image_low", "image_high"], name="paircandidate_unique_pair"),
            models.CheckConstraint(condition=Q(image_low__lt=F("image_high")), name="paircandidate_ordered_pair"),
        ]
        indexes = [
            models.Index(
                fields=["project", "-priority", "id"], condition=Q(is_open=True), name="paircandidate_queue"
            ),
        ]

    def __str__(self):
        return f"{self.image_low_id}–{self.image_high_id} (p={self.priority:.3g}, {self.judgments} judged)"


# A gold pair's right answer is a preference or a tie: "both bad" is no answer to check a rater against.
GOLD_ANSWERS = [(value, label) for value, label in Comparison.Outcome.choices if value != Comparison.Outcome.BOTH_BAD]


class GoldPair(models.Model):
    """A pair with a known answer, marked by a manager; served at the project's gold rate."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="gold_pairs")
    image_a = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="+")
    image_b = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="+")
    expected = models.CharField(
        max_length=3, choices=GOLD_ANSWERS, help_text="The right answer with image_a on the left."
    )
    is_active = models.BooleanField(default=True)
    note = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=~Q(image_a=F("image_b")), name="goldpair_distinct_images"),
            models.UniqueConstraint(fields=["project", "image_a", "image_b"], name="goldpair_unique_pair"),
            models.CheckConstraint(condition=Q(expected__in=["a", "b", "tie"]), name="goldpair_expected_valid"),
        ]

    def __str__(self):
        return f"gold {self.image_a_id} vs {self.image_b_id}: {self.expected}"

    def expected_for(self, left_id: int) -> str:
        """The right answer when ``left_id`` is shown on the left."""
        if left_id == self.image_a_id or self.expected == Comparison.Outcome.TIE:
            return self.expected
        return Comparison.Outcome.B if self.expected == Comparison.Outcome.A else Comparison.Outcome.A


class ExamplePair(models.Model):
    """A worked example in the project's instructions: two images, the right answer and why."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="example_pairs")
    image_a = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="+", help_text="Shown on the left.")
    image_b = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="+", help_text="Shown on the right.")
    expected = models.CharField(max_length=3, choices=GOLD_ANSWERS, help_text="The right answer.")
    explanation = models.TextField(blank=True, help_text="Why, in Markdown.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=~Q(image_a=F("image_b")), name="examplepair_distinct_images"),
            models.CheckConstraint(condition=Q(expected__in=["a", "b", "tie"]), name="examplepair_expected_valid"),
        ]

    def __str__(self):
        return f"example {self.image_a_id} vs {self.image_b_id}: {self.expected}"


class PairLease(models.Model):
    """A pair handed to one rater until ``expires_at``; the token is what the client sends back.

    A live lease holds one of its pair's overlap slots. It ends judged (with its comparison), skipped
    (the slot returns and this rater never gets the pair again), released (the slot returns, e.g. when
    the rating page closes with a prefetched pair), undone (its comparison was taken back and a new
    lease replaces it), or it simply runs out: an expired live lease no longer counts.
    """

    class State(models.TextChoices):
        LIVE = "live", "Live"
        JUDGED = "judged", "Judged"
        SKIPPED = "skipped", "Skipped"
        RELEASED = "released", "Released"
        UNDONE = "undone", "Undone"

    token = models.UUIDField(unique=True, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="pair_leases")
    rater = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="pair_leases")
    candidate = models.ForeignKey(
        PairCandidate, null=True, blank=True, on_delete=models.SET_NULL, related_name="leases"
    )
    gold = models.ForeignKey(GoldPair, null=True, blank=True, on_delete=models.SET_NULL, related_name="leases")
    image_a = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="+", help_text="Shown on the left.")
    image_b = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="+", help_text="Shown on the right.")
    state = models.CharField(max_length=8, choices=State.choices, default=State.LIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    comparison = models.OneToOneField(
        Comparison, null=True, blank=True, on_delete=models.SET_NULL, related_name="lease"
    )

    class Meta:
        constraints = [
            models.CheckConstraint(condition=~Q(image_a=F("image_b")), name="pairlease_distinct_images"),
        ]
        indexes = [
            models.Index(fields=["candidate", "state", "expires_at"], name="pairlease_candidate_live"),
            models.Index(fields=["rater", "candidate"], name="pairlease_rater_candidate"),
            models.Index(fields=["rater", "gold"], name="pairlease_rater_gold"),
            # A rater's live leases (the cap check on every next-pair): only the live ones, not every judged one.
            models.Index(fields=["rater", "project", "created_at"], condition=Q(state="live"), name="pairlease_rater_live"),
        ]

    def __str__(self):
        return f"lease {self.token} ({self.state})"

    @property
    def pair(self) -> tuple[Image, Image]:
        return self.image_a, self.image_b

    @property
    def is_gold(self) -> bool:
        return self.gold_id is not None


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


class Heartbeat(models.Model):
    """When a periodic signal last arrived (``beat``: the tick beat sends and a worker runs); /healthz/ reads it."""

    name = models.CharField(max_length=40, primary_key=True)
    at = models.DateTimeField()

    def __str__(self):
        return f"{self.name} at {self.at:%Y-%m-%d %H:%M:%S}"


# --- Jobs run on the worker ----------------------------------------------------------------------


class WorkerJob(models.Model):
    """What every job run on the worker records (import jobs here, training runs in modeling): its status
    and when it was queued, started, last alive and finished. A stale ``heartbeat_at`` means its worker died."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    OPEN_STATUSES = (Status.QUEUED, Status.RUNNING)

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at", "-id"]

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES


# --- Import jobs ---------------------------------------------------------------------------------
# Added with bulk import (labeling/services/import_jobs.py): one job per archive, folder or manifest,
# run on the worker, resumable from ``position``.


class ImportJob(WorkerJob):
    """A bulk import of images run on the worker, with its progress.

    Entries (archive members, files in a folder, manifest lines) are taken in a fixed order, and
    ``position`` counts those finished: a job that stopped (worker lost, redelivered message, a
    manager's "resume") starts again from there. Storing is idempotent on the content hash, so an
    entry done twice is stored once.
    """

    class Source(models.TextChoices):
        ARCHIVE = "archive", "Uploaded archive (zip or tar)"
        FOLDER = "folder", "Folder on the server"
        MANIFEST = "manifest", "Manifest of URLs or S3 keys"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="import_jobs")
    source_kind = models.CharField(max_length=10, choices=Source.choices)
    source = models.CharField(max_length=1000, help_text="The archive's name, the folder, or the manifest's name.")
    archive_path = models.CharField(max_length=1000, blank=True, help_text="Where the uploaded archive is kept.")
    manifest = models.TextField(blank=True, help_text="One URL or s3://bucket/key per line.")
    total = models.PositiveIntegerField(null=True, blank=True, help_text="Entries in the source, once counted.")
    position = models.PositiveIntegerField(default=0, help_text="Entries finished, in the source's order.")
    done = models.PositiveIntegerField(default=0, help_text="Images stored.")
    skipped = models.PositiveIntegerField(default=0, help_text="Entries already in the project (same content).")
    failed = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, help_text="Why the whole job stopped, if it did.")
    claim = models.CharField(max_length=64, blank=True, help_text="The run that owns the job now.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self):
        return f"import {self.pk} into {self.project} ({self.status})"


class ImportJobIssue(models.Model):
    """An entry of an import job that was skipped or failed, with the reason."""

    class Kind(models.TextChoices):
        SKIPPED = "skipped", "Skipped"
        FAILED = "failed", "Failed"

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="issues")
    position = models.PositiveIntegerField(help_text="The entry's place in the source (0-based).")
    name = models.CharField(max_length=1000)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    reason = models.TextField()

    class Meta:
        ordering = ["position", "id"]
        constraints = [models.UniqueConstraint(fields=["job", "position"], name="importjobissue_unique_position")]

    def __str__(self):
        return f"{self.name}: {self.kind} ({self.reason})"


# --- Webhooks ------------------------------------------------------------------------------------
# Added with webhooks (labeling/services/webhooks.py): managers register URLs per project; every event
# becomes one delivery per subscribed webhook, posted by the worker with retries and an HMAC signature.


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
