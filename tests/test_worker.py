"""A round trip through the configured broker (Redis in CI, the filesystem transport by default) and a real worker."""
import pytest

from worker import app
from worker.tasks import ping


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_celery_round_trip_through_a_real_worker(live_worker):
    result = ping.delay("hello")
    answer = result.get(timeout=30)
    assert answer["payload"] == "hello"
    assert answer["pid"] == live_worker.process.pid  # it ran in the worker, not in this process


def test_every_task_has_an_explicit_name_and_a_queue():
    app.loader.import_default_modules()
    ours = {name: task for name, task in app.tasks.items() if not name.startswith("celery.")}
    assert "tagrank.ping" in ours
    for name, task in ours.items():
        assert name.startswith("tagrank."), f"task {name} has no explicit tagrank.* name"
        assert task.acks_late, f"task {name} must use acks_late"
        assert task.time_limit, f"task {name} must declare a time limit"
    queues = {queue.name for queue in app.conf.task_queues}
    assert queues == {"default", "gpu"}
