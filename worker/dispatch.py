"""Named intents: every piece of follow-up work that the web, the CLI or a task sends to the worker.

The apps import nothing from ``worker`` but this module, and it sends tasks by name, so it imports no
task module either: the worker imports the services, never the reverse. A broker that is down never
fails the caller: the send is logged and reported as not sent, and the beat schedule
(``worker/schedule.py``) catches up from what the database says is still to do. Tests patch this
module (an intent, or ``send`` for every message).
"""
from __future__ import annotations

import logging
from collections.abc import Iterable

from celery import chain
from celery.canvas import Signature
from django.db import transaction

from worker.app import app

log = logging.getLogger(__name__)

EXTRACTION_BATCH = 256  # images per feature-extraction message


def task(name: str, *args, **kwargs) -> Signature:
    """The signature of the task called ``name`` (see worker/*.py), without importing its module."""
    return app.signature(name, args=args, kwargs=kwargs, immutable=True)


def send(signature: Signature, what: str) -> bool:
    """Send now. Returns False (and logs) when the broker refuses: the schedule catches up."""
    try:
        signature.apply_async()
    except Exception:  # noqa: BLE001 (any broker error: the schedule catches up)
        log.warning("could not enqueue %s; the schedule will catch up", what, exc_info=True)
        return False
    return True


def send_after_commit(signature: Signature, what: str) -> None:
    """Send ``signature`` once the surrounding transaction commits (at once outside one), so the task
    sees what the caller wrote."""
    transaction.on_commit(lambda: send(signature, what))


# --- The model loop ------------------------------------------------------------------------------


def send_feature_extraction(project_id: int, image_ids: Iterable[int]) -> int:
    """Extract these images' features, in batches. Returns the messages sent; stops at the first the
    broker refuses (the feature sweep picks up the rest)."""
    ids = sorted({int(i) for i in image_ids})
    sent = 0
    for start in range(0, len(ids), EXTRACTION_BATCH):
        batch = ids[start:start + EXTRACTION_BATCH]
        if not send(task("tagrank.features.extract", batch), f"feature extraction for project {project_id}"):
            break
        sent += 1
    return sent


def send_images_imported(project_id: int, image_ids: Iterable[int]) -> None:
    """After an import commits (CLI, REST upload, web upload, demo seeder): extract the new features."""
    ids = list(image_ids)
    if ids:
        transaction.on_commit(lambda: send_feature_extraction(project_id, ids))


def send_training_run(run_id: int) -> bool:
    """Train a queued run (the trigger check re-sends a run whose message never left)."""
    return send(task("tagrank.training.train", run_id), f"training run {run_id}")


def send_rescore(version_id: int) -> bool:
    """Score every image with a promoted version, then switch it in (the trigger check re-sends stalls)."""
    return send(task("tagrank.scoring.rescore", version_id), f"rescoring of version {version_id}")


def send_rescore_after_commit(version_id: int) -> None:
    send_after_commit(task("tagrank.scoring.rescore", version_id), f"rescoring of version {version_id}")


def send_score_missing(version_id: int) -> bool:
    """Score the images the active version has not scored yet."""
    return send(task("tagrank.scoring.score_missing", version_id), f"scoring for version {version_id}")


# --- Dashboards and the pair queue ---------------------------------------------------------------


def send_metrics_refresh(project_id: int) -> None:
    """Refit the project's human scores, then recompute its agreement report (after commit)."""
    send_after_commit(
        chain(task("tagrank.metrics.fit_human_scores", project_id), task("tagrank.metrics.compute_agreement", project_id)),
        f"metrics for project {project_id}",
    )


def send_pair_refill(project_id: int) -> None:
    """Refill the project's pair queue now (after commit) instead of at the next beat tick."""
    send_after_commit(task("tagrank.selection.refill", project_id, force=True), f"a pair refill for project {project_id}")


def send_activation_refresh(project_id: int) -> None:
    """A new active version changes the model prior: refit the human scores and the agreement report, and
    refill the pair queue with pairs chosen under the new scores (after the activation commits)."""
    send_metrics_refresh(project_id)
    send_pair_refill(project_id)


def send_explain(image_id: int, version_id: int) -> None:
    """Explain an image under a model version on a worker (queue gpu: it loads the encoder)."""
    send_after_commit(task("tagrank.explanations.explain", image_id, version_id).set(queue="gpu"),
                      f"an explanation of image {image_id} under model version {version_id}")


def send_claimed_pair_refill(project_id: int) -> None:
    """A pair-queue refill that the submit path found due; the caller holds the project's in-flight flag
    (modeling.services.pair_selection.claim_refill), which the task clears when it ends."""
    send_after_commit(task("tagrank.selection.refill", project_id, claimed=True),
                      f"a due pair refill for project {project_id}")


def send_import_job(job_id: int) -> None:
    """Run a bulk import job (labeling.services.import_jobs) on the worker once the caller commits."""
    send_after_commit(task("tagrank.imports.run", job_id), f"import job {job_id}")


def send_webhook_delivery(delivery_id: int) -> None:
    """POST a webhook delivery (labeling.services.webhooks) from the worker once the caller commits."""
    send_after_commit(task("tagrank.webhooks.deliver", delivery_id), f"webhook delivery {delivery_id}")


def send_warm_start_scoring(project_id: int) -> None:
    """Score a project's images with its warm start, another project's model version (queue gpu, after commit)."""
    send_after_commit(task("tagrank.scoring.warm_start", project_id), f"warm-start scoring for project {project_id}")
