from django.contrib import admin

from modeling.models import ImageScore, ModelVersion, Promotion, TrainingRun, TrainingSettings


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "status", "is_active", "encoder_id", "n_comparisons", "created_at"]
    list_filter = ["project", "status", "is_active", "encoder_id"]
    readonly_fields = ["created_at"]


@admin.register(ImageScore)
class ImageScoreAdmin(admin.ModelAdmin):
    list_display = ["image", "model_version", "mean", "uncertainty"]
    list_filter = ["model_version__project", "model_version"]
    raw_id_fields = ["image", "model_version"]


# The model loop (issue 5).
@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "status", "trigger", "progress", "stage", "created_at", "finished_at", "model_version"]
    list_filter = ["project", "status", "trigger", "failure_kind"]
    readonly_fields = ["created_at", "heartbeat_at", "log", "error"]


@admin.register(Promotion)
class PromotionAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "from_version", "to_version", "kind", "decided_by", "created_at", "completed_at"]
    list_filter = ["project", "kind"]


@admin.register(TrainingSettings)
class TrainingSettingsAdmin(admin.ModelAdmin):
    list_display = ["project", "promotion_tolerance", "train_baseline", "updated_at"]
