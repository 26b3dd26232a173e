"""The rating page in Debian's Chromium, driven by Playwright against the real server (live_server)."""
from __future__ import annotations

import pytest

from labeling.models import Comparison, ImageTag, Membership, PairLease, Project
from tests import browser
from tests.browser import OUTPUT, chromium_page, wait_until

PASSWORD = "browser-pw-123"


@pytest.fixture
def browser_project(transactional_db, make_user, image_bytes):
    from labeling.services.imports import store_image

    project = Project.objects.create(name="Browser project", slug="browser", overlap=1, allow_ties=True)
    for index in range(8):  # 28 distinct pairs: enough for 10 judgments and the prefetch
        store_image(project, f"photo_{index}.png", image_bytes(seed=100 + index, size=(96, 64)), tags=["landscape"])
    rater = make_user("browser-rater", password=PASSWORD)
    Membership.objects.create(project=project, user=rater, role=Membership.Role.RATER)
    return project, rater


def log_in(page, base_url: str, username: str) -> None:
    browser.log_in(page, base_url, username, PASSWORD)


def shown_lease(page) -> str:
    return page.get_attribute("#rater", "data-lease") or ""


@pytest.mark.browser
def test_rater_judges_ten_pairs_with_the_keyboard_and_adds_a_tag(live_server, browser_project):
    project, rater = browser_project
    question = project.question
    keys = ["ArrowLeft", "ArrowRight", "a", "l", "ArrowLeft", "ArrowRight", "a", "l", "ArrowLeft", "ArrowRight"]
    seen = []
    with chromium_page() as page:
        log_in(page, live_server.url, rater.username)
        page.goto(f"{live_server.url}/projects/{project.slug}/rate/")
        page.wait_for_selector("#pair:not([hidden])")
        assert page.inner_text("#question") == question
        for key in keys:
            wait_until(page, "() => document.querySelector('#rater').dataset.lease && !document.querySelector('#pair').hidden")
            lease = shown_lease(page)
            assert lease not in seen, "the same pair was shown twice"
            seen.append(lease)
            page.keyboard.press(key)
            wait_until(page, "lease => document.querySelector('#rater').dataset.lease !== lease", lease)

        # A tag on the left image of the pair now on screen, typed and sent with Enter.
        page.wait_for_selector("#pair:not([hidden])")
        page.fill("#tag-input-a", "Sharp Focus")
        page.press("#tag-input-a", "Enter")
        page.wait_for_selector("#tags-a li:has-text('sharp focus')")
        tagged_image_id = int(page.evaluate("document.querySelector('#rater').dataset.imageA"))

        page.wait_for_selector("#pending", state="hidden")  # every judgment acknowledged
        session_count = page.inner_text("#session-count")
        OUTPUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUTPUT / "rating-page.png"), full_page=True)

    assert session_count == "10"
    comparisons = Comparison.objects.filter(project=project, rater=rater)
    assert comparisons.count() == 10
    assert comparisons.filter(response_ms__isnull=False).count() == 10
    outcomes = list(comparisons.order_by("id").values_list("outcome", flat=True))
    assert outcomes == ["a", "b"] * 5  # left keys and right keys alternate, as pressed
    judged_leases = PairLease.objects.filter(comparison__in=comparisons).values_list("token", flat=True)
    assert {str(token) for token in judged_leases} == set(seen)
    tag = ImageTag.objects.get(image_id=tagged_image_id, tag__name="sharp focus")
    assert tag.source == ImageTag.Source.RATER and tag.rater == rater


@pytest.mark.browser
def test_phone_width_shows_both_images_and_the_empty_message(live_server, browser_project):
    project, rater = browser_project
    with chromium_page(width=375, height=740) as page:
        log_in(page, live_server.url, rater.username)
        page.goto(f"{live_server.url}/projects/{project.slug}/rate/")
        page.wait_for_selector("#pair:not([hidden])")
        left, right = page.locator("#side-a").bounding_box(), page.locator("#side-b").bounding_box()
        assert left["x"] + left["width"] <= right["x"] + 1  # side by side
        assert right["x"] + right["width"] <= 375 + 1  # both on screen
        assert page.evaluate("document.documentElement.scrollWidth") <= 375  # no sideways scrolling

        # Judge with the buttons until nothing is left: 28 pairs, then the "nothing to rate" message.
        for _ in range(28):
            wait_until(page, "() => document.querySelector('#rater').dataset.lease && !document.querySelector('#pair').hidden")
            lease = shown_lease(page)
            page.click("#side-b .choose")
            wait_until(page, "lease => document.querySelector('#rater').dataset.lease !== lease", lease)
        page.wait_for_selector("#empty:not([hidden])")
        empty_text = page.inner_text("#empty")
        page.wait_for_selector("#pending", state="hidden")
        OUTPUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUTPUT / "rating-page-phone-empty.png"))
    assert "Nothing to rate" in empty_text
    assert Comparison.objects.filter(project=project, rater=rater).count() == 28


@pytest.mark.browser
def test_judgments_answered_503_stay_queued_across_a_reload_and_are_resent_with_their_keys(live_server,
                                                                                         browser_project):
    """While the server answers 503 (as it does when its database is down), judgments wait in localStorage;
    a reload keeps them; once the server is back they are stored, each under the key first sent."""
    import json

    project, rater = browser_project
    refused_keys: list[str] = []

    def outage(route):
        if route.request.method != "POST":
            return route.continue_()
        refused_keys.append(json.loads(route.request.post_data)["client_key"])
        route.fulfill(status=503, headers={"Retry-After": "1", "Content-Type": "application/json"},
                      body=json.dumps({"detail": "Try again in a few seconds.", "code": "service_unavailable"}))

    with chromium_page() as page:
        log_in(page, live_server.url, rater.username)
        page.goto(f"{live_server.url}/projects/{project.slug}/rate/")
        page.route("**/comparisons/", outage)
        for _ in range(2):
            wait_until(page, "() => document.querySelector('#rater').dataset.lease && !document.querySelector('#pair').hidden")
            lease = shown_lease(page)
            page.keyboard.press("ArrowLeft")
            wait_until(page, "lease => document.querySelector('#rater').dataset.lease !== lease", lease)
        page.wait_for_selector("#pending:not([hidden])")
        page.wait_for_timeout(1500)  # let a retry or two be refused
        page.reload()  # the queue survives in localStorage
        page.wait_for_selector("#pending:not([hidden])")
        assert "2 waiting" in page.inner_text("#pending")
        refused_before_reload = set(refused_keys)
        page.unroute("**/comparisons/")
        page.wait_for_selector("#pending", state="hidden", timeout=60000)

    stored = set(Comparison.objects.filter(rater=rater).values_list("client_key", flat=True))
    assert len(refused_keys) >= 2 and refused_before_reload  # refused, retried, and again after the reload
    assert len(stored) == 2 and set(refused_keys) <= stored  # stored under the key that was refused, once


@pytest.mark.browser
def test_a_complete_campaign_thanks_the_rater_without_a_score_or_setting(live_server, browser_project):
    """The model loop's stopping rule sets the flag; the page says the campaign is complete, nothing more."""
    from django.utils import timezone

    project, rater = browser_project
    Project.objects.filter(pk=project.pk).update(campaign_completed_at=timezone.now())
    with chromium_page() as page:
        log_in(page, live_server.url, rater.username)
        page.goto(f"{live_server.url}/projects/{project.slug}/rate/")
        page.wait_for_selector("#complete:not([hidden])")
        text = page.inner_text("#complete")
        assert page.locator("#empty").is_hidden() and page.locator("#pair").is_hidden()
    assert "This campaign is complete" in text
    assert not any(character.isdigit() for character in text)  # no expected accuracy, no target
