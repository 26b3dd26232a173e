"""A round trip through the configured broker (Redis in CI, the filesystem transport by default) and a real worker."""
import os

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


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_worker_runs_below_the_web_in_cpu_priority(live_worker, settings):
    """Batch work yields the CPU to requests on a shared host: the worker lowered its priority at start."""
    assert ping.delay("ready").get(timeout=30)["pid"] == live_worker.process.pid  # started and serving
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    expected = min(19, ours + settings.TAGRANK_WORKER_NICE)
    assert settings.TAGRANK_WORKER_NICE > 0 and os.getpriority(os.PRIO_PROCESS, live_worker.process.pid) == expected


def test_a_worker_nice_of_zero_leaves_the_priority_alone(monkeypatch, settings):
    from worker.app import lower_cpu_priority

    calls = []
    monkeypatch.setattr("os.nice", calls.append)
    settings.TAGRANK_WORKER_NICE = 0
    lower_cpu_priority()
    settings.TAGRANK_WORKER_NICE = 7
    lower_cpu_priority()
    assert calls == [7]


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


@pytest.mark.django_db
def test_every_intent_sends_a_registered_task_by_name_to_its_queue(monkeypatch, django_capture_on_commit_callbacks):
    """The intents name tasks as strings (no import of the task modules): each name must be a task."""
    import worker.dispatch as dispatch

    monkeypatch.undo()  # the real intents, not the no-ops of tests/conftest.py: `send` records instead
    sent = []

    def record(signature, what):
        for part in getattr(signature, "tasks", None) or [signature]:  # a chain's links, or the task itself
            sent.append((part.task, tuple(part.args), dict(part.kwargs)))
        return True

    monkeypatch.setattr(dispatch, "send", record)
    assert dispatch.send_feature_extraction(1, range(dispatch.EXTRACTION_BATCH + 1)) == 2  # two batches
    assert dispatch.send_training_run(2) and dispatch.send_rescore(3) and dispatch.send_score_missing(4)
    with django_capture_on_commit_callbacks(execute=True):
        dispatch.send_rescore_after_commit(3)
        dispatch.send_activation_refresh(5)
        dispatch.send_images_imported(6, [])  # nothing imported: nothing sent
        assert len(sent) == 5  # the rest waits for the commit
    assert [name for name, _, _ in sent] == [
        "tagrank.features.extract", "tagrank.features.extract", "tagrank.training.train", "tagrank.scoring.rescore",
        "tagrank.scoring.score_missing", "tagrank.scoring.rescore", "tagrank.metrics.fit_human_scores",
        "tagrank.metrics.compute_agreement", "tagrank.selection.refill",
    ]
    assert sent[1][1] == ([dispatch.EXTRACTION_BATCH],) and sent[-1][1:] == ((5,), {"force": True})
    app.loader.import_default_modules()
    expected_queue = {"features": "gpu", "training": "gpu", "scoring": "gpu", "metrics": "default", "selection": "default"}
    for name, _, _ in sent:
        assert name in app.tasks, f"{name} is not a registered task"
        assert app.amqp.router.route({}, name)["queue"].name == expected_queue[name.split(".")[1]], name
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        dispatch.send_warm_start_scoring(7)
        assert sent == []  # after the commit
    assert sent == [("tagrank.scoring.warm_start", (7,), {})]
    assert "tagrank.scoring.warm_start" in app.tasks
    assert app.amqp.router.route({}, "tagrank.scoring.warm_start")["queue"].name == "gpu"


@pytest.mark.django_db
def test_a_broker_that_is_down_never_fails_the_sender(monkeypatch, django_capture_on_commit_callbacks):
    from kombu.exceptions import OperationalError

    import worker.dispatch as dispatch

    def down(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.undo()  # the real intents, not the no-ops of tests/conftest.py
    monkeypatch.setattr(dispatch.app, "send_task", down)
    assert dispatch.send_training_run(1) is False
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        dispatch.send_activation_refresh(1)  # logged, not raised
    assert len(callbacks) == 2
