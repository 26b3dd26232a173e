from django.apps import AppConfig


class LabelingConfig(AppConfig):
    name = "labeling"
    verbose_name = "Labeling (projects, images, tags, comparisons)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from core.api_errors import answer_refusals
        from labeling import signals, url_ids
        from labeling.api.refusal_statuses import REFUSAL_STATUS

        url_ids.register()  # <id:…> in every URL conf
        signals.connect()
        answer_refusals(REFUSAL_STATUS)
