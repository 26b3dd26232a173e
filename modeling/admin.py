from django.contrib import admin

from modeling.models import ImageScore, ModelVersion


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
