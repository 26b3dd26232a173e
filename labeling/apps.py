from django.apps import AppConfig


class LabelingConfig(AppConfig):
    name = "labeling"
    verbose_name = "Labeling (projects, images, tags, comparisons)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from labeling import url_ids

        url_ids.register()  # <id:…> in every URL conf
