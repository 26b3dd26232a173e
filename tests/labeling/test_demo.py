"""seed_demo: real photos at graded distortions, two accounts, idempotent."""
import io

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.test import RequestFactory

from labeling.models import Image, Membership, Project
from labeling.services import demo


@pytest.mark.django_db
def test_seed_demo_is_idempotent_and_prints_credentials(monkeypatch):
    two_photos = {name: tags for name, tags in list(demo.DEMO_PHOTOS.items())[:2]}
    monkeypatch.setattr(demo, "DEMO_PHOTOS", two_photos)
    monkeypatch.setattr(demo, "DEMO_NEXT_PHOTOS", {"coins.png": ["coins"]})
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    per_photo = 1 + sum(len(values) for _, values in demo.DISTORTIONS.values())
    assert f"imported {2 * per_photo}" in out.getvalue()
    assert "password: tagrank-rater" in out.getvalue()

    again = io.StringIO()
    call_command("seed_demo", stdout=again)
    assert "imported 0" in again.getvalue() and f"duplicates skipped {2 * per_photo}" in again.getvalue()

    project = Project.objects.get(slug=demo.DEMO_SLUG)
    assert project.images.count() == 2 * per_photo
    blurred = Image.objects.get(original_name="astronaut/astronaut_blur_3.png")
    assert blurred.metadata["blur_sigma"] == 5.0 and blurred.metadata["distortion_strength"] == 3
    original = Image.objects.get(original_name="astronaut/astronaut_original.png")
    assert original.metadata["blur_sigma"] == 0.0 and original.metadata["distortion_strength"] == 0
    assert set(original.image_tags.values_list("tag__name", flat=True)) == {"person", "portrait", "space", "flag"}
    login = RequestFactory().post("/accounts/login/")  # the login limit (django-axes) needs the request
    assert authenticate(login, username="rater", password="tagrank-rater") is not None
    roles = dict(Membership.objects.filter(project=project).values_list("user__username", "role"))
    assert roles == {"manager": "manager", "rater": "rater", "rater2": "rater"}

    # The next campaign: fresh photos, the same question and accounts, ready to be warm-started from the first.
    following = Project.objects.get(slug=demo.DEMO_NEXT_SLUG)
    assert following.question == project.question
    assert following.images.count() == per_photo
    assert not following.images.filter(original_name__startswith="astronaut/").exists()
    assert dict(Membership.objects.filter(project=following).values_list("user__username", "role")) == roles
    assert f"Project '{demo.DEMO_NEXT_SLUG}'" in out.getvalue()


def test_distortions_degrade_the_photo():
    import numpy as np

    clean = demo.load_photo("chelsea.png", max_side=128)
    base = np.asarray(clean, dtype=np.float32)
    errors = []
    for value in demo.DISTORTIONS["blur"][1]:
        errors.append(np.abs(np.asarray(demo.distort(clean, "blur", value, 0), dtype=np.float32) - base).mean())
    assert errors == sorted(errors) and errors[0] > 0  # stronger blur, larger change
