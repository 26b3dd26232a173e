"""Media files: each path maps to its owner before anything is served (config/media.py, labeling.access)."""
from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from labeling.models import Membership, Project


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def outsider(make_user):
    other = Project.objects.create(name="Other", slug="other", overlap=1)
    user = make_user("outsider")
    Membership.objects.create(project=other, user=user, role=Membership.Role.MANAGER)
    return user


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.mark.django_db
def test_an_image_and_its_thumbnail_go_to_active_members_only(client, api, rater, outsider, images):
    image = images[0]
    for url in (image.file.url, image.thumbnail.url):
        assert client.get(url).status_code == 401
        assert api(outsider).get(url).status_code == 404  # as a file that does not exist
        response = api(rater).get(url)
        assert response.status_code == 200 and response["Cache-Control"] == "private, max-age=86400"
        with default_storage.open(image.file.name if url == image.file.url else image.thumbnail.name) as handle:
            assert body(response) == handle.read()
    client.force_login(rater)  # pages' <img> use the session
    assert client.get(image.thumbnail.url).status_code == 200
    client.force_login(outsider)
    assert client.get(image.thumbnail.url).status_code == 404


@pytest.mark.django_db
def test_deactivated_members_and_their_tokens_lose_access(client, api, rater, images):
    from labeling.services.invites import set_membership_active

    api = api(rater)
    client.force_login(rater)
    assert api.get(images[0].file.url).status_code == 200
    set_membership_active(Membership.objects.get(user=rater), False)
    # Their only membership ended, so the token is revoked (401); the session stays, but not the access.
    assert api.get(images[0].file.url).status_code == 401
    assert client.get(images[0].thumbnail.url).status_code == 404
    assert client.get(f"/api/v1/projects/{images[0].project.slug}/images/").status_code == 404


@pytest.mark.django_db
def test_weights_features_and_unknown_paths_are_never_served(api, make_user, manager, project, images):
    from modeling.models import ModelVersion

    boss = make_user("boss", is_superuser=True, is_staff=True)
    version = ModelVersion.objects.create(project=project, encoder_id="tiny", weights=f"models/{project.pk}/v1-run1.pt")
    paths = [version.weights.name, f"features/tiny/images/0/{images[0].pk}.npy", "other/readme.txt"]
    for path in paths:
        default_storage.save(path, ContentFile(b"secret"))
    paths += [f"images/{project.pk}/../../models/{project.pk}/v1-run1.pt", "images/1/ab/" + "0" * 64 + ".png"]
    for user in (manager, boss):
        for path in paths:
            assert api(user).get(f"/media/{path}").status_code == 404, path


@pytest.mark.django_db
def test_a_cached_explanation_goes_to_the_projects_managers_only(api, rater, manager, outsider, project, images):
    from modeling.models import ModelVersion

    version = ModelVersion.objects.create(project=project, encoder_id="tiny")
    name = f"explanations/v{version.pk}/{images[0].pk}.json"
    default_storage.save(name, ContentFile(b'{"score": 7.1}'))
    assert body(api(manager).get(f"/media/{name}")) == b'{"score": 7.1}'
    assert api(rater).get(f"/media/{name}").status_code == 404  # it reveals the score
    assert api(outsider).get(f"/media/{name}").status_code == 404
    # An image of another project under this version's number is not this version's file.
    elsewhere = f"explanations/v{version.pk}/999999.json"
    default_storage.save(elsewhere, ContentFile(b"{}"))
    assert api(manager).get(f"/media/{elsewhere}").status_code == 404


@pytest.mark.django_db
def test_with_accel_redirect_the_proxy_sends_the_file_after_django_decides(settings, api, rater, outsider, images):
    settings.TAGRANK_MEDIA_ACCEL_REDIRECT = "/protected-media/"
    allowed = api(rater).get(images[0].file.url)
    assert allowed.status_code == 200 and allowed.content == b""
    assert allowed["X-Accel-Redirect"] == f"/protected-media/{images[0].file.name}"
    refused = api(outsider).get(images[0].file.url)
    assert refused.status_code == 404 and "X-Accel-Redirect" not in refused

