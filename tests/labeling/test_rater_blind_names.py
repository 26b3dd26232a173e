"""Raters never learn an image's file name or external id (issue 26, finding 3).

On the demo, ``astronaut_blur_1.png`` tells the rater the distortion and its strength. Every answer a rater
gets on the demo data (the API's JSON, the pages' HTML, the media URLs inside them) is searched for the
demo's file names and external ids; the manager's answers are searched the same way as a control.
"""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from labeling.models import Image
from labeling.services import demo

ASTRONAUT = {"astronaut.png": demo.DEMO_PHOTOS["astronaut.png"]}


@pytest.fixture
def demo_project(db, monkeypatch):
    monkeypatch.setattr("worker.dispatch.send_images_imported", lambda project_id, image_ids: None)
    return demo.seed_demo(ASTRONAUT).project


def revealing_words(project) -> set[str]:
    """Every file name and external id of the project, and the parts of them that tell the condition."""
    words = set()
    for name, external_id in Image.objects.filter(project=project).values_list("original_name", "external_id"):
        stem = name.rsplit("/", 1)[-1].rsplit(".", 1)[0]  # astronaut_blur_1
        words |= {name, external_id, stem}
        condition = stem.split("_", 1)[1]  # blur_1 (and "original", too common a word to search for)
        if condition[-1].isdigit():
            words.add(condition)
    assert "astronaut_blur_1" in words and "astronaut/astronaut_blur_1" in words
    return words


def answers_as(user, project, api, client) -> dict[str, str]:
    """What ``user`` gets from the rater-facing API routes and pages of the project, keyed by URL."""
    token_client = api(user)
    client.force_login(user)
    base = f"/api/v1/projects/{project.slug}"
    seen = {}

    def get_api(url, **params):
        response = token_client.get(url, params)
        assert response.status_code == 200, (url, response.status_code)
        seen[url + str(params)] = response.content.decode()
        return response.json()

    def get_page(url):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        seen[url] = response.content.decode()

    get_api("/api/v1/projects/")
    get_api(f"{base}/")
    pages = [get_api(f"{base}/images/")]
    while pages[-1]["next"]:
        pages.append(get_api(f"{base}/images/", page=len(pages) + 1))
    pair = get_api(f"{base}/next-pair/")
    judged = token_client.post(f"{base}/comparisons/", {"lease": pair["lease"], "winner": "a", "client_key": "k"},
                               format="json")
    assert judged.status_code == 201
    seen["submit"] = judged.content.decode()
    get_api(f"{base}/comparisons/")
    get_api(f"{base}/tags/")
    for side in ("a", "b"):
        get_api(f"/api/v1/images/{pair[side]['id']}/tags/")
        get_page(f"/images/{pair[side]['id']}/")
    get_page("/")
    get_page(f"/projects/{project.slug}/")
    get_page(f"/projects/{project.slug}/rate/")
    return seen


@pytest.mark.django_db
def test_a_raters_answers_and_pages_on_the_demo_name_no_file(demo_project, api, client):
    users = get_user_model().objects
    words = revealing_words(demo_project)
    leaks = [(url, word) for url, body in answers_as(users.get(username="rater"), demo_project, api, client).items()
             for word in words if word in body]
    assert not leaks, leaks
    # The control: the same search finds the names in what the manager gets.
    managed = answers_as(users.get(username="manager"), demo_project, api, client)
    assert any("astronaut_blur_1" in body for body in managed.values())


@pytest.mark.django_db
def test_raters_cannot_look_images_up_by_external_id(demo_project, api):
    users = get_user_model().objects
    url = f"/api/v1/projects/{demo_project.slug}/images/"
    query = {"external_id": "astronaut/astronaut_blur_1"}
    assert api(users.get(username="rater")).get(url, query).status_code == 403
    found = api(users.get(username="manager")).get(url, query).json()
    assert found["count"] == 1 and found["results"][0]["original_name"] == "astronaut/astronaut_blur_1.png"


@pytest.mark.django_db
def test_demo_image_ids_do_not_follow_the_distortion_ladder(demo_project):
    """Raters see ids: imported photo by photo, mild to severe, an id would tell the distortion like a name."""
    by_id = list(Image.objects.filter(project=demo_project).order_by("pk").values_list("metadata", flat=True))
    ladder = [(m["distortion"], m["distortion_strength"]) for m in by_id]
    assert ladder != sorted(ladder, key=lambda step: (list(demo.DISTORTIONS).index(step[0]) if step[1] else -1, step[1]))
    strengths = [strength for _, strength in ladder]
    assert strengths != sorted(strengths) and ladder[0] != ("original", 0)


@pytest.mark.django_db
def test_the_raters_image_list_shows_the_prompt_only_where_the_project_shows_it(api, project, images, rater):
    Image.objects.filter(pk=images[0].pk).update(caption="a red square on white")
    url = f"/api/v1/projects/{project.slug}/images/"
    assert "prompt" not in api(rater).get(url).json()["results"][0]
    project.show_prompt = True
    project.save()
    row = api(rater).get(url).json()["results"][0]
    assert row["prompt"] == "a red square on white" and "caption" not in row and "original_name" not in row
