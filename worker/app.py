import os

from celery import Celery, signals
from kombu import Queue

from worker.schedule import BEAT_SCHEDULE

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("tagrank")
app.config_from_object("django.conf:settings", namespace="CELERY")

# Heavy work (features, training, rescoring) goes to `gpu`; everything else to `default`.
app.conf.task_queues = (Queue("default"), Queue("gpu"))
app.conf.task_default_queue = "default"
app.conf.task_routes = {
    "tagrank.features.*": {"queue": "gpu"},
    "tagrank.training.*": {"queue": "gpu"},
    "tagrank.scoring.*": {"queue": "gpu"},
}
app.conf.task_acks_late = True
app.conf.task_reject_on_worker_lost = True
app.conf.worker_prefetch_multiplier = 1
app.conf.task_track_started = True
app.conf.broker_connection_retry_on_startup = True
app.conf.result_expires = 24 * 3600

# Task modules: one per area, so that each stays small. Each task is a thin wrapper over a service.
app.conf.include = ["worker.tasks", "worker.metrics_tasks", "worker.selection_tasks", "worker.health_tasks",
                    "worker.import_tasks", "worker.webhook_tasks"]
# Beat touches TAGRANK_BEAT_HEARTBEAT_FILE on every loop (its health check in docker-compose.yml).
app.conf.beat_scheduler = "worker.beat:HeartbeatScheduler"

app.conf.beat_schedule = BEAT_SCHEDULE


@signals.worker_init.connect
def lower_cpu_priority(**_kwargs) -> None:
    """Batch work yields the CPU to the web on a shared host: the worker (and the pool it forks after this)
    runs at TAGRANK_WORKER_NICE, so a refit or a training run does not stretch the raters' next-pair tail
    (measured in docs/active-learning.md)."""
    from django.conf import settings

    if settings.TAGRANK_WORKER_NICE > 0:
        os.nice(settings.TAGRANK_WORKER_NICE)


@signals.worker_init.connect
def preload_training_code(sender=None, **_kwargs) -> None:
    """A worker that serves the `gpu` queue imports torch and the training code once, when it starts, rather
    than in the first training run it takes (a run's trigger-to-active time then is the training itself;
    docs/profiles/retrain.md). A prefork pool forks after this, so its children share the imports."""
    queues = sender.app.amqp.queues
    served = set(queues.consume_from or queues)  # no -Q: every queue
    if "gpu" in served:
        import modeling.ml.training  # noqa: F401  (torch, scipy; Django-free)
