"""Explanations: attention weights, leave-one-tag-out against direct rescoring, the region heat map."""
from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.files.storage import default_storage
from PIL import Image as PILImage
from rest_framework.test import APIClient

from labeling.models import Image
from modeling.ml.training import score_images
from modeling.services import explanations
from tests.modeling.analysis_data import attach_weights, put_features, ranker, tag_images
from tests.modeling.dashboard_data import make_images, make_model_version


@pytest.fixture
def explained(project):
    """A wide image (96 x 48) with two tags and a caption, a tall one (40 x 100) without any text."""
    images = make_images(project, 2)
    Image.objects.filter(pk=images[0].pk).update(width=96, height=48, caption="a bird at dusk")
    Image.objects.filter(pk=images[1].pk).update(width=40, height=100)
    tag_images(project, {"bird": images[:1], "nature": images[:1]})
    version = make_model_version(project, images, [5, 6])
    model = ranker("tags", seed=1)
    attach_weights(version, model)
    features = put_features(version, images, ["bird", "nature", "a bird at dusk"], seed=2)
    images = [Image.objects.get(pk=i.pk) for i in images]
    return {"images": images, "version": version, "model": model, "features": features}


def test_tag_weights_are_finite_and_sum_to_one_and_leave_one_out_matches_rescoring(explained):
    image, model, features = explained["images"][0], explained["model"], explained["features"]
    result = explanations.explain(image, explained["version"])
    texts = [t["text"] for t in result["texts"]]
    assert texts == ["bird", "nature", "a bird at dusk"]  # tags (sorted), then the caption
    assert [t["kind"] for t in result["texts"]] == ["tag", "tag", "caption"]
    weights = np.array([t["attention"] for t in result["texts"]])
    assert np.all(np.isfinite(weights)) and weights.sum() == pytest.approx(1.0, abs=1e-5)

    tokens = features["tokens"][image.pk][None]
    embeddings = np.stack([features["texts"][t] for t in texts])
    full, _, _ = score_images(model, tokens, embeddings[None], np.ones((1, 3), bool))
    assert result["score"] == pytest.approx(float(full[0]), abs=1e-5)
    for k, entry in enumerate(result["texts"]):
        rest = np.delete(embeddings, k, axis=0)  # the text really removed, not masked
        without, _, _ = score_images(model, tokens, rest[None], np.ones((1, 2), bool))
        assert entry["score_without"] == pytest.approx(float(without[0]), abs=1e-5)
        assert entry["delta"] == pytest.approx(float(full[0] - without[0]), abs=1e-5)
    assert any(abs(t["delta"]) > 1e-4 for t in result["texts"])  # the texts do move this score
    grid = np.array(result["regions"]["deltas"])
    assert grid.shape == (2, 2) and np.all(np.isfinite(grid)) and np.abs(grid).max() > 0


def test_heat_map_keeps_the_aspect_ratio_and_an_untagged_image_gets_a_region_map(explained):
    wide, tall = explained["images"]
    version = explained["version"]
    for image, (w, h) in ((wide, (96, 48)), (tall, (40, 100))):
        png = PILImage.open(io.BytesIO(explanations.heat_map_png(image, version)))
        assert png.width / png.height == pytest.approx(w / h, rel=0.03)
    untagged = explanations.explain(tall, version)
    assert untagged["texts"] == []
    assert np.array(untagged["regions"]["deltas"]).shape == (2, 2)
    assert untagged["regions"]["crop"] == {"left": 0, "top": 30, "size": 40}


def test_explanations_are_cached_per_version(explained, manager):
    image, version = explained["images"][0], explained["version"]
    first = explanations.explain(image, version)
    assert default_storage.exists(f"explanations/v{version.pk}/{image.pk}.json")
    # A changed feature file does not change the cached explanation of this version.
    put_features(version, [image], [], seed=99)
    assert explanations.explain(image, version) == first
    assert explanations.explain(image, version, use_cache=False)["score"] != first["score"]

    client = APIClient()
    assert client.get(f"/api/v1/images/{image.pk}/explanation/").status_code == 401
    client.force_authenticate(manager)
    body = client.get(f"/api/v1/images/{image.pk}/explanation/").json()
    assert body["model_version"] == version.pk and len(body["texts"]) == 3
    png = client.get(f"/api/v1/images/{image.pk}/explanation.png")
    assert png.status_code == 200 and png["Content-Type"] == "image/png"
    assert client.get("/api/v1/images/999999/explanation/").status_code == 404


# --- Computed on the worker, never in the web tier -----------------------------------------------


@pytest.fixture
def no_model_in_the_web_tier(monkeypatch):
    """Any attempt to load a model or an encoder's features during a request fails the test; sends are recorded."""
    from django.core.cache import cache

    from modeling.services import feature_extraction as features
    from modeling.services import scoring
    import worker.dispatch as dispatch

    cache.clear()  # no "already queued" marks from other tests

    def forbidden(*args, **kwargs):
        raise AssertionError("a web request loaded a model")

    monkeypatch.setattr(scoring, "load_version_model", forbidden)
    monkeypatch.setattr(features, "feature_store", forbidden)
    monkeypatch.setattr(features, "extract_features", forbidden)
    sent = []
    monkeypatch.setattr(dispatch, "send_explain", lambda image_id, version_id: sent.append((image_id, version_id)))
    return sent


def test_an_explanation_not_cached_yet_is_queued_on_the_worker_with_a_url_to_poll(
    explained, manager, no_model_in_the_web_tier, monkeypatch
):
    image, version = explained["images"][0], explained["version"]
    client = APIClient()
    client.force_authenticate(manager)
    first = client.get(f"/api/v1/images/{image.pk}/explanation/")
    assert first.status_code == 202 and first.json()["code"] == "explanation_queued"
    assert first.json()["url"].endswith(f"/api/v1/images/{image.pk}/explanation/?version={version.pk}")
    assert first["Location"] == first.json()["url"]
    assert client.get(f"/api/v1/images/{image.pk}/explanation.png").status_code == 202
    assert client.get(first.json()["url"]).status_code == 202
    assert no_model_in_the_web_tier == [(image.pk, version.pk)]  # one message while the worker is on it

    # The worker's task computes and caches it; then the same URL answers 200 from the cache.
    monkeypatch.undo()
    from worker.tasks import explain_task

    done = explain_task(image.pk, version.pk)
    assert done["model_version"] == version.pk
    body = client.get(first.json()["url"])
    assert body.status_code == 200 and body.json()["score"] == pytest.approx(done["score"])
    assert client.get(f"/api/v1/images/{image.pk}/explanation.png")["Content-Type"] == "image/png"


def test_version_picks_only_the_projects_versions_and_raters_get_no_explanations(
    explained, manager, rater, no_model_in_the_web_tier
):
    from labeling.models import Project
    from tests.modeling.dashboard_data import make_model_version as other_version

    image = explained["images"][0]
    elsewhere = Project.objects.create(name="Elsewhere", slug="elsewhere")
    foreign = other_version(elsewhere, make_images(elsewhere, 1), [5])
    client = APIClient()
    client.force_authenticate(manager)
    assert client.get(f"/api/v1/images/{image.pk}/explanation/", {"version": foreign.pk}).status_code == 404
    assert client.get(f"/api/v1/images/{image.pk}/explanation/", {"version": 99999999}).status_code == 404
    client.force_authenticate(rater)  # an explanation reveals the score: raters judge blind
    assert client.get(f"/api/v1/images/{image.pk}/explanation/").status_code == 403
    assert client.get(f"/api/v1/images/{image.pk}/explanation.png").status_code == 403
    assert no_model_in_the_web_tier == []


def test_the_image_page_shows_a_cached_explanation_or_says_it_is_being_computed(
    client, explained, manager, no_model_in_the_web_tier
):
    image, version = explained["images"][0], explained["version"]
    client.force_login(manager)
    html = client.get(f"/images/{image.pk}/").content.decode()
    assert "being computed on a worker" in html and no_model_in_the_web_tier == [(image.pk, version.pk)]
    assert client.get(f"/images/{image.pk}/heat-map.png").status_code == 404  # not drawn yet


def test_send_explain_sends_the_task_to_the_gpu_queue(monkeypatch):
    import worker.dispatch as dispatch

    sent = []
    monkeypatch.setattr(dispatch, "send_after_commit", lambda signature, what: sent.append(signature))
    dispatch.send_explain(3, 7)
    assert sent[0].task == "tagrank.explanations.explain" and sent[0].args == (3, 7)
    assert sent[0].options["queue"] == "gpu"
