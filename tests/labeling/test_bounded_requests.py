"""Bounded parsing (issue 26, finding 4): deep JSON is a 400, bodies have a small cap except uploads by a
project's managers, and a large page POST is refused before CSRF's check reads it."""
import io
import json

import pytest
from django.http import multipartparser
from django.test import Client

from labeling.models import Image

TOKEN = "/api/v1/auth/token/"


def deep_list(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.fixture
def parsed_bodies(monkeypatch):
    """Records each multipart body Django parses (reads, and spools to disk when large)."""
    seen = []
    parse = multipartparser.MultiPartParser.parse

    def recording(self):
        seen.append(self._content_length)
        return parse(self)

    monkeypatch.setattr(multipartparser.MultiPartParser, "parse", recording)
    return seen


@pytest.mark.django_db
def test_deeply_nested_json_is_a_400_not_a_500(api, rater, project, images):
    anonymous = api().post(TOKEN, data=deep_list(1000), content_type="application/json")
    assert anonymous.status_code == 400 and "nested deeper" in anonymous.json()["detail"]
    # Under the interpreter's recursion limit but over the depth limit: refused too, on any JSON route.
    tags = f"/api/v1/images/{images[0].pk}/tags/"
    nested = api(rater).post(tags, data='{"name": ' + deep_list(100) + "}", content_type="application/json")
    assert nested.status_code == 400 and "nested deeper than 64" in nested.json()["detail"]
    assert api(rater).post(tags, {"name": "sharp"}, format="json").status_code == 201


@pytest.mark.django_db
def test_deep_json_inside_forms_and_json_lines_is_a_clear_error(api, manager, project, images, image_bytes):
    upload = api(manager).post(f"/api/v1/projects/{project.slug}/images/", {
        "file": io.BytesIO(image_bytes(seed=77)), "metadata": '{"a": ' + deep_list(2000) + "}"}, format="multipart")
    assert upload.status_code == 400 and "nested deeper" in json.dumps(upload.json())
    judgments = io.BytesIO(('{"image_a": 1}\n' + deep_list(3000) + "\n").encode())
    judgments.name = "judgments.jsonl"
    answer = api(manager).post(f"/api/v1/projects/{project.slug}/comparisons/import/", {"file": judgments},
                               format="multipart")
    assert answer.status_code == 400
    assert {"file": "judgments.jsonl", "line": 2, "reason": "invalid JSON: JSON nested deeper than 64 levels"} in (
        answer.json()["errors"])


@pytest.mark.django_db
def test_the_default_cap_is_small_and_only_managers_uploads_get_more(api, project, manager, rater, image_bytes,
                                                                    settings, parsed_bodies):
    assert settings.TAGRANK_MAX_REQUEST_BYTES <= 1024 * 1024  # the shipped default, not a test's value
    two_mib = json.dumps({"username": "x", "password": "y" * 2 * 1024 * 1024})
    refused = api().post(TOKEN, data=two_mib, content_type="application/json")
    assert refused.status_code == 413 and refused.json()["code"] == "request_too_large"

    import numpy as np
    from PIL import Image as PILImage

    noise = np.random.default_rng(5).integers(0, 256, size=(900, 900, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    PILImage.fromarray(noise).save(buffer, format="PNG")
    assert buffer.tell() > 1024 * 1024  # a real photo is larger still
    url = f"/api/v1/projects/{project.slug}/images/"
    by_rater = api(rater).post(url, {"file": io.BytesIO(buffer.getvalue())}, format="multipart")
    assert by_rater.status_code == 413 and not parsed_bodies  # refused unread
    by_manager = api(manager).post(url, {"file": io.BytesIO(buffer.getvalue())}, format="multipart")
    assert by_manager.status_code == 201 and Image.objects.filter(project=project).count() == 1
    settings.TAGRANK_MAX_UPLOAD_BYTES = 1024 * 1024 + 10
    over = api(manager).post(url, {"file": io.BytesIO(buffer.getvalue())}, format="multipart")
    assert over.status_code == 413 and str(1024 * 1024 + 10) in over.json()["detail"]


@pytest.mark.django_db
def test_a_large_anonymous_page_post_is_refused_before_csrf_reads_it(project, parsed_bodies):
    client = Client(enforce_csrf_checks=True)
    client.cookies["csrftoken"] = "f" * 32  # forged: the form's token will not match
    big = io.BytesIO(b"\0" * (3 * 1024 * 1024))
    big.name = "huge.png"
    response = client.post(f"/projects/{project.slug}/upload/", {"csrfmiddlewaretoken": "a" * 32, "files": big})
    assert response.status_code == 413
    assert parsed_bodies == []  # never parsed, never written to disk
    small = client.post(f"/projects/{project.slug}/upload/", {"csrfmiddlewaretoken": "a" * 32, "tags": "x"})
    assert small.status_code == 302 and parsed_bodies == []  # a small one goes to sign-in, unread (below)


@pytest.mark.django_db
def test_an_anonymous_page_post_goes_to_sign_in_before_its_body_is_read(project, parsed_bodies, make_user):
    client = Client(enforce_csrf_checks=True)
    client.cookies["csrftoken"] = "f" * 32  # forged: the form's token will not match
    for url in (f"/projects/{project.slug}/settings/", f"/projects/{project.slug}/upload/", "/projects/new/"):
        response = client.post(url, {"csrfmiddlewaretoken": "a" * 32, "name": "x", "files": io.BytesIO(b"\0" * 1000)})
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), url
    assert parsed_bodies == []  # neither CSRF's check nor the view read a form
    # Pages anyone may post to still read the form (and CSRF still guards them).
    assert client.post("/accounts/login/", {"csrfmiddlewaretoken": "a" * 32, "username": "x"}).status_code == 403
    assert parsed_bodies
