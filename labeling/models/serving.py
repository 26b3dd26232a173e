"""Pair serving: the pair queue, gold and example pairs, and the leases handed to raters."""
from django.conf import settings
from django.db import models
from django.db.models import F, Q

from labeling.models.catalogue import Image
from labeling.models.judgments import Comparison
from labeling.models.project import Project


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
