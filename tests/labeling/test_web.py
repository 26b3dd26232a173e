"""The minimal web: login, the member's project list, a project page with counts and thumbnails."""
import pytest
from django.urls import reverse

from labeling.models import Project


@pytest.mark.django_db
def test_login_page_renders_without_external_assets(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="username"' in html and 'name="password"' in html
    assert "http://" not in html.replace("http://testserver", "") and "https://" not in html  # no CDN


@pytest.mark.django_db
def test_pages_require_login(client, project):
    for url in [reverse("project-list"), reverse("project-detail", args=[project.slug])]:
        response = client.get(url)
        assert response.status_code == 302 and response.url.startswith(reverse("login"))


@pytest.mark.django_db
def test_rater_sees_only_member_projects(client, rater, project):
    Project.objects.create(name="Secret project", slug="secret")
    client.force_login(rater)
    html = client.get(reverse("project-list")).content.decode()
    assert "Test project" in html and "Secret project" not in html
    assert client.get(reverse("project-detail", args=["secret"])).status_code == 404  # as a missing one


@pytest.mark.django_db
def test_project_page_shows_counts_thumbnails_and_encoder(client, rater, project, images, settings):
    client.force_login(rater)
    response = client.get(reverse("project-detail", args=[project.slug]))
    html = response.content.decode()
    assert response.status_code == 200
    assert '<dd id="count-images">8</dd>' in html
    assert '<dd id="count-tags">2</dd>' in html
    assert html.count("/media/thumbnails/") == 8
    assert "encoder: quality-stats" in html and "cannot see content or aesthetics" in html
    assert "for demonstration only" not in html
    settings.TAGRANK_ENCODER = "tiny"
    html = client.get(reverse("project-detail", args=[project.slug])).content.decode()
    assert "encoder: tiny" in html and "for demonstration only" in html and "cannot see content" not in html


@pytest.mark.django_db
def test_media_files_are_served_to_signed_in_users_only(client, rater, images):
    assert client.get(images[0].thumbnail.url).status_code == 401
    client.force_login(rater)
    response = client.get(images[0].thumbnail.url)
    assert response.status_code == 200
    assert b"".join(response.streaming_content)[:4] == b"RIFF"  # a WebP thumbnail


@pytest.mark.django_db
def test_healthz(client):
    assert client.get("/healthz/").json()["checks"]["database"] == {"status": "ok", "ms": pytest.approx(0, abs=1e4)}


@pytest.mark.django_db
def test_the_project_list_counts_the_unarchived_images(client, rater, project, images):
    from django.utils import timezone

    from labeling.models import Membership

    empty = Project.objects.create(name="Empty project", slug="empty")
    Membership.objects.create(project=empty, user=rater)
    images[0].archived_at = timezone.now()
    images[0].save()
    client.force_login(rater)
    html = client.get(reverse("project-list")).content.decode()
    assert "7 images" in html and "0 images" in html
