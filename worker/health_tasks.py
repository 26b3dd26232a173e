"""Beat's tick: sent every 30 s by beat, run by a `default` worker; /healthz/ reports its age."""
from celery import shared_task


@shared_task(name="tagrank.health.beat_tick", ignore_result=True, soft_time_limit=10, time_limit=20)
def beat_tick_task() -> None:
    from core.heartbeats import record_beat_tick

    record_beat_tick()
