"""A text-to-image evaluation end to end in Chromium, on the second demo project: a rater judges with the
prompt shown, within prompts (one answer "both bad"); the manager reads the generator leaderboard and
downloads the preference pairs."""
from __future__ import annotations

import json

import pytest

from labeling.models import Comparison, Image, Project
from labeling.services import generator_demo
from tests import browser
from tests.browser import OUTPUT, chromium_page, wait_until

SCENES = generator_demo.SCENES[:4]  # 4 prompts x 3 generators: 12 pairs within prompts


@pytest.fixture
def generator_project(transactional_db, monkeypatch):
    monkeypatch.setattr(generator_demo, "SCENES", SCENES)
    project = generator_demo.seed_generator_demo().project
    images = {image.pk: image for image in Image.objects.filter(project=project)}
    return project, images


def wait_for_pair(page) -> None:
    wait_until(page, "() => document.querySelector('#rater').dataset.lease && !document.querySelector('#pair').hidden")


@pytest.mark.browser
def test_rating_with_the_prompt_within_prompts_then_the_leaderboard_and_the_preference_pairs(
    live_server, generator_project
):
    project, images = generator_project
    strength = {pk: image.metadata["generator_strength"] for pk, image in images.items()}
    shown = []  # (left id, right id, the prompt on screen)
    with chromium_page() as page:
        browser.log_in(page, live_server.url, "rater", "tagrank-rater")
        page.goto(f"{live_server.url}/projects/{project.slug}/rate/")
        for index in range(12):
            wait_for_pair(page)
            page.wait_for_selector("#prompt:not([hidden])")
            lease = page.get_attribute("#rater", "data-lease")
            left = int(page.get_attribute("#rater", "data-image-a"))
            right = int(page.get_attribute("#rater", "data-image-b"))
            shown.append((left, right, page.inner_text("#prompt-text")))
            if index == 0:
                page.keyboard.press("b")  # both bad
            else:
                page.keyboard.press("ArrowLeft" if strength[left] > strength[right] else "ArrowRight")
            wait_until(page, "lease => document.querySelector('#rater').dataset.lease !== lease", lease)
        page.wait_for_selector("#empty:not([hidden])")  # every pair within a prompt was judged
        page.wait_for_selector("#pending", state="hidden")
        rate_page = page.content()
        OUTPUT.mkdir(exist_ok=True)

        # The manager: the leaderboard page, then the preference pairs from its download link.
        page.context.clear_cookies()
        browser.log_in(page, live_server.url, "manager", "tagrank-manager")
        page.goto(f"{live_server.url}/projects/{project.slug}/leaderboard/?field=generator")
        page.wait_for_selector("#leaderboard-table")
        board = page.eval_on_selector_all(
            "#leaderboard-table tbody tr",
            "rows => rows.map(r => [r.dataset.value, r.cells[0].innerText.trim(), r.cells[4].innerText.trim()])",
        )
        page.screenshot(path=str(OUTPUT / "generator-leaderboard.png"), full_page=True)
        with page.expect_download() as download_info:
            page.click("#preferences-download")
        preferences = [json.loads(line) for line in open(download_info.value.path()).read().splitlines() if line]

    # The rater saw each image's own prompt, both images from the same prompt, and nothing else.
    for left, right, prompt in shown:
        assert images[left].metadata["prompt_id"] == images[right].metadata["prompt_id"]
        assert prompt == images[left].caption
    for hidden in ("crisp-xl", "murky-v2", "glitch-1b", "prompt_id", "generator_strength", "p01/"):
        assert hidden not in rate_page
    comparisons = Comparison.objects.filter(project=project)
    assert comparisons.count() == 12 and comparisons.filter(outcome="bad").count() == 1
    # The leaderboard: the generators in the order of their known strength, ranks 1-2-3.
    assert [value for value, _, _ in board] == ["crisp-xl", "murky-v2", "glitch-1b"]
    assert [rank for _, rank, _ in board] == ["1", "2", "3"]
    # The preference pairs: the 11 preferences (the "both bad" left out), each with its prompt, chosen the stronger.
    assert len(preferences) == 11
    for row in preferences:
        assert row["prompt"] in {scene.prompt for scene in SCENES} and row["label"] == "chosen"
        assert strength[row["chosen_image_id"]] > strength[row["rejected_image_id"]]
    assert Project.objects.get(pk=project.pk).show_prompt
