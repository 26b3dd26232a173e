from django.apps import AppConfig


class LabelingConfig(AppConfig):
    name = "labeling"
    verbose_name = "Labeling (projects, images, tags, comparisons)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from core.api_errors import answer_refusals
        from labeling import signals
        from labeling.api.refusal_statuses import REFUSAL_STATUS

        signals.connect()
        answer_refusals(REFUSAL_STATUS)
