"""Beat's scheduler, touching a heartbeat file on every loop: the beat container's health check reads its age."""
from pathlib import Path

from celery.beat import PersistentScheduler
from django.conf import settings


class HeartbeatScheduler(PersistentScheduler):
    def tick(self, *args, **kwargs):
        path = Path(settings.TAGRANK_BEAT_HEARTBEAT_FILE)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        return super().tick(*args, **kwargs)
