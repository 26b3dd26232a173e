"""The dashboard of the seeded demo in Debian's Chromium (Playwright), against the real server (live_server)."""
from __future__ import annotations

import numpy as np
import pytest

from labeling.models import Image, Membership
from labeling.services import demo
from modeling.ml import agreement_stats
from modeling.services import agreement, human_scores
from tests.browser import OUTPUT, chromium_page, log_in, wait_until
from tests.modeling.dashboard_data import add_comparisons, make_model_version, member, user


@pytest.fixture
def demo_with_a_model(transactional_db, monkeypatch):
    """Three demo photos at their distortion ladders, rated by simulated raters, and a tiny-encoder model."""
    monkeypatch.setattr("worker.dispatch.send_images_imported", lambda project_id, image_ids: None)  # no feature extraction messages: the model is made here
    monkeypatch.setattr("worker.dispatch.send_metrics_refresh", lambda project_id: None)
    photos = dict(list(demo.DEMO_PHOTOS.items())[:3])
    result = demo.seed_demo(photos)
    project = result.project
    images = list(Image.objects.filter(project=project).order_by("id"))
    # The ladder's answer: quality falls with the distortion strength (0 = the original photo).
    quality = np.array([-float(image.metadata["distortion_strength"]) for image in images])
    rng = np.random.default_rng(7)
    raters = [user(f"sim-rater-{k}") for k in range(3)]
    for rater in raters:
        member(project, rater)
    hasty = user("hasty")
    member(project, hasty)
    rows = []
    for _ in range(150):
        i, j = rng.choice(len(images), size=2, replace=False)
        for rater in raters[: rng.integers(1, 4)]:  # one to three raters per pair
            better = quality[i] + rng.normal(0, 0.8) > quality[j] + rng.normal(0, 0.8)
            rows.append((images[i], images[j], "a" if better else "b", rater, int(rng.integers(1500, 6000)), False,
                         None, int(rng.integers(0, 5))))
    rows += [(images[k], images[k + 1], "a", hasty, 350) for k in range(25)]  # always left, very fast
    add_comparisons(project, rows)
    version = make_model_version(project, images, 7.0 + 1.2 * quality + rng.normal(0, 0.4, len(images)))
    human_scores.fit_human_scores(project)
    report = agreement.compute_and_store_report(project, n_resamples=300)
    return {"project": project, "credentials": result.credentials, "report": report, "version": version,
            "hasty": hasty}


@pytest.mark.browser
def test_dashboard_of_the_demo_renders_numbers_charts_and_galleries(live_server, demo_with_a_model):
    project = demo_with_a_model["project"]
    username, password = demo_with_a_model["credentials"]["manager"]
    data = demo_with_a_model["report"].data
    headline = data["model"]["versions"][0]
    compared = data["totals"]["compared_images"]
    hasty = demo_with_a_model["hasty"]

    with chromium_page() as page:
        log_in(page, live_server.url, username, password)
        page.goto(f"{live_server.url}/projects/{project.slug}/dashboard/")

        model_text = page.inner_text("#headline-model")
        alpha_text = page.inner_text("#headline-alpha")
        ceiling_text = page.inner_text("#headline-ceiling")
        encoder_text = page.inner_text("#encoder-in-view")
        banner = page.inner_text(".banner")
        charts = page.eval_on_selector_all("svg.chart", "nodes => nodes.map(n => n.dataset.chart)")
        scatter_links = page.locator("svg[data-chart=scatter] a[data-image-id]")
        n_points = scatter_links.count()
        version_points = page.locator("svg[data-chart=agreement-by-version] circle.point").count()
        bars = page.locator("svg[data-chart=model-histogram] rect.chart-bar").count()
        scatter_box = page.locator("svg[data-chart=scatter]").bounding_box()
        hasty_weight = page.inner_text(f"#rater-table tr[data-user-id='{hasty.pk}'] td.rater-weight")
        hasty_flags = page.inner_text(f"#rater-table tr[data-user-id='{hasty.pk}'] td:nth-child(8)")
        # The galleries' thumbnails load lazily: bring them into view, then every one must have loaded.
        page.locator("#disagreeing-pairs").scroll_into_view_if_needed()
        page.locator("#uncertain-images").scroll_into_view_if_needed()
        wait_until(page, "() => [...document.querySelectorAll('#uncertain-images img, #disagreeing-pairs img')]"
                         ".every(img => img.complete)")
        thumbnails_loaded = page.evaluate(
            "[...document.querySelectorAll('#uncertain-images img, #disagreeing-pairs img')]"
            ".every(img => img.complete && img.naturalWidth > 0)"
        )
        n_thumbnails = page.locator("#uncertain-images img").count()
        OUTPUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUTPUT / "dashboard.png"), full_page=True)

        # A scatter point opens its image.
        first_point = scatter_links.first
        image_id = int(first_point.get_attribute("data-image-id"))
        with page.context.expect_page() as opened:
            first_point.locator("circle").click(force=True)
        image_page = opened.value
        image_page.wait_for_load_state()
        opened_url = image_page.url
        image_page.close()

        # Excluding the flagged rater, then including them again.
        page.click(f"#rater-table tr[data-user-id='{hasty.pk}'] button")
        page.wait_for_selector(f"#rater-table tr[data-user-id='{hasty.pk}'] .pill-excluded")
        excluded_after_click = "Include again" in page.inner_text(f"#rater-table tr[data-user-id='{hasty.pk}']")

    assert set(charts) == {"agreement-by-version", "scatter", "model-histogram", "human-histogram",
                           "comparisons-per-day"}
    assert model_text.startswith(f'{headline["heldout_agreement"]["value"]:.3f}') and "[" in model_text
    assert alpha_text.startswith(f'{data["human"]["alpha"]["value"]:.3f}')
    assert ceiling_text.startswith(f'{headline["ceiling"]["human"]["value"]:.3f}')
    assert encoder_text == "tiny" and "cannot see content or aesthetics" in banner  # the configured encoder
    assert n_points == compared > 20 and version_points == 1 and bars > 5
    assert scatter_box["width"] > 300 and scatter_box["height"] > 100
    assert "Always one side" in hasty_flags and "Too fast" in hasty_flags
    hasty_row = next(row for row in data["raters"] if row["user_id"] == hasty.pk)
    assert hasty_weight == f'{hasty_row["weight"]:.2f}'  # the rater's weight in the human scores
    assert n_thumbnails == agreement_stats.GALLERY_SIZE and thumbnails_loaded
    image = Image.objects.get(pk=image_id)
    assert opened_url.endswith(image.file.url)
    assert excluded_after_click
    assert Membership.objects.get(project=project, user=hasty).excluded_from_training
