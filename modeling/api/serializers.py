"""Shapes of the model-loop API: model versions, training runs, promotions."""
from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.reverse import reverse

from labeling import access

from modeling.models import ModelVersion, Promotion, TrainingRun, TrainingSettings, WarmStartScore
from modeling.services import warm_start


class ScoringProgressSerializer(serializers.Serializer):
    total = serializers.IntegerField(help_text="Images to score.")
    done = serializers.IntegerField(help_text="Images scored so far.")
    fraction = serializers.FloatField(allow_null=True)
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class ModelVersionSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    is_demo_encoder = serializers.BooleanField(read_only=True, help_text="Scores from the tiny demo encoder mean nothing.")
    scoring = serializers.SerializerMethodField()
    training_run = serializers.SerializerMethodField()
    metrics = serializers.JSONField(
        read_only=True,
        help_text="pairwise_agreement and baseline_pairwise_agreement (held out), holdout.{tags,image_only} "
        "(all metrics), validation, champion, counts, losses_used, training_seconds.",
    )
    config = serializers.JSONField(read_only=True)

    class Meta:
        model = ModelVersion
        fields = [
            "id", "project", "created_at", "status", "status_reason", "is_active", "activated_at", "encoder_id",
            "is_demo_encoder", "n_comparisons", "last_comparison_id", "training_seconds", "scoring", "metrics",
            "config", "training_run",
        ]
        read_only_fields = fields

    @extend_schema_field(ScoringProgressSerializer)
    def get_scoring(self, version: ModelVersion) -> dict:
        return {
            "total": version.scoring_total,
            "done": version.scoring_done,
            "fraction": version.scoring_fraction,
            "started_at": version.scoring_started_at,
            "finished_at": version.scoring_finished_at,
        }

    @extend_schema_field(OpenApiTypes.INT)
    def get_training_run(self, version: ModelVersion) -> int | None:
        run = getattr(version, "training_run", None)
        return run.pk if run else None


class TrainingRunSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    url = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField(help_text="Why it failed: the full traceback for site staff, its "
                                              "message for managers.")

    class Meta:
        model = TrainingRun
        fields = [
            "id", "url", "project", "status", "trigger", "trigger_reason", "requested_by", "created_at",
            "dispatched_at", "started_at", "heartbeat_at", "finished_at", "progress", "stage", "log", "error",
            "failure_kind", "attempts", "model_version",
        ]
        read_only_fields = fields

    def get_error(self, run: TrainingRun) -> str:
        request = self.context.get("request")
        return access.error_for(request.user, run.error) if request is not None else access.error_message(run.error)

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, run: TrainingRun) -> str:
        return reverse("api-training-run", kwargs={"run_id": run.pk}, request=self.context.get("request"))


class RetrainAcceptedSerializer(serializers.Serializer):
    training_run = serializers.IntegerField(help_text="The id of the queued (or already open) training run.")
    created = serializers.BooleanField(help_text="False when a run was already queued or running: that one is returned.")
    status = serializers.CharField()
    url = serializers.URLField()


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, help_text="Why: kept in the promotion log with your name.")


class PromotionSerializer(serializers.ModelSerializer):
    decided_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = Promotion
        fields = ["id", "kind", "from_version", "to_version", "decided_by", "reason", "created_at", "completed_at"]
        read_only_fields = fields


class WarmStartStateSerializer(serializers.Serializer):
    version = serializers.IntegerField(help_text="The model version of another project named as the warm start.")
    in_use = serializers.BooleanField(help_text="It is the prior now: this project has no active version of its own.")
    scored_images = serializers.IntegerField(help_text="This project's images it has scored so far (on the worker).")


class TrainingSettingsSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    warm_start_version = serializers.IntegerField(
        source="warm_start_version_id", allow_null=True, required=False,
        help_text="A model version of another project you manage, with the same encoder and question, whose scores "
        "are this project's prior until it has an active version of its own (null: none). A version outside your "
        "projects is 404; another encoder or question, 400.")
    warm_start = serializers.SerializerMethodField()

    class Meta:
        model = TrainingSettings
        fields = ["project", "ranking_lambda", "promotion_tolerance", "train_baseline", "target_srcc", "stop_at_target",
                  "warm_start_version", "warm_start", "criterion", "hyperparameters", "updated_at"]
        read_only_fields = ["project", "hyperparameters", "updated_at"]
        # The database's check constraints, as 400s instead of integrity errors.
        extra_kwargs = {"promotion_tolerance": {"min_value": 0.0, "max_value": 1.0},
                        "ranking_lambda": {"min_value": 0.0, "max_value": 10.0},
                        "target_srcc": {"min_value": 0.0, "max_value": 1.0}}

    def validate_warm_start_version(self, value):
        """404 (raised) for a version outside the caller's projects, 400 for one that cannot be a warm start."""
        request, project = self.context["request"], self.context["project"]
        try:
            version = warm_start.check_warm_start(request.user, project, value)
        except warm_start.WarmStartInvalid as exc:
            raise serializers.ValidationError(exc.message) from exc
        return version.pk if version else None

    @extend_schema_field(WarmStartStateSerializer(allow_null=True))
    def get_warm_start(self, settings) -> dict | None:
        if settings.warm_start_version_id is None:
            return None
        return {"version": settings.warm_start_version_id, "in_use": warm_start.in_use(settings.project),
                "scored_images": WarmStartScore.objects.filter(
                    project=settings.project, model_version_id=settings.warm_start_version_id).count()}

    def validate_criterion(self, value):
        keys = [item["key"] for item in self.context["project"].criteria or []]
        if value and value not in keys:
            raise serializers.ValidationError(
                f"One of this project's criteria ({', '.join(keys) or 'none: it asks one question'}), or empty.")
        return value

    def validate(self, attrs):
        target = attrs.get("target_srcc", getattr(self.instance, "target_srcc", None))
        if attrs.get("stop_at_target", getattr(self.instance, "stop_at_target", False)) and target is None:
            raise serializers.ValidationError({"stop_at_target": "Set target_srcc to stop at a target."})
        return attrs


class RankingAccuracySerializer(serializers.Serializer):
    expected_srcc = serializers.FloatField(
        allow_null=True, help_text="Expected SRCC between the current ranking (human scores) and the truth, over "
        "draws from the scores' posterior; null before the first fit.")
    interval = serializers.ListField(child=serializers.FloatField(), allow_null=True,
                                     help_text="[low, high]: the quantiles interval_quantiles of the draws.")
    interval_quantiles = serializers.ListField(child=serializers.FloatField())
    n_images = serializers.IntegerField(allow_null=True)
    images_per_draw = serializers.IntegerField(allow_null=True, help_text="Fewer than n_images when subsampled.")
    draws = serializers.IntegerField(allow_null=True)
    n_comparisons = serializers.IntegerField(allow_null=True, help_text="Comparisons in the fit it comes from.")
    computed_at = serializers.DateTimeField(allow_null=True, help_text="When that fit read the comparisons.")
    target_srcc = serializers.FloatField(allow_null=True, help_text="The manager's target (training settings).")
    stop_at_target = serializers.BooleanField()
    target_reached = serializers.BooleanField(help_text="expected_srcc >= target_srcc.")
    campaign_completed_at = serializers.DateTimeField(
        allow_null=True, help_text="Set while pairs are no longer served (stop_at_target and the target reached).")
