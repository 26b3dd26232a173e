from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Core (plumbing both apps use)"
    default_auto_field = "django.db.models.BigAutoField"
