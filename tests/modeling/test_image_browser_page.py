"""The image browser in Debian's Chromium (Playwright): filter, sort, page, open an image's comparisons."""
from __future__ import annotations

import pytest

from labeling.models import Comparison, Membership
from labeling.services.imports import store_image
from modeling.models import ImageScore, ModelVersion
from tests.browser import OUTPUT, chromium_page, log_in
from tests.conftest import make_image_bytes


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_filter_sort_page_and_open_an_image(live_server, project, make_user, monkeypatch):
    monkeypatch.setattr("worker.dispatch.send_images_imported", lambda project_id, image_ids: None)
    manager = make_user("browser", password="pw-for-tests-1")
    Membership.objects.create(project=project, user=manager, role=Membership.Role.MANAGER)
    version = ModelVersion.objects.create(project=project, encoder_id="tiny", is_active=True, status="active")
    images = []
    for index in range(110):
        image, _ = store_image(project, f"shot_{index:02d}.png", make_image_bytes(seed=500 + index, size=(32, 24)),
                               tags=["portrait" if index % 2 else "landscape"], metadata={"cfg": index % 4})
        ImageScore.objects.create(model_version=version, image=image, mean=1 + index * 0.08, distribution=[0.1] * 10)
        images.append(image)
    for other in images[1:4]:
        Comparison.objects.create(project=project, image_a=other, image_b=images[109], outcome="b", rater=manager,
                                  client_key=f"c{other.pk}")
    portrait_by_score = [image.pk for image in reversed(images) if images.index(image) % 2]
    OUTPUT.mkdir(exist_ok=True)
    with chromium_page() as page:
        log_in(page, live_server.url, "browser", "pw-for-tests-1")
        page.goto(f"{live_server.url}/projects/{project.slug}/")
        page.click("nav.manage-nav a[href$='/browse/']")
        page.fill("#id_tag", "portrait")
        page.select_option("#id_sort", "-score")
        page.click("#browse-form button[type=submit]")
        page.wait_for_selector("#browse-results")
        first_page = page.eval_on_selector_all("#browse-results li", "items => items.map(i => +i.dataset.imageId)")
        page.click("#browse-next")
        page.wait_for_selector("#browse-results")
        second_page = page.eval_on_selector_all("#browse-results li", "items => items.map(i => +i.dataset.imageId)")
        has_next = page.query_selector("#browse-next") is not None
        page.click(f'#browse-results li[data-image-id="{portrait_by_score[-1]}"] a')
        page.wait_for_selector("#comparisons-title")
        page.goto(f"{live_server.url}/projects/{project.slug}/browse/{images[109].pk}/")
        rows = page.eval_on_selector_all("#image-comparisons tbody tr", "rows => rows.map(r => r.innerText)")
        page.screenshot(path=str(OUTPUT / "image-browser-image.png"), full_page=True)
    assert first_page + second_page == portrait_by_score and len(first_page) == 48 and not has_next
    assert len(rows) == 3 and all("won" in row for row in rows)
