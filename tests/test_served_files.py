"""Files are served as what they are, and no page runs inline script (issue 26, finding 2).

The attack: an ``evil.html`` stored on an image (through the admin's editable file field, whose upload path
kept the extension) was served by /media/ as text/html with its script intact, and no page carried a
Content-Security-Policy.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from csp.utils import build_policy
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from labeling.models import Image, image_upload_path
from tests.clients import token_client

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def script_sources(policy: str) -> list[str]:
    """The sources a policy allows scripts from (script-src, else default-src)."""
    directives = {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}
    return directives.get("script-src", directives.get("default-src", []))


@pytest.mark.django_db
def test_media_serves_only_stored_image_types_with_their_type_nosniff_and_a_sandbox(rater, images, settings):
    client = token_client(rater)
    for image, expected in ((images[0].file, "image/png"), (images[0].thumbnail, "image/webp")):
        response = client.get(image.url)
        assert response.status_code == 200
        assert response["Content-Type"] == expected
        assert response["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in response["Content-Security-Policy"] and "default-src 'none'" in response["Content-Security-Policy"]
    settings.TAGRANK_MEDIA_ACCEL_REDIRECT = "/protected-media/"  # the proxy sends the file: same headers
    handed = client.get(images[0].file.url)
    assert handed["X-Accel-Redirect"].endswith(images[0].file.name) and handed["Content-Type"] == "image/png"
    assert handed["X-Content-Type-Options"] == "nosniff"


@pytest.mark.django_db
def test_an_html_file_stored_on_an_image_is_never_served(rater, images):
    image = images[1]
    evil = f"images/{image.project_id}/{image.sha256[:2]}/{image.sha256}.html"
    default_storage.save(evil, ContentFile(b"<script>alert(document.cookie)</script>"))
    Image.objects.filter(pk=image.pk).update(file=evil)  # what the admin's editable file field allowed
    response = token_client(rater).get(f"/media/{evil}")
    assert response.status_code == 404


def test_an_upload_keeps_no_extension_of_its_own():
    image = Image(project_id=3, sha256="ab" * 32)
    assert image_upload_path(image, "evil.html") == f"images/3/ab/{'ab' * 32}.bin"
    assert image_upload_path(image, "photo.PNG").endswith(".png")


@pytest.mark.django_db
def test_every_page_carries_a_policy_without_inline_script(client, manager, project, images):
    client.force_login(manager)
    pages = ["/accounts/login/", "/", f"/projects/{project.slug}/", f"/projects/{project.slug}/rate/",
             f"/projects/{project.slug}/dashboard/", f"/projects/{project.slug}/analyses/tags/",
             f"/api/v1/projects/{project.slug}/", "/api/schema/swagger/", "/admin/login/"]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        assert response["Content-Security-Policy"] == build_policy(), url  # the site's policy, built once
        sources = script_sources(response["Content-Security-Policy"])
        assert sources and "'unsafe-inline'" not in sources and "*" not in sources, (url, sources)
        assert "data:" not in sources and "blob:" not in sources, (url, sources)


def test_no_template_has_inline_script():
    """Templates load scripts from static files: an inline one (or an on* attribute) would be refused by the CSP."""
    problems = []
    for template in sorted((REPO / "templates").rglob("*.html")):
        text = template.read_text()
        for match in re.finditer(r"<script\b([^>]*)>", text):
            attributes = match.group(1)
            if "src=" not in attributes and 'type="application/json"' not in attributes:
                problems.append(f"{template.relative_to(REPO)}: inline <script>")
        for match in re.finditer(r"\son[a-z]+\s*=", text):
            problems.append(f"{template.relative_to(REPO)}: event handler attribute{match.group(0)}")
        if "javascript:" in text:
            problems.append(f"{template.relative_to(REPO)}: javascript: URL")
    assert not problems, "\n".join(problems)
