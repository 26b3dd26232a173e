from django.apps import AppConfig


class ModelingConfig(AppConfig):
    name = "modeling"
    verbose_name = "Modeling (model versions, scores)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from labeling.services.pipeline import on_images_imported
        from modeling.services.features import on_images_imported as extract_after_import
        from modeling.services.scoring import on_model_version_activated

        # Every import path (CLI, REST upload, demo seeder) enqueues feature extraction after commit.
        if extract_after_import not in _registered:
            on_images_imported(extract_after_import)
            _registered.append(extract_after_import)
        # Every activation (training, promotion, rollback) refreshes what depends on the active scores.
        if refresh_after_activation not in _registered:
            on_model_version_activated(refresh_after_activation)
            _registered.append(refresh_after_activation)
        # Webhooks subscribed to model_version.activated (modeling/services/notifications.py).
        from modeling.services.notifications import model_version_activated

        if model_version_activated not in _registered:
            on_model_version_activated(model_version_activated)
            _registered.append(model_version_activated)


def refresh_after_activation(version) -> None:
    """A new active version changes the model prior: refit the human scores, recompute the dashboard's
    agreement report, and refill the pair queue with pairs chosen under the new scores."""
    # Imported here: the worker imports the services, not the reverse.
    from worker.metrics_tasks import enqueue_metrics
    from worker.selection_tasks import enqueue_refill

    enqueue_metrics(version.project_id)
    enqueue_refill(version.project_id)


_registered: list = []
