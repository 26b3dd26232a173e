"""Campaign links for crowd platforms: passwordless raters keyed by the worker id, quotas, completion codes,
the link's limits, and a crowd session kept to rating. The browser test walks it in Chromium."""
from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from labeling.models import CampaignLink, Comparison, CrowdWorker, Membership, Project
from labeling.services import crowd_links
from tests.browser import chromium_page, wait_until

_keys = itertools.count()


def open_link(link, worker_id, client=None, **params) -> tuple[Client, object]:
    client = client or Client()
    query = {link.worker_param: worker_id, **params} if worker_id is not None else params
    return client, client.get(f"/study/{link.token}/", query)


def rate_once(client, slug: str):
    pair = client.get(f"/api/v1/projects/{slug}/next-pair/")
    if pair.status_code != 200:
        return pair
    stored = client.post(f"/api/v1/projects/{slug}/comparisons/",
                         {"lease": pair.json()["lease"], "winner": "a", "client_key": f"c{next(_keys)}"},
                         content_type="application/json")
    assert stored.status_code == 201, stored.content
    return stored


@pytest.mark.django_db
def test_a_manager_makes_a_link_and_workers_rate_to_their_quota_without_a_password(project, images, manager):
    manager_page = Client()
    manager_page.force_login(manager)
    url = f"/projects/{project.slug}/campaign-links/"
    assert manager_page.post(url, {"worker_param": "PROLIFIC_PID", "quota": 3, "days": 7, "max_workers": 2}
                             ).status_code == 200  # neither a code nor a URL: refused
    assert not CampaignLink.objects.exists()
    assert manager_page.post(url, {"worker_param": "bad param", "quota": 3, "completion_code": "X", "days": 7,
                                   "max_workers": 2}).status_code == 200
    response = manager_page.post(url, {"name": "Pilot", "worker_param": "PROLIFIC_PID", "quota": 3,
                                       "completion_code": "C0DE42", "days": 7, "max_workers": 2})
    assert response.status_code == 302
    link = CampaignLink.objects.get(project=project)
    page = manager_page.get(url).content.decode()
    assert f"/study/{link.token}/?PROLIFIC_PID=" in page

    first, response = open_link(link, "5f1d2c", STUDY_ID="study-1", SESSION_ID="s-1")
    assert response.status_code == 302 and response["Location"] == f"/projects/{project.slug}/rate/"
    worker = CrowdWorker.objects.get(project=project, external_id="5f1d2c")
    assert not worker.user.has_usable_password() and "5f1d2c" not in worker.user.username
    assert worker.platform_params == {"STUDY_ID": "study-1", "SESSION_ID": "s-1"}
    assert Membership.objects.get(project=project, user=worker.user).role == "rater"
    assert 'id="crowd-quota">3<' in first.get(f"/projects/{project.slug}/rate/").content.decode()

    for _ in range(2):
        rate_once(first, project.slug)
    # The second visit with the same worker id resumes: same rater, quota not doubled.
    again, response = open_link(link, "5f1d2c")
    assert response.status_code == 302 and CrowdWorker.objects.filter(project=project).count() == 1
    rate_once(again, project.slug)
    done = again.get(f"/api/v1/projects/{project.slug}/next-pair/")
    assert done.status_code == 410
    assert done.json() == {"detail": crowd_links.QUOTA_MESSAGE, "code": "quota_reached", "completion_code": "C0DE42",
                           "completion_url": None, "quota": 3}
    assert Comparison.objects.filter(project=project, rater=worker.user).count() == 3
    assert CrowdWorker.objects.get(pk=worker.pk).completed_at is not None

    # A second worker id is a second rater; the link's maximum (2) turns a third away.
    second, response = open_link(link, "A7B8")
    assert response.status_code == 302
    assert rate_once(second, project.slug).status_code == 201
    assert CrowdWorker.objects.filter(project=project).count() == 2
    _, response = open_link(link, "third-worker")
    assert response.status_code == 410 and "full" in response.content.decode()
    assert CrowdWorker.objects.filter(project=project).count() == 2


@pytest.mark.django_db
def test_a_link_refuses_bad_visits(project, images, manager):
    link = crowd_links.create_link(project, manager, worker_param="workerId", completion_url="https://example.org/done")
    assert open_link(link, None)[1].status_code == 400  # no worker id
    assert open_link(link, "bad id with spaces")[1].status_code == 400
    assert open_link(link, "x" * 201)[1].status_code == 400
    assert Client().get("/study/not-a-token/", {"workerId": "w"}).status_code == 404
    CampaignLink.objects.filter(pk=link.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert open_link(link, "w1")[1].status_code == 410
    CampaignLink.objects.filter(pk=link.pk).update(expires_at=timezone.now() + timedelta(days=1), is_active=False)
    assert open_link(link, "w1")[1].status_code == 410
    assert not CrowdWorker.objects.exists()
    with pytest.raises(ValueError):
        crowd_links.create_link(project, manager)  # neither a code nor a URL


@pytest.mark.django_db
def test_a_crowd_session_reaches_rating_and_nothing_else(project, images, manager, rater, api):
    link = crowd_links.create_link(project, manager, completion_url="https://example.org/done", quota=1)
    client, _ = open_link(link, "w-1")
    slug = project.slug
    assert client.get(f"/projects/{slug}/rate/").status_code == 200
    assert client.get(f"/api/v1/projects/{slug}/instructions/").status_code == 200
    for path in (f"/projects/{slug}/", "/", f"/api/v1/projects/{slug}/", "/api/v1/projects/",
                 f"/api/v1/projects/{slug}/images/", f"/api/v1/projects/{slug}/progress/", "/api/schema/"):
        response = client.get(path)
        assert response.status_code == 403, path
    assert client.get(f"/api/v1/projects/{slug}/images/").json()["code"] == "crowd_rating_only"
    # The same routes are open to an ordinary rater: the refusal is the crowd session's.
    ordinary = Client()
    ordinary.force_login(rater)
    assert ordinary.get(f"/projects/{slug}/").status_code == 200
    assert ordinary.get(f"/api/v1/projects/{slug}/images/").status_code == 200
    # No password: no API token either.
    worker = CrowdWorker.objects.get()
    assert api().post("/api/v1/auth/token/", {"username": worker.user.username, "password": "x"},
                      format="json").status_code == 400
    # At the quota the answer names the completion URL (the page goes there).
    rate_once(client, slug)
    done = client.get(f"/api/v1/projects/{slug}/next-pair/").json()
    assert done["code"] == "quota_reached" and done["completion_url"] == "https://example.org/done"


@pytest.mark.browser
def test_crowd_workers_rate_from_a_link_to_the_completion_code(live_server, transactional_db, make_user, image_bytes):
    from labeling.services.imports import store_image

    project = Project.objects.create(name="Crowd", slug="crowd", overlap=1, allow_ties=True)
    for index in range(8):
        store_image(project, f"c{index}.png", image_bytes(seed=300 + index, size=(96, 64)))
    manager = make_user("crowd-manager")
    Membership.objects.create(project=project, user=manager, role=Membership.Role.MANAGER)
    link = crowd_links.create_link(project, manager, quota=3, completion_code="PAID-7731", max_workers=2)
    base = f"{live_server.url}/study/{link.token}/?PROLIFIC_PID="

    def judge(page, times: int) -> None:
        for _ in range(times):
            wait_until(page, "() => document.querySelector('#rater').dataset.lease && !document.querySelector('#pair').hidden")
            lease = page.get_attribute("#rater", "data-lease")
            page.keyboard.press("ArrowLeft")
            wait_until(page, "lease => document.querySelector('#rater').dataset.lease !== lease", lease)

    with chromium_page() as page:
        page.goto(base + "worker-one")  # no sign-in page, no password
        page.wait_for_url(f"**/projects/{project.slug}/rate/")
        judge(page, 2)
        wait_until(page, "() => Number(document.querySelector('#my-count').textContent) >= 2")
        page.goto(base + "worker-one")  # a revisit resumes: the page counts the 2 judgments
        page.wait_for_url(f"**/projects/{project.slug}/rate/")
        resumed = page.inner_text("#my-count")
        judge(page, 1)
        page.wait_for_selector("#completion:not([hidden])")
        code = page.inner_text("#completion-code")
        nav = page.inner_text("header.topbar nav")
    with chromium_page() as page:
        page.goto(base + "worker-two")
        page.wait_for_url(f"**/projects/{project.slug}/rate/")
        judge(page, 1)
        page.goto(base + "worker-three")  # the link admits 2 workers
        full = page.inner_text("#crowd-message")

    workers = {worker.external_id: worker for worker in CrowdWorker.objects.filter(project=project)}
    assert resumed == "2" and code == "PAID-7731" and "Projects" not in nav
    assert set(workers) == {"worker-one", "worker-two"}
    assert workers["worker-one"].user_id != workers["worker-two"].user_id
    assert Comparison.objects.filter(project=project, rater=workers["worker-one"].user).count() == 3
    assert Comparison.objects.filter(project=project, rater=workers["worker-two"].user).count() == 1
    assert "full" in full
