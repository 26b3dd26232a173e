"""Thin Celery tasks: each calls a service in the apps and holds no business logic."""
from celery import shared_task

from worker.retry import RETRYING


@shared_task(name="tagrank.ping", acks_late=True, soft_time_limit=10, time_limit=20)
def ping(payload: str = "pong") -> dict:
    """A round trip through the broker and a worker: used by health checks and tests."""
    import os
    import socket

    return {"payload": payload, "host": socket.gethostname(), "pid": os.getpid()}


# --- The model loop (modeling.services) -------------------------------------------------------
# Each task is idempotent: it reads what is still to do from the database, so a duplicated or
# redelivered message (acks_late) does nothing twice; transient failures retry (worker/retry.py).


@shared_task(name="tagrank.features.extract", soft_time_limit=1800, time_limit=1900, **RETRYING)
def extract_features_task(image_ids: list[int]) -> dict:
    """Features of a batch of images (queue gpu); then their scores from the active version, if any."""
    from labeling.models import Project
    from modeling.services import feature_extraction, scoring, warm_start

    report = feature_extraction.extract_features(image_ids)
    for project in Project.objects.filter(images__pk__in=report.extracted).distinct():
        extracted = list(project.images.filter(pk__in=report.extracted).values_list("pk", flat=True))
        scoring.score_new_images(project, extracted)
        warm_start.score_new_images(project, extracted)  # while another project's version is its prior
    return report.as_dict()


@shared_task(name="tagrank.features.sweep", soft_time_limit=600, time_limit=660, **RETRYING)
def sweep_features_task() -> dict:
    """Images still without features (a lost message) or without an active score get enqueued again;
    so do images a warm start has not scored yet."""
    from modeling.services import sweep, warm_start

    return {**sweep.sweep(), "warm_start_scoring_enqueued": warm_start.sweep()}


@shared_task(bind=True, name="tagrank.training.train", soft_time_limit=3 * 3600, time_limit=3 * 3600 + 300, **RETRYING)
def train_task(self, run_id: int) -> dict:
    """Claim a queued training run and train it (queue gpu). A run that is not queued is left alone."""
    from modeling.services import training_runs

    return training_runs.execute_run(run_id, task_id=self.request.id or "")


@shared_task(name="tagrank.scoring.rescore", soft_time_limit=3 * 3600, time_limit=3 * 3600 + 300, **RETRYING)
def rescore_task(version_id: int) -> dict:
    """Score every image with a promoted version, then switch it in (queue gpu)."""
    from modeling.services import scoring

    return scoring.rescore(version_id)


@shared_task(name="tagrank.scoring.score_missing", soft_time_limit=1800, time_limit=1900, **RETRYING)
def score_missing_task(version_id: int) -> dict:
    """Score the images an active version has not scored yet (queue gpu)."""
    from modeling.services import scoring

    return scoring.score_missing(version_id)


@shared_task(name="tagrank.scoring.warm_start", soft_time_limit=1800, time_limit=1900, **RETRYING)
def warm_start_scoring_task(project_id: int) -> dict:
    """Score a project's images with its warm start, another project's version (queue gpu)."""
    from modeling.services import warm_start

    return warm_start.score_project(project_id)


@shared_task(name="tagrank.triggers.check", soft_time_limit=120, time_limit=180, **RETRYING)
def check_triggers_task() -> list[dict]:
    """Every minute (beat, queue default): each project's retraining policy, read from the database."""
    from modeling.services import triggers

    return triggers.check_all_projects()


@shared_task(name="tagrank.explanations.explain", soft_time_limit=600, time_limit=660, **RETRYING)
def explain_task(image_id: int, version_id: int) -> dict:
    """Explain an image's score under a version and cache it (queue gpu: it loads the encoder)."""
    from modeling.services import explanations

    return explanations.explain_by_ids(image_id, version_id)
