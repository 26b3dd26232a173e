"""What a claimed training run writes to its row while it trains: progress, stage, log and a heartbeat
(a thread, plus every progress write). Every write is conditional on the run still being this worker's:
one that was marked failed while its worker was merely slow raises ``RunAbandoned`` at its next write.
"""
from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.db import connection
from django.utils import timezone

from modeling.models import TrainingRun
from modeling.services import notifications

logger = logging.getLogger(__name__)

LOG_LIMIT = 50_000  # characters of log kept per run (the newest)


class RunAbandoned(Exception):
    """The run was taken away from this worker (marked failed as dead) while it was still training."""


def heartbeat_seconds() -> float:
    return float(settings.TAGRANK_TRAINING_HEARTBEAT_SECONDS)


class RunReporter:
    """Progress, stage, log and heartbeat of a claimed run, written to its row.

    Every write is conditional on the run still being ours (running, same attempt); when it is not,
    ``RunAbandoned`` stops the training.
    """

    MIN_INTERVAL = 1.0  # seconds between progress writes; stage changes and log lines always write

    def __init__(self, run: TrainingRun):
        self.run = run
        self.lines: list[str] = []
        self.progress_value = 0.0
        self.stage_name = ""
        self._last_write = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = time.monotonic()

    def _mine(self):
        return TrainingRun.objects.filter(pk=self.run.pk, status=TrainingRun.Status.RUNNING, attempts=self.run.attempts)

    def _write(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._last_write < self.MIN_INTERVAL:
            return
        updated = self._mine().update(
            progress=min(max(self.progress_value, 0.0), 1.0), stage=self.stage_name[:100],
            log="\n".join(self.lines)[-LOG_LIMIT:], heartbeat_at=timezone.now(),
        )
        self._last_write = time.monotonic()
        if not updated:
            raise RunAbandoned(f"training run {self.run.pk} is no longer running on this worker")

    def log(self, message: str) -> None:
        line = f"[{time.monotonic() - self._t0:7.1f}s] {message}"
        logger.info("run %s: %s", self.run.pk, message)
        self.lines.append(line)
        self._write(force=True)

    def stage(self, name: str, progress: float) -> None:
        self.stage_name, self.progress_value = name, progress
        self.log(name)

    def progress(self, value: float) -> None:
        self.progress_value = max(self.progress_value, value)
        self._write()

    # The heartbeat thread keeps the run alive through long steps that report no progress.
    def start_heartbeat(self) -> None:
        interval = heartbeat_seconds()
        if interval <= 0:
            return

        def beat():
            try:
                while not self._stop.wait(interval):
                    self._mine().update(heartbeat_at=timezone.now())
            except Exception:  # a heartbeat that cannot be written just stops; staleness says the rest
                logger.exception("heartbeat of run %s stopped", self.run.pk)
            finally:
                connection.close()  # this thread's own connection

        self._thread = threading.Thread(target=beat, name=f"heartbeat-run-{self.run.pk}", daemon=True)
        self._thread.start()

    def stop_heartbeat(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def fail(self, kind: str, error: str) -> None:
        self.lines.append(f"FAILED: {error.strip().splitlines()[-1] if error.strip() else kind}")
        if self._mine().update(
            status=TrainingRun.Status.FAILED, failure_kind=kind, error=error[-LOG_LIMIT:],
            finished_at=timezone.now(), log="\n".join(self.lines)[-LOG_LIMIT:], stage="failed",
        ):
            notifications.training_failed(self.run.pk)


def epoch_progress(reporter: RunReporter, label: str, start: float, span: float, epochs: int):
    def report(entry: dict) -> None:
        agreement = entry.get("val_pairwise_agreement")
        extra = f", validation agreement {agreement:.3f}" if agreement is not None else ""
        reporter.lines.append(f"  {label} epoch {entry['epoch']:.2f}: loss {entry['train_loss']:.4f}{extra}")
        reporter.progress(start + span * entry["epoch"] / max(epochs, 1))

    return report
