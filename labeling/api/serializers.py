"""Request and response shapes of the labelling API (they are also what the OpenAPI schema shows)."""
from __future__ import annotations


from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.api_input import BoundedPrimaryKeyRelatedField
from core.limits import MAX_ID
from labeling.models import Comparison, GoldPair, Image, Project
from labeling.services.comparisons import CLIENT_KEY_MAX_LENGTH, RESPONSE_MS_MAX
from labeling.services.criteria import validate_criteria


def absolute(request, url: str) -> str:
    return request.build_absolute_uri(url) if request is not None else url


def file_urls(request, image: Image) -> tuple[str, str]:
    url = absolute(request, image.file.url)
    thumbnail = absolute(request, image.thumbnail.url) if image.thumbnail else url
    return url, thumbnail


# --- Auth ------------------------------------------------------------------------------------------


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, style={"input_type": "password"}, trim_whitespace=False)


class TokenResponseSerializer(serializers.Serializer):
    token = serializers.CharField()
    expires_at = serializers.DateTimeField()


# --- Projects --------------------------------------------------------------------------------------


class ProjectCountsSerializer(serializers.Serializer):
    images = serializers.IntegerField()
    tags = serializers.IntegerField()
    comparisons = serializers.IntegerField()
    my_comparisons = serializers.IntegerField()


class ProjectSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField()
    counts = serializers.SerializerMethodField()

    class Meta:
        model = Project
        fields = [
            "id", "slug", "name", "question", "description", "tag_vocabulary", "overlap", "gold_rate",
            "allow_ties", "pair_strategy", "retrain_min_new_comparisons", "retrain_max_age_hours", "criteria",
            "weight_raters_by_reliability", "instructions", "qualification_gold_pairs", "qualification_min_accuracy",
            "show_prompt", "group_key", "allow_both_bad", "target_judgments", "target_judgments_per_image",
            "stop_at_judgment_target", "created_at", "archived_at", "role", "counts",
        ]
        read_only_fields = ["id", "created_at", "archived_at"]  # archived: read-only (the admin archives)

    def validate(self, attrs):
        attrs = super().validate(attrs)
        current = self.instance
        count = attrs.get("target_judgments", current.target_judgments if current else None)
        per_image = attrs.get("target_judgments_per_image", current.target_judgments_per_image if current else None)
        if count is not None and per_image is not None:
            raise serializers.ValidationError("Set the target as judgments or as judgments per image, not both.")
        if per_image is not None and per_image <= 0:
            raise serializers.ValidationError({"target_judgments_per_image": ["A positive number."]})
        accuracy = attrs.get("qualification_min_accuracy")
        if accuracy is not None and not 0 <= accuracy <= 1:
            raise serializers.ValidationError({"qualification_min_accuracy": ["An accuracy between 0 and 1."]})
        return attrs

    def validate_slug(self, value):
        if self.instance is not None and value != self.instance.slug:
            raise serializers.ValidationError("The slug cannot change: URLs and scripts depend on it.")
        return value

    @extend_schema_field(serializers.ChoiceField(choices=["rater", "manager"]))
    def get_role(self, project) -> str:
        roles = self.context.get("roles", {})
        return roles.get(project.pk, "manager")

    @extend_schema_field(ProjectCountsSerializer)
    def get_counts(self, project) -> dict:
        return {
            "images": getattr(project, "image_count", None) or 0,
            "tags": getattr(project, "tag_count", None) or 0,
            "comparisons": getattr(project, "comparison_count", None) or 0,
            "my_comparisons": getattr(project, "my_comparison_count", None) or 0,
        }

    # What a rater's client needs to rate; the rest (gold rate, overlap, qualification threshold, grouping key,
    # targets, retraining policy) are settings a rater could game or learn from, so they are the manager's only.
    RATER_FIELDS = ("id", "slug", "name", "question", "description", "tag_vocabulary", "allow_ties", "criteria",
                    "instructions", "show_prompt", "allow_both_bad", "created_at", "archived_at", "role", "counts")

    def to_representation(self, project):
        shown = super().to_representation(project)
        if shown.get("role") == "rater":
            shown = {name: shown[name] for name in self.RATER_FIELDS if name in shown}
        return shown

    def validate_criteria(self, value):
        try:
            return validate_criteria(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None

    def validate_gold_rate(self, value):
        if not 0 <= value <= 1:
            raise serializers.ValidationError("The gold rate is a share between 0 and 1.")
        return value

    def validate_overlap(self, value):
        if value < 1 or value > 1000:
            raise serializers.ValidationError("The overlap is between 1 and 1000 judgments per pair.")
        return value


# --- Pairs and comparisons ---------------------------------------------------------------------------


class PairImageSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.URLField()
    thumbnail_url = serializers.URLField()
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    tags = serializers.ListField(child=serializers.CharField())
    prompt = serializers.CharField(
        required=False, help_text="The image's caption (its prompt): only in projects that show the prompt."
    )


class NextPairSerializer(serializers.Serializer):
    lease = serializers.UUIDField(help_text="Send it back with the judgment.")
    a = PairImageSerializer(help_text="The image shown on the left.")
    b = PairImageSerializer(help_text="The image shown on the right.")
    expires_at = serializers.DateTimeField()
    criteria = serializers.ListField(
        child=serializers.DictField(child=serializers.CharField()), required=False,
        help_text="Projects with several criteria: [{key, question}], each answered in the submit's answers.",
    )
    prompt = serializers.CharField(
        required=False, allow_null=True,
        help_text="Only in projects that show the prompt: the two images' prompt, null when they differ "
        "(each image then carries its own).",
    )


def pair_payload(request, lease, *, show_prompt: bool = False, criteria: list | None = None) -> dict:
    """A leased pair as next-pair and undo answer it (``leases.attach_images`` loaded the images and tags).
    With ``show_prompt`` (the project's setting) the captions are added: nothing else about the images."""
    def image(image: Image) -> dict:
        url, thumbnail = file_urls(request, image)
        shown = {
            "id": image.pk,
            "url": url,
            "thumbnail_url": thumbnail,
            "width": image.width,
            "height": image.height,
            "tags": lease.tags[image.pk],
        }
        if show_prompt:
            shown["prompt"] = image.caption
        return shown

    payload = {
        "lease": str(lease.token),
        "a": image(lease.image_a),
        "b": image(lease.image_b),
        "expires_at": serializers.DateTimeField().to_representation(lease.expires_at),
    }
    if criteria:
        payload["criteria"] = [{"key": item["key"], "question": item["question"]} for item in criteria]
    if show_prompt:
        same = lease.image_a.caption == lease.image_b.caption
        payload["prompt"] = lease.image_a.caption if same else None
    return payload


class ComparisonSubmitSerializer(serializers.Serializer):
    lease = serializers.UUIDField()
    winner = serializers.ChoiceField(
        choices=["a", "b", "tie", "bad"], required=False,
        help_text="a = left, b = right, tie, or bad = both bad (only where the project allows it). Projects with "
        "several criteria take answers instead.",
    )
    answers = serializers.DictField(
        child=serializers.ChoiceField(choices=["a", "b", "tie", "bad"]), required=False,
        help_text="Projects with several criteria: {criterion key: a, b, tie or bad}, one answer for each.",
    )
    client_key = serializers.CharField(
        max_length=CLIENT_KEY_MAX_LENGTH,
        help_text="Chosen by the client, unique per judgment: a retry with the same key is answered with the "
        "stored judgment and stores nothing twice.",
    )
    response_ms = serializers.IntegerField(min_value=0, max_value=RESPONSE_MS_MAX, required=False, allow_null=True)

    def validate(self, attrs):
        if "winner" not in attrs and "answers" not in attrs:
            raise serializers.ValidationError({"winner": ["This field is required."]})
        return attrs


class ComparisonSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    winner = serializers.CharField(source="outcome")
    rater_username = serializers.CharField(source="rater.username", read_only=True)

    class Meta:
        model = Comparison
        fields = [
            "id", "project", "image_a", "image_b", "winner", "rater", "rater_username", "client_key",
            "response_ms", "created_at",
        ]
        read_only_fields = fields


def comparison_payload(comparison: Comparison, project_slug: str, username: str) -> dict:
    """What ComparisonSerializer gives, built directly: the submit endpoint answers every judgment, and
    instantiating a ModelSerializer costs more CPU than storing the judgment (a test keeps them equal)."""
    return {
        "id": comparison.pk,
        "project": project_slug,
        "image_a": comparison.image_a_id,
        "image_b": comparison.image_b_id,
        "winner": comparison.outcome,
        "rater": comparison.rater_id,
        "rater_username": username,
        "client_key": comparison.client_key,
        "response_ms": comparison.response_ms,
        "created_at": serializers.DateTimeField().to_representation(comparison.created_at),
    }


class ManagerComparisonSerializer(ComparisonSerializer):
    class Meta(ComparisonSerializer.Meta):
        fields = ComparisonSerializer.Meta.fields + ["is_gold", "gold_correct"]
        read_only_fields = fields


class ComparisonFilterSerializer(serializers.Serializer):
    rater = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID, help_text="A rater's user id.")
    since = serializers.DateTimeField(required=False, help_text="Created at or after (ISO 8601).")
    until = serializers.DateTimeField(required=False, help_text="Created before (ISO 8601).")


class LeaseRequestSerializer(serializers.Serializer):
    lease = serializers.UUIDField()


class LeaseStateSerializer(serializers.Serializer):
    lease = serializers.UUIDField()
    state = serializers.CharField()


class ReleaseRequestSerializer(serializers.Serializer):
    leases = serializers.ListField(child=serializers.UUIDField(), max_length=50)


class ReleasedSerializer(serializers.Serializer):
    released = serializers.IntegerField()


class UndoRequestSerializer(serializers.Serializer):
    comparison = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_ID, help_text="The judgment to undo; it must be the caller's latest in this project."
    )


class UndoResponseSerializer(NextPairSerializer):
    undone = serializers.IntegerField(help_text="The id of the comparison that was taken back.")


# --- Gold pairs, progress --------------------------------------------------------------------------


class GoldPairSerializer(serializers.ModelSerializer):
    image_a = BoundedPrimaryKeyRelatedField(queryset=Image.objects.all())
    image_b = BoundedPrimaryKeyRelatedField(queryset=Image.objects.all())

    class Meta:
        model = GoldPair
        fields = ["id", "image_a", "image_b", "expected", "is_active", "note", "created_at"]
        read_only_fields = ["id", "created_at"]
        validators = []  # the pair's uniqueness is checked in validate(), with a clearer message

    def __init__(self, *args, project=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project
        if project is not None:
            self.fields["image_a"].queryset = Image.objects.filter(project=project)
            self.fields["image_b"].queryset = Image.objects.filter(project=project)

    def validate(self, attrs):
        if attrs["image_a"] == attrs["image_b"]:
            raise serializers.ValidationError("A gold pair needs two different images.")
        pair = {attrs["image_a"].pk, attrs["image_b"].pk}
        if GoldPair.objects.filter(project=self.project, image_a__in=pair, image_b__in=pair).exists():
            raise serializers.ValidationError("This pair is already a gold pair.")
        return attrs


class DayCountSerializer(serializers.Serializer):
    day = serializers.DateField()
    comparisons = serializers.IntegerField()


class RaterProgressSerializer(serializers.Serializer):
    rater = serializers.IntegerField()
    username = serializers.CharField()
    role = serializers.CharField()
    is_active = serializers.BooleanField()
    comparisons = serializers.IntegerField()
    last_judged_at = serializers.DateTimeField(allow_null=True)
    mean_response_ms = serializers.FloatField(allow_null=True)
    gold_judged = serializers.IntegerField()
    gold_correct = serializers.IntegerField()
    gold_accuracy = serializers.FloatField(allow_null=True)
    left_share = serializers.FloatField(allow_null=True, help_text="Share of 'a' (left) among a/b answers.")
    qualification = serializers.ChoiceField(choices=["passed", "failed"], allow_null=True,
                                            help_text="The qualification round's result (null: not decided or none).")
    paused_at = serializers.DateTimeField(allow_null=True, help_text="Paused by the running gold check.")
    pause_reason = serializers.CharField(allow_blank=True)


class PairsRemainingSerializer(serializers.Serializer):
    queued_pairs = serializers.IntegerField(help_text="Open pairs in the queue that still want judgments.")
    fully_leased = serializers.IntegerField()
    images_never_compared = serializers.IntegerField()
    live_leases = serializers.IntegerField()


class CampaignTargetSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["judgments", "judgments_per_image"], allow_null=True,
                                   help_text="How the manager set the target (null: no target).")
    target_judgments = serializers.IntegerField(allow_null=True, help_text="The target in judgments.")
    target_judgments_per_image = serializers.FloatField(allow_null=True)
    judgments = serializers.IntegerField()
    judgments_per_image = serializers.FloatField(allow_null=True)
    share = serializers.FloatField(allow_null=True, help_text="judgments / target, at most 1.")
    met = serializers.BooleanField()
    stop_at_target = serializers.BooleanField(help_text="Pairs stop being served once the target is met.")
    campaign_completed_at = serializers.DateTimeField(allow_null=True, help_text="Serving stopped (any rule).")


class ProgressSerializer(serializers.Serializer):
    target = CampaignTargetSerializer()
    comparisons = serializers.IntegerField()
    per_day = DayCountSerializer(many=True)
    per_rater = RaterProgressSerializer(many=True)
    pairs_remaining = PairsRemainingSerializer()

