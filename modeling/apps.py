from django.apps import AppConfig


class ModelingConfig(AppConfig):
    name = "modeling"
    verbose_name = "Modeling (model versions, scores)"
    default_auto_field = "django.db.models.BigAutoField"
