"""The model loop's trigger policy (when a project retrains), and its tasks and schedule."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from modeling.models import ModelVersion, TrainingRun
from modeling.services import triggers
from tests.modeling.model_loop_support import add_images, simulate_comparisons

pytestmark = pytest.mark.django_db


# --- The trigger policy -------------------------------------------------------------------------------


def test_trigger_fires_after_n_new_comparisons(project, rater, loop_images):
    project.retrain_min_new_comparisons = 30
    project.save()
    simulate_comparisons(project, rater, loop_images, 29)
    decision = triggers.evaluate(project)
    assert not decision.train and decision.new_comparisons == 29
    simulate_comparisons(project, rater, loop_images, 1, seed=1)
    decision = triggers.evaluate(project)
    assert decision.train and decision.trigger == TrainingRun.Trigger.NEW_COMPARISONS
    outcome = triggers.check_project(project, dispatch=False)
    assert outcome["created"] and TrainingRun.objects.get(pk=outcome["run"]).trigger == "new_comparisons"
    assert not triggers.evaluate(project).train  # a run is open now


def test_trigger_counts_from_the_latest_version_and_fires_on_max_age(project, rater, loop_images):
    project.retrain_min_new_comparisons = 50
    project.retrain_max_age_hours = 24
    project.save()
    comparisons = simulate_comparisons(project, rater, loop_images, 60)
    version = ModelVersion.objects.create(project=project, status=ModelVersion.Status.ACTIVE, is_active=True,
                                          encoder_id="tiny-v1", last_comparison_id=comparisons[-1].pk)
    assert not triggers.evaluate(project).train
    simulate_comparisons(project, rater, loop_images, 3, seed=2)
    assert not triggers.evaluate(project).train  # young model, 3 new < 50
    ModelVersion.objects.filter(pk=version.pk).update(created_at=timezone.now() - timedelta(hours=25))
    decision = triggers.evaluate(project)
    assert decision.train and decision.trigger == TrainingRun.Trigger.MAX_AGE and decision.new_comparisons == 3


def test_trigger_waits_after_a_failed_run_but_not_after_a_dead_worker(project, rater, loop_images, settings):
    settings.TAGRANK_TRAINING_FAILURE_COOLDOWN_SECONDS = 600
    project.retrain_min_new_comparisons = 10
    project.save()
    simulate_comparisons(project, rater, loop_images, 20)
    TrainingRun.objects.create(project=project, status=TrainingRun.Status.FAILED, finished_at=timezone.now(),
                               failure_kind=TrainingRun.Failure.ERROR)
    assert not triggers.evaluate(project).train
    TrainingRun.objects.create(project=project, status=TrainingRun.Status.FAILED, finished_at=timezone.now(),
                               failure_kind=TrainingRun.Failure.WORKER_LOST)
    assert triggers.evaluate(project).train


# --- Tasks and schedule ---------------------------------------------------------------------------


def test_model_loop_tasks_are_named_acked_late_limited_and_back_off_with_a_cap():
    from worker import app
    from worker.retry import RETRY_BACKOFF_MAX

    app.loader.import_default_modules()
    for name, queue in [("tagrank.features.extract", "gpu"), ("tagrank.features.sweep", "gpu"),
                        ("tagrank.training.train", "gpu"), ("tagrank.scoring.rescore", "gpu"),
                        ("tagrank.scoring.score_missing", "gpu"), ("tagrank.triggers.check", "default")]:
        task = app.tasks[name]
        assert task.acks_late and task.soft_time_limit < task.time_limit, name
        assert task.autoretry_for and task.retry_backoff and task.retry_backoff_max == RETRY_BACKOFF_MAX, name
        assert task.max_retries is not None, name
        route = app.amqp.router.route({}, name, args=(), kwargs={})
        assert route["queue"].name == queue, name


def test_beat_runs_the_trigger_every_minute_and_the_sweep_every_few_minutes():
    from worker import app

    schedule = {entry["task"]: entry["schedule"] for entry in app.conf.beat_schedule.values()}
    assert schedule["tagrank.triggers.check"] == 60.0
    assert 60.0 < schedule["tagrank.features.sweep"] <= 600.0


def test_importing_enqueues_feature_extraction_after_commit(project, image_bytes, monkeypatch, django_capture_on_commit_callbacks):
    import worker.dispatch as dispatch

    sent = []
    monkeypatch.setattr(dispatch, "send", lambda signature, what: sent.append((signature.task, signature.args)))
    images = add_images(project, 3, image_bytes)
    with django_capture_on_commit_callbacks(execute=True):
        dispatch.send_images_imported(project.pk, [i.pk for i in images])
        assert sent == []  # not before the import committed
    assert sent == [("tagrank.features.extract", (sorted(i.pk for i in images),))]


def test_an_unreachable_broker_never_breaks_an_import(project, image_bytes, monkeypatch):
    from kombu.exceptions import OperationalError

    import worker.dispatch as dispatch

    def down(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(dispatch.app, "send_task", down)
    images = add_images(project, 2, image_bytes)
    assert dispatch.send_feature_extraction(project.pk, [i.pk for i in images]) == 0  # the sweep will pick them up


def test_trigger_waits_for_a_quarter_more_comparisons_than_the_latest_version_saw(project, rater, loop_images):
    project.retrain_min_new_comparisons = 10
    project.save()
    comparisons = simulate_comparisons(project, rater, loop_images, 200)
    ModelVersion.objects.create(project=project, status=ModelVersion.Status.ACTIVE, is_active=True, encoder_id="tiny-v1",
                                last_comparison_id=comparisons[-1].pk, n_comparisons=200)
    simulate_comparisons(project, rater, loop_images, 49, seed=3)
    decision = triggers.evaluate(project)
    assert not decision.train and "50 needed" in decision.reason  # 25 % of 200, more than the minimum of 10
    simulate_comparisons(project, rater, loop_images, 1, seed=4)
    assert triggers.evaluate(project).train
