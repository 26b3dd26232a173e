"""Models of the shared plumbing: no app's data.

- ``WorkerJob``: the abstract base of every job run on the worker (labeling's ``ImportJob``, modeling's
  ``TrainingRun``).
- ``Heartbeat``: when a periodic signal last arrived; beat's tick records it and /healthz/ reads it
  (``core/heartbeats.py``). It moved here from labeling with its table: ``db_table`` keeps the old name, so the
  move wrote no data (``core/migrations/0001_initial.py``, ``labeling/migrations/0017_heartbeat_moves_to_core.py``).
"""
from django.db import models


class WorkerJob(models.Model):
    """What every job run on the worker records (import jobs here, training runs in modeling): its status
    and when it was queued, started, last alive and finished. A stale ``heartbeat_at`` means its worker died."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    OPEN_STATUSES = (Status.QUEUED, Status.RUNNING)

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at", "-id"]

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES


class Heartbeat(models.Model):
    """When a periodic signal last arrived (``beat``: the tick beat sends and a worker runs); /healthz/ reads it."""

    name = models.CharField(max_length=40, primary_key=True)
    at = models.DateTimeField()

    class Meta:
        db_table = "labeling_heartbeat"  # its table since labeling created it: the move kept it

    def __str__(self):
        return f"{self.name} at {self.at:%Y-%m-%d %H:%M:%S}"
