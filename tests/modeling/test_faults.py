"""Faults, each with a real worker process: a worker killed mid-training, the broker unreachable
while raters submit, a corrupt weights file, and two triggers at once."""
from __future__ import annotations

import json
import threading

import pytest
from django.db import connection
from kombu.exceptions import OperationalError as BrokerUnreachable

from labeling.models import Comparison
from modeling.models import ImageScore, ModelVersion, TrainingRun
from modeling.services import promotion, triggers
from modeling.services import training_runs as training_service
from tests.conftest import WorkerProcess
from tests.modeling.loop_api import rate_through_api
from tests.modeling.model_loop_support import (
    add_images,
    fast_training,
    latent_quality,
    simulate_comparisons,
    wait_for,
)
from worker.tasks import check_triggers_task, extract_features_task, train_task

pytestmark = pytest.mark.django_db(transaction=True)


def serving_version(project, images):
    """An active version with a score for every image, written directly: what the export serves now."""
    version = ModelVersion.objects.create(
        project=project, status=ModelVersion.Status.ACTIVE, is_active=True, encoder_id="tiny-v1",
        metrics={"pairwise_agreement": 0.5, "holdout": {"tags": {"pairwise_agreement": 0.5}}},
    )
    ImageScore.objects.bulk_create(
        ImageScore(model_version=version, image=image, mean=5.0, distribution=[0.1] * 10, uncertainty=0.1)
        for image in images
    )
    return version


def exported_versions(client, project) -> set:
    response = client.get(f"/api/v1/projects/{project.slug}/scores/", {"format": "jsonl"})
    assert response.status_code == 200
    lines = b"".join(response.streaming_content).decode().splitlines()
    return {json.loads(line)["model_version"] for line in lines if line}


@pytest.mark.worker
def test_a_worker_killed_mid_training_fails_the_run_and_the_next_trigger_trains(
    live_worker, project, rater, image_bytes, media_root, tmp_path, settings
):
    images = add_images(project, 12, image_bytes)
    old = serving_version(project, images)
    simulate_comparisons(project, rater, images, 200)
    project.retrain_min_new_comparisons = 50
    project.save()
    # Slow on purpose: many small steps and no early stop, so the kill lands mid-training.
    fast_training(project, hyperparameters={"epochs": 2000, "patience": 2000, "batch_pairs": 4},
                  promotion_tolerance=1.0, train_baseline=False)
    # Features first, by the session's worker (its encoder is loaded): the doomed one only trains.
    extract_features_task.delay([i.pk for i in images]).get(timeout=120)

    doomed = WorkerProcess(media_root, tmp_path / "doomed.log", queues="faults")
    doomed.start()
    try:
        run, created = training_service.request_training(project, dispatch=False)
        train_task.apply_async(args=[run.pk], queue="faults")  # only the doomed worker takes it
        wait_for(
            lambda: TrainingRun.objects.filter(pk=run.pk, stage="training the tags model", progress__gt=0.15).exists(),
            180, "the doomed worker to be training", on_timeout=doomed.log,
        )
        doomed.kill()
    finally:
        doomed.stop()
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.RUNNING  # nobody told the database yet
    old.refresh_from_db()
    assert old.is_active and ImageScore.objects.filter(model_version=old).count() == 12

    # The trigger check notices the silence and frees the project; the same check starts the next run.
    settings.TAGRANK_TRAINING_STALE_SECONDS = 2
    fast_training(project, promotion_tolerance=1.0, train_baseline=False)  # about the fault, not the comparison
    wait_for(lambda: training_service.fail_dead_runs(project) or None, 30, "the dead run to be noticed")
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.FAILED and run.failure_kind == TrainingRun.Failure.WORKER_LOST
    assert not ModelVersion.objects.exclude(pk=old.pk).exists()  # nothing half-trained was stored
    old.refresh_from_db()
    assert old.is_active

    outcome = triggers.check_project(project)
    assert outcome["train"] and outcome["created"] and outcome["run"] != run.pk
    new = wait_for(lambda: ModelVersion.objects.filter(project=project, is_active=True).exclude(pk=old.pk).first(),
                   240, "the next run's version to become active", on_timeout=live_worker.log)
    assert TrainingRun.objects.get(pk=outcome["run"]).status == TrainingRun.Status.SUCCEEDED
    old.refresh_from_db()
    assert old.status == ModelVersion.Status.RETIRED
    assert ImageScore.objects.filter(model_version=new).count() == 12


@pytest.mark.worker
def test_broker_down_while_raters_submit_then_the_trigger_catches_up(
    live_worker, project, rater, manager, client, image_bytes, monkeypatch
):
    images = add_images(project, 12, image_bytes)
    project.retrain_min_new_comparisons = 30
    project.save()
    fast_training(project, train_baseline=False)
    quality = latent_quality(images)

    from kombu.messaging import Producer

    real_publish = Producer.publish

    def unreachable(*args, **kwargs):
        raise BrokerUnreachable("[Errno 111] Connection refused (simulated broker outage)")

    monkeypatch.setattr(Producer, "publish", unreachable)
    client.force_login(rater)
    answers = rate_through_api(client, project, 30, quality.__getitem__)  # every one answered 201
    assert Comparison.objects.filter(project=project).count() == 30
    assert {a["id"] for a in answers} == set(Comparison.objects.values_list("pk", flat=True))
    # A trigger check during the outage queues the run in the database; its message cannot leave.
    outcome = triggers.check_project(project)
    assert outcome["created"]
    run = TrainingRun.objects.get(pk=outcome["run"])
    assert run.status == TrainingRun.Status.QUEUED and run.dispatched_at is None

    monkeypatch.setattr(Producer, "publish", real_publish)  # the broker is back
    check_triggers_task.delay().get(timeout=120)  # the next beat: the queued run is re-sent
    version = wait_for(lambda: ModelVersion.objects.filter(project=project, is_active=True).first(), 240,
                       "the caught-up version to become active", on_timeout=live_worker.log)
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.SUCCEEDED and run.model_version == version
    assert version.last_comparison_id == max(a["id"] for a in answers)  # trained on the outage's judgments
    client.force_login(manager)
    assert exported_versions(client, project) == {version.pk}


@pytest.mark.worker
def test_corrupt_weights_fail_the_version_and_the_active_one_keeps_serving(
    live_worker, project, manager, client, images
):
    from django.core.files.base import ContentFile

    old = serving_version(project, images)
    broken = ModelVersion.objects.create(project=project, status=ModelVersion.Status.CANDIDATE, encoder_id="tiny-v1")
    broken.weights.save("broken.pt", ContentFile(b"PK\x03\x04 this is not a checkpoint" * 50))
    promotion.promote(broken, user=manager, reason="try the new one")  # the worker rescores it
    wait_for(lambda: ModelVersion.objects.filter(pk=broken.pk, status=ModelVersion.Status.FAILED).exists(), 120,
             "the broken version to be marked failed", on_timeout=live_worker.log)
    broken.refresh_from_db(), old.refresh_from_db()
    assert "weights file is unreadable" in broken.status_reason
    assert old.is_active and old.status == ModelVersion.Status.ACTIVE
    client.force_login(manager)
    assert exported_versions(client, project) == {old.pk}
    page = client.get(f"/projects/{project.slug}/models/").content.decode()
    assert f"Model version {broken.pk}" in page and "weights file is unreadable" in page


def test_two_triggers_at_once_start_one_training(project, rater, image_bytes):
    images = add_images(project, 6, image_bytes)
    simulate_comparisons(project, rater, images, 20)
    project.retrain_min_new_comparisons = 10
    project.save()
    barrier = threading.Barrier(4)
    outcomes, errors = [], []

    def trigger(kind):
        try:
            barrier.wait(timeout=30)
            if kind == "beat":
                outcomes.append(triggers.check_project(project, dispatch=False))
            else:  # a manager pressing "retrain now" at the same moment
                run, created = training_service.request_training(project, dispatch=False)
                outcomes.append({"run": run.pk, "created": created})
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=trigger, args=(kind,)) for kind in ("beat", "beat", "manual", "manual")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert TrainingRun.objects.filter(project=project).count() == 1
    run = TrainingRun.objects.get(project=project)
    assert {o["run"] for o in outcomes if "run" in o} == {run.pk}
    assert sum(1 for o in outcomes if o.get("created")) == 1
