"""The whole model loop in one test, on the configured broker with a real worker process:
import images → features → comparisons through the API → the trigger → a trained and promoted
version → every image rescored → the scores export shows the new version."""
from __future__ import annotations

import json
import time

import pytest
from django.core.management import call_command

from labeling.models import Comparison, Image, PairCandidate
from modeling.models import (
    AgreementReport,
    HumanScore,
    ImageFeatures,
    ImageScore,
    ModelVersion,
    Promotion,
    TrainingRun,
)
from tests.modeling.loop_api import rate_through_api
from tests.modeling.model_loop_support import fast_training, wait_for
from worker.tasks import check_triggers_task

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

N_IMAGES = 16
N_COMPARISONS = 40


def write_folder(folder, make_bytes):
    folder.mkdir()
    rows = ["file,tags"]
    for index in range(N_IMAGES):
        (folder / f"photo_{index:02d}.png").write_bytes(make_bytes(seed=500 + index, size=(32, 32)))
        rows.append(f"photo_{index:02d}.png,{'sharp' if index % 2 else 'blurry'};set{index % 4}")
    (folder / "tags.csv").write_text("\n".join(rows) + "\n")
    return folder


def test_the_model_loop_from_import_to_export(live_worker, project, rater, manager, client, image_bytes, tmp_path):
    started = time.monotonic()
    project.retrain_min_new_comparisons = N_COMPARISONS
    project.save()
    fast_training(project)

    # 1. Import: the CLI's path, which enqueues feature extraction once the import committed.
    folder = write_folder(tmp_path / "photos", image_bytes)
    call_command("import_images", project.slug, str(folder), "--tags", str(folder / "tags.csv"))
    assert Image.objects.filter(project=project).count() == N_IMAGES

    # 2. The worker makes the features.
    wait_for(lambda: ImageFeatures.objects.filter(image__project=project).count() == N_IMAGES, 120,
             "features of every imported image", on_timeout=live_worker.log)

    # 3. A rater judges pairs through the API; the hidden quality follows the file name.
    quality = {image.pk: int(image.original_name[6:8]) for image in Image.objects.filter(project=project)}
    client.force_login(rater)
    rate_through_api(client, project, N_COMPARISONS, quality.__getitem__)
    assert Comparison.objects.filter(project=project, rater=rater).count() == N_COMPARISONS
    assert not TrainingRun.objects.exists()  # nothing trains until the trigger says so

    # 4. The beat task, through the broker to the worker: the policy says train.
    outcomes = check_triggers_task.delay().get(timeout=120)
    mine = next(o for o in outcomes if o["project"] == project.slug)
    assert mine["train"] and mine["trigger"] == "new_comparisons" and mine["created"], mine
    run_id = mine["run"]

    # 5. Trained, promoted (first version), 6. every image rescored, then switched in.
    def active_version():
        run = TrainingRun.objects.get(pk=run_id)
        assert run.status != TrainingRun.Status.FAILED, run.error
        return ModelVersion.objects.filter(project=project, is_active=True).first()

    version = wait_for(active_version, 240, "the new version to become active", on_timeout=live_worker.log)
    run = TrainingRun.objects.get(pk=run_id)
    assert run.status == TrainingRun.Status.SUCCEEDED and run.model_version == version and run.progress == 1.0
    assert version.status == ModelVersion.Status.ACTIVE and version.last_comparison_id == Comparison.objects.latest("pk").pk
    assert version.metrics["holdout"]["tags"]["n_images"] == N_IMAGES
    assert "image_only" in version.metrics["holdout"]
    assert Promotion.objects.get(to_version=version).completed_at is not None
    assert ImageScore.objects.filter(model_version=version).count() == N_IMAGES
    assert version.scoring_done == version.scoring_total == N_IMAGES

    # 7. The export shows the new version's scores for every image.
    client.force_login(manager)
    export = client.get(f"/api/v1/projects/{project.slug}/scores/", {"format": "jsonl"})
    assert export.status_code == 200 and export["X-Model-Version"] == str(version.pk)
    rows = [json.loads(line) for line in b"".join(export.streaming_content).decode().splitlines() if line]
    assert len(rows) == N_IMAGES
    stored = dict(ImageScore.objects.filter(model_version=version).values_list("image_id", "mean"))
    for row in rows:
        assert row["model_version"] == version.pk
        assert row["model_mean"] == pytest.approx(stored[row["image_id"]])

    # 8. The activation refreshed what depends on the active scores: human scores refitted with the new
    # model prior, an agreement report for the new version, and the pair queue refilled under it.
    wait_for(lambda: AgreementReport.objects.filter(project=project, model_version=version).exists(), 120,
             "the agreement report of the new version", on_timeout=live_worker.log)
    assert HumanScore.objects.filter(project=project).count() == N_IMAGES
    wait_for(lambda: PairCandidate.objects.filter(project=project).exclude(source="fallback").exists(), 120,
             "actively selected pairs in the queue", on_timeout=live_worker.log)

    # The next check sees nothing new: no second run.
    outcomes = check_triggers_task.delay().get(timeout=60)
    assert not next(o for o in outcomes if o["project"] == project.slug)["train"]
    print(f"\nmodel loop test: {time.monotonic() - started:.1f} s from import to export")


def test_the_sweep_catches_images_whose_message_was_lost(live_worker, project, manager, image_bytes):
    from datetime import timedelta

    from django.utils import timezone

    from modeling.services import promotion, scoring
    from tests.modeling.model_loop_support import add_images
    from tests.modeling.test_promotion_rollback import trained_version
    from worker.tasks import sweep_features_task

    version = trained_version(project)
    promotion.promote(version, user=manager, reason="serve", dispatch=False)
    assert scoring.rescore(version.pk)["activated"]  # no images yet: active at once
    # Stored without the import pipeline: as if the extraction message had been lost.
    lost = add_images(project, 3, image_bytes)
    Image.objects.filter(pk__in=[i.pk for i in lost]).update(created_at=timezone.now() - timedelta(minutes=10))
    summary = sweep_features_task.delay().get(timeout=60)
    assert summary["images_enqueued"] >= 3
    wait_for(lambda: ImageScore.objects.filter(model_version=version, image__in=lost).count() == 3, 120,
             "the swept images to get features and scores from the active version", on_timeout=live_worker.log)
    assert ImageFeatures.objects.filter(image__in=lost).count() == 3
