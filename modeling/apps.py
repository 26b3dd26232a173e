from django.apps import AppConfig


class ModelingConfig(AppConfig):
    name = "modeling"
    verbose_name = "Modeling (model versions, scores)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from labeling.services.pipeline import on_images_imported
        from modeling.services.features import on_images_imported as extract_after_import

        # Every import path (CLI, REST upload, demo seeder) enqueues feature extraction after commit.
        if extract_after_import not in _registered:
            on_images_imported(extract_after_import)
            _registered.append(extract_after_import)


_registered: list = []
