"""The analyses' pages in Debian's Chromium (Playwright) against the real server, on a small seeded project."""
from __future__ import annotations

import numpy as np
import pytest

from labeling.models import Membership
from labeling.services.imports import store_image
from modeling.services import analyses, feature_extraction, human_scores, scoring
from tests.conftest import make_image_bytes
from tests.modeling.analysis_data import attach_weights, ranker
from tests.modeling.dashboard_data import add_comparisons, make_model_version, member, user
from tests.browser import OUTPUT, chromium_page, log_in, wait_until
from worker.tasks import explain_task


@pytest.fixture
def seeded(transactional_db, monkeypatch, project, make_user):
    """Twelve images at three blur strengths with tags, features from the configured encoder, a scored version."""
    monkeypatch.setattr("worker.dispatch.send_images_imported", lambda project_id, image_ids: None)
    images = []
    for index in range(12):
        blur = [0.0, 1.5, 3.0][index % 3]
        image, _ = store_image(project, f"photo_{index}.png", make_image_bytes(seed=index, size=(96, 64)),
                               tags=["bird" if index % 2 else "nature", "sky"] if index < 10 else [],
                               caption="a photo outdoors" if index % 4 == 0 else "",
                               metadata={"blur_sigma": blur, "photo": f"p{index}"})
        images.append(image)
    feature_extraction.extract_features([image.pk for image in images])
    version = make_model_version(project, [], [], encoder_id=feature_extraction.encoder_id_for())
    dim = feature_extraction.current_encoder().dim
    attach_weights(version, ranker("tags", seed=4, dim=dim), ranker("image_only", seed=5, dim=dim))
    scoring.score_and_store(version, [image.pk for image in images])
    raters = [user(f"sim-{k}") for k in range(2)]
    for rater in raters:
        member(project, rater)
    quality = {image.pk: -image.metadata["blur_sigma"] for image in images}
    rng = np.random.default_rng(3)
    rows = []
    for _ in range(120):
        a, b = rng.choice(len(images), size=2, replace=False)
        better = quality[images[a].pk] + rng.normal(0, 0.5) > quality[images[b].pk] + rng.normal(0, 0.5)
        rows.append((images[a], images[b], "a" if better else "b", raters[int(rng.integers(2))], 2000))
    add_comparisons(project, rows)
    human_scores.fit_human_scores(project)
    manager = make_user("analyst", password="pw-for-tests-1")
    Membership.objects.create(project=project, user=manager, role=Membership.Role.MANAGER)
    return {"project": project, "images": images, "version": version}


@pytest.mark.browser
def test_tag_and_metadata_panels_and_an_explanation_page(live_server, seeded):
    project, image = seeded["project"], seeded["images"][1]
    OUTPUT.mkdir(exist_ok=True)
    with chromium_page() as page:
        log_in(page, live_server.url, "analyst", "pw-for-tests-1")

        page.goto(f"{live_server.url}/projects/{project.slug}/analyses/tags/")
        headers = page.eval_on_selector_all("#tag-table th", "ths => ths.map(th => th.textContent)")
        tags = page.eval_on_selector_all("#tag-table tbody tr", "rows => rows.map(r => r.dataset.tag)")
        page.click("#tag-table th:nth-child(4)")  # Ours, ascending
        ours = page.eval_on_selector_all("#tag-table tbody tr td:nth-child(4)",
                                         "cells => cells.map(c => parseFloat(c.dataset.value))")
        page.screenshot(path=str(OUTPUT / "analysis-tags.png"), full_page=True)
        csv_href = page.get_attribute("#tags-csv", "href")
        csv_text = page.evaluate("href => fetch(href).then(r => r.text())", csv_href)

        page.goto(f"{live_server.url}/projects/{project.slug}/analyses/metadata/?field=blur_sigma")
        plot_points = page.locator("#metadata-plot svg[data-chart=metadata] circle.point").count()
        metadata_rows = page.locator("#metadata-table tbody tr").count()
        page.screenshot(path=str(OUTPUT / "analysis-metadata.png"), full_page=True)
        page.check("input[name=by_tag]")  # sends the form itself (static/js/auto_submit.js, under the CSP)
        page.wait_for_url("**by_tag=1**")

        page.goto(f"{live_server.url}/images/{image.pk}/")
        queued = page.locator("#no-explanation").text_content()

    explain_task(image.pk, seeded["version"].pk)  # what the worker does with the page's request (no DB in Playwright's loop)
    with chromium_page() as page:
        log_in(page, live_server.url, "analyst", "pw-for-tests-1")
        page.goto(f"{live_server.url}/images/{image.pk}/")
        wait_until(page, "() => document.querySelector('#heat-map').complete")
        heat = page.evaluate("(() => { const i = document.querySelector('#heat-map');"
                             " return [i.naturalWidth, i.naturalHeight]; })()")
        weights = page.locator("#tag-weights tbody tr").count()
        page.screenshot(path=str(OUTPUT / "analysis-image.png"), full_page=True)

    assert "being computed on a worker" in queued
    assert headers[:5] == ["TextTag", "Images", "Baseline", "Ours", "Human"]
    assert set(tags) == {"bird", "nature", "sky"}
    assert ours == sorted(ours)
    assert csv_text.startswith("tag,images,ours") and len(csv_text.strip().splitlines()) == 4
    summary = analyses.metadata_summary(project, "blur_sigma")  # one mark per group and series with a mean
    assert plot_points == sum(group[key]["value"] is not None for group in summary["groups"]
                              for key in ("model", "human", "clip_similarity")) >= 6
    assert metadata_rows == 3
    assert heat[0] > 0 and heat[0] / heat[1] == pytest.approx(96 / 64, rel=0.03)
    assert weights == 2  # image 1: its tags bird and sky
