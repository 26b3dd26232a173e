"""Project instructions (Markdown, rendered safely) and example pairs: the manager page, the rating page,
the API, and the rating page's help dialog in Chromium."""
from __future__ import annotations

import pytest
from django.test import Client

from labeling.models import Comparison, ExamplePair, Membership, Project
from labeling.services.instructions import render_markdown
from tests import browser
from tests.browser import chromium_page, wait_until


def test_markdown_is_rendered_and_anything_active_is_removed():
    html = render_markdown(
        "# Judge sharpness\n\n**Ignore** colour. <script>alert(1)</script> [bad](javascript:alert(1)) "
        "[guide](https://example.org/guide)\n\n<img src=x onerror=alert(1)>\n\n![ok](https://example.org/a.png)"
    )
    assert "<h1>Judge sharpness</h1>" in html and "<strong>Ignore</strong>" in html
    assert "<script" not in html and "onerror" not in html.replace("onerror=alert(1)&gt;", "")
    assert "javascript:" not in html.split("&lt;")[0] and 'href="javascript' not in html
    assert '<a href="https://example.org/guide" rel="noopener noreferrer">guide</a>' in html
    assert '<img src="https://example.org/a.png" alt="ok">' in html
    assert render_markdown("   ") == ""


def page_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_a_manager_writes_instructions_and_examples_and_a_rater_sees_them_before_the_first_pair(
        project, manager, rater, images, api):
    manager_page = page_client(manager)
    url = f"/projects/{project.slug}/instructions/"
    assert manager_page.get(url).status_code == 200
    response = manager_page.post(url, {"instructions": "Prefer the **sharper** image.\n\n<script>x()</script>"})
    assert response.status_code == 302
    response = manager_page.post(url, {"add_example": "1", "image_a": images[0].pk, "image_b": images[1].pk,
                                       "expected": "a", "explanation": "The left one is *in focus*."})
    assert response.status_code == 302
    example = ExamplePair.objects.get(project=project)
    # Bad input: an image of no project, the same image twice: a form error, nothing stored.
    response = manager_page.post(url, {"add_example": "1", "image_a": images[0].pk, "image_b": 10**9, "expected": "a"})
    assert response.status_code == 200 and "is not in this project" in response.content.decode()
    response = manager_page.post(url, {"add_example": "1", "image_a": images[0].pk, "image_b": images[0].pk,
                                       "expected": "a"})
    assert "two different images" in response.content.decode()
    assert ExamplePair.objects.filter(project=project).count() == 1
    # Raters may not edit them.
    assert page_client(rater).post(url, {"instructions": "hacked"}).status_code == 403
    assert Project.objects.get(pk=project.pk).instructions.startswith("Prefer")

    rate_page = page_client(rater).get(f"/projects/{project.slug}/rate/").content.decode()
    assert 'data-show-instructions="true"' in rate_page  # no judgment yet: shown before the first pair
    assert "Prefer the <strong>sharper</strong> image." in rate_page and "<script>x()" not in rate_page
    assert "The left one is <em>in focus</em>." in rate_page and "the left image is better" in rate_page
    assert images[0].thumbnail.url in rate_page

    body = api(rater).get(f"/api/v1/projects/{project.slug}/instructions/").json()
    assert body["question"] == project.question and "<strong>sharper</strong>" in body["instructions_html"]
    assert [(e["a"]["id"], e["b"]["id"], e["expected"]) for e in body["examples"]] == [
        (images[0].pk, images[1].pk, "a")]
    assert "original_name" not in str(body) and images[0].original_name not in str(body)  # no file names

    Comparison.objects.create(project=project, image_a=images[2], image_b=images[3], outcome="a", rater=rater,
                              client_key="k1")
    assert 'data-show-instructions="false"' in page_client(rater).get(f"/projects/{project.slug}/rate/").content.decode()

    assert manager_page.post(f"/projects/{project.slug}/instructions/examples/{example.pk}/delete/").status_code == 302
    assert not ExamplePair.objects.filter(project=project).exists()


@pytest.mark.browser
def test_the_help_dialog_opens_before_the_first_pair_and_with_the_h_key(live_server, transactional_db, make_user,
                                                                      image_bytes):
    from labeling.services.imports import store_image

    project = Project.objects.create(name="Help", slug="help", overlap=1,
                                     instructions="## Look at the edges\n\nBlur is worse than noise.")
    stored = [store_image(project, f"p{k}.png", image_bytes(seed=200 + k, size=(96, 64)))[0] for k in range(5)]
    ExamplePair.objects.create(project=project, image_a=stored[0], image_b=stored[1], expected="b",
                               explanation="The right one is sharp.")
    rater = make_user("help-rater", password="browser-pw-123")
    Membership.objects.create(project=project, user=rater, role=Membership.Role.RATER)
    with chromium_page() as page:
        browser.log_in(page, live_server.url, rater.username, "browser-pw-123")
        page.goto(f"{live_server.url}/projects/{project.slug}/rate/")
        page.wait_for_selector("#help[open]")
        text = page.inner_text("#help")
        page.keyboard.press("ArrowLeft")  # a judging key does nothing while the instructions are open
        page.keyboard.press("Escape")
        wait_until(page, "() => !document.querySelector('#help').open")
        page.wait_for_selector("#pair:not([hidden])")
        page.keyboard.press("h")
        page.wait_for_selector("#help[open]")
        page.click("#help-close")
        wait_until(page, "() => !document.querySelector('#help').open")
    assert "Look at the edges" in text and "Blur is worse than noise." in text
    assert "The right one is sharp." in text and "the right image is better" in text
    assert not Comparison.objects.filter(project=project).exists()
