"""A purge exports everything a project holds (tags, raters, gold pairs, model versions with their metrics,
besides scores and comparisons) and then removes every file of it: originals, thumbnails, weights, cached
explanations and cached image features, leaving other projects' features alone."""
import csv
import json

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command

from labeling.models import GoldPair, ImageTag, Project
from labeling.services.comparisons import submit_comparison
from labeling.services.imports import store_image
from labeling.services.pair_serving import next_pair
from modeling.ml.features import FeatureStore
from modeling.models import ModelVersion


def rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.django_db
def test_purge_exports_everything_and_deletes_every_file(project, images, rater, manager, image_bytes,
                                                         tmp_path, isolated_media, settings,
                                                         django_capture_on_commit_callbacks):
    other_project = Project.objects.create(name="Other", slug="other", overlap=1)
    kept, _ = store_image(other_project, "kept.png", image_bytes(seed=99))
    _, lease = next_pair(project, rater)
    submit_comparison(project, rater, lease=lease.token, winner="a", client_key="k-1")
    GoldPair.objects.create(project=project, image_a=images[0], image_b=images[1], expected="a", note="obvious",
                            created_by=manager)
    version = ModelVersion.objects.create(project=project, encoder_id="tiny", status="active", is_active=True,
                                          metrics={"spearman": 0.71}, config={"epochs": 3},
                                          weights=f"models/{project.pk}/v1-run1.pt")
    default_storage.save(version.weights.name, ContentFile(b"weights"))
    explanation = default_storage.save(f"explanations/v{version.pk}/{images[0].pk}.json", ContentFile(b"{}"))
    # Features: one shard of this project alone, one shared with the other project's image, one older file.
    store = FeatureStore(settings.TAGRANK_FEATURES_DIR, "tiny")
    tokens = np.ones((2, 3, 4), dtype=np.float32)
    store.put_images([images[0].pk, images[1].pk], tokens)
    store.put_images([images[2].pk, kept.pk], tokens * 0.5)
    legacy = store._legacy_path(images[3].pk)
    legacy.parent.mkdir(parents=True, exist_ok=True)
    np.save(legacy, tokens[0])
    files = [isolated_media / name for image in images for name in (image.file.name, image.thumbnail.name)]
    files += [isolated_media / version.weights.name, isolated_media / explanation, legacy]
    assert all(path.exists() for path in files)
    tags_before = ImageTag.objects.filter(image__project=project).count()

    with django_capture_on_commit_callbacks(execute=True):
        call_command("purge_project", "test-project", "--confirm", "test-project", "--export-dir", str(tmp_path / "e"))

    export = tmp_path / "e"
    assert len(rows(export / "image-tags.csv")) == tags_before > 0
    gold = rows(export / "gold-pairs.csv")
    assert [(int(g["image_a"]), g["expected"], g["note"], g["created_by"]) for g in gold] == [
        (images[0].pk, "a", "obvious", "manager1")]
    versions = rows(export / "model-versions.csv")
    assert [(int(v["model_version"]), json.loads(v["metrics"]), json.loads(v["config"])) for v in versions] == [
        (version.pk, {"spearman": 0.71}, {"epochs": 3})]
    assert {r["rater"] for r in rows(export / "raters.csv")} == {"rater1", "manager1"}
    assert len(rows(export / "comparisons.csv")) == 1 and len(rows(export / "scores.csv")) == len(images)
    manifest = json.loads((export / "manifest.json").read_text())
    assert manifest["gold_pairs"] == 1 and manifest["model_versions"] == 1 and manifest["image_tags"] == tags_before

    assert not [path for path in files if path.exists()]  # originals, thumbnails, weights, explanation, features
    fresh = FeatureStore(settings.TAGRANK_FEATURES_DIR, "tiny")
    assert fresh.missing_images([image.pk for image in images]) == [image.pk for image in images]
    assert np.allclose(fresh.get_images([kept.pk])[0], 0.5, atol=1e-3)  # the other project's features stay
    assert (isolated_media / kept.file.name).exists()
