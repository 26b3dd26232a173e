"""Webhook events of the model loop: a model version was activated, a training run failed, the expected ranking
accuracy reached its target."""
from __future__ import annotations

import logging

from labeling.models import Webhook
from labeling.services import webhooks

logger = logging.getLogger(__name__)


def model_version_activated(version) -> None:
    webhooks.emit(version.project, Webhook.Event.MODEL_VERSION_ACTIVATED, {
        "model_version": version.pk, "activated_at": version.activated_at.isoformat() if version.activated_at else None,
        "n_comparisons": version.n_comparisons, "metrics": version.metrics,
    })


def training_failed(run_id: int) -> None:
    """Called after a run was marked failed; never raises (the failure itself is what matters)."""
    from modeling.models import TrainingRun

    try:
        run = TrainingRun.objects.select_related("project").get(pk=run_id)
        webhooks.emit(run.project, Webhook.Event.TRAINING_FAILED, {
            "training_run": run.pk, "failure_kind": run.failure_kind, "error": run.error[-2000:],
            "trigger": run.trigger,
        })
    except Exception:  # noqa: BLE001
        logger.warning("could not send the training-failed webhook for run %s", run_id, exc_info=True)


def ranking_target_reached(project, accuracy, target: float, campaign_complete: bool) -> None:
    """The expected ranking accuracy (``RankingAccuracy``) rose to the target; sent each time it crosses it."""
    webhooks.emit(project, Webhook.Event.RANKING_TARGET_REACHED, {
        "expected_srcc": accuracy.expected_srcc, "interval": [accuracy.srcc_low, accuracy.srcc_high],
        "target_srcc": target, "n_comparisons": accuracy.n_comparisons, "campaign_complete": campaign_complete,
    })
