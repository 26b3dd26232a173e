"""Celery beat's schedule: periodic work that reads the database (so a lost message is caught up)."""
BEAT_SCHEDULE: dict[str, dict] = {
    # Dashboards (worker/metrics_tasks.py): refit stale human scores, then recompute changed reports.
    "metrics-fit-human-scores": {"task": "tagrank.metrics.fit_human_scores", "schedule": 600.0},
    "metrics-compute-agreement": {"task": "tagrank.metrics.compute_agreement", "schedule": 900.0},
}

# The model loop (worker/tasks.py): the retraining trigger reads each project's policy from the
# database every minute; the sweep re-enqueues images whose features or scores are still missing.
BEAT_SCHEDULE.update({
    "model-loop-trigger-check": {"task": "tagrank.triggers.check", "schedule": 60.0},
    "model-loop-feature-sweep": {"task": "tagrank.features.sweep", "schedule": 300.0},
})

# Active selection (worker/selection_tasks.py): refill pair queues that are running low or stale.
BEAT_SCHEDULE["selection-refill"] = {"task": "tagrank.selection.refill", "schedule": 30.0}

# Webhooks (worker/webhook_tasks.py): announce projects that reached a webhook's number of judgments.
BEAT_SCHEDULE["webhooks-judgment-targets"] = {"task": "tagrank.webhooks.check_targets", "schedule": 60.0}
