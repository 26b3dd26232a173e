"""Celery beat's schedule, in one place: periodic work that reads the database, so a lost message
is caught up. Task names are those in worker/tasks.py, worker/metrics_tasks.py and worker/selection_tasks.py."""
BEAT_SCHEDULE: dict[str, dict] = {
    # Dashboards: refit stale human scores, then recompute changed reports.
    "metrics-fit-human-scores": {"task": "tagrank.metrics.fit_human_scores", "schedule": 600.0},
    "metrics-compute-agreement": {"task": "tagrank.metrics.compute_agreement", "schedule": 900.0},
    # The model loop: the retraining trigger reads each project's policy from the database every
    # minute; the sweep re-enqueues images whose features or scores are still missing.
    "model-loop-trigger-check": {"task": "tagrank.triggers.check", "schedule": 60.0},
    "model-loop-feature-sweep": {"task": "tagrank.features.sweep", "schedule": 300.0},
    # Active selection: refill pair queues that are running low or stale.
    "selection-refill": {"task": "tagrank.selection.refill", "schedule": 30.0},
    # Health (worker/health_tasks.py): a tick whose age /healthz/ reports; an old one is dropped, not run late.
    "health-beat-tick": {"task": "tagrank.health.beat_tick", "schedule": 30.0, "options": {"expires": 60}},
    # Webhooks (worker/webhook_tasks.py): announce projects that reached a webhook's number of judgments.
    "webhooks-judgment-targets": {"task": "tagrank.webhooks.check_targets", "schedule": 60.0},
}
