"""Fair serving (a cap on live leases, a next-pair throttle) and bounded request bodies."""
import json

import pytest
from rest_framework.throttling import ScopedRateThrottle

from labeling.models import PairLease
from labeling.services import leases, pair_serving

NEXT = "/api/v1/projects/test-project/next-pair/"


def live_leases(rater):
    return PairLease.objects.filter(rater=rater, state=PairLease.State.LIVE).count()


@pytest.mark.django_db
def test_a_rater_at_the_cap_gets_their_oldest_live_lease_back(api, project, images, rater, second_rater, settings):
    settings.TAGRANK_MAX_LIVE_LEASES = 2
    client = api(rater)
    first, second = client.get(NEXT).json(), client.get(NEXT).json()
    assert first["lease"] != second["lease"]
    for _ in range(5):
        assert client.get(NEXT).json()["lease"] == first["lease"]
    assert live_leases(rater) == 2
    # Judging one frees a place; other raters are not held back by this one.
    assert client.post("/api/v1/projects/test-project/comparisons/",
                       {"lease": first["lease"], "winner": "a", "client_key": "k1"}, format="json").status_code == 201
    assert client.get(NEXT).json()["lease"] not in (first["lease"], second["lease"])
    assert api(second_rater).get(NEXT).status_code == 200


@pytest.mark.django_db
def test_leases_past_the_cap_from_concurrent_requests_are_given_back(project, images, rater, settings):
    settings.TAGRANK_MAX_LIVE_LEASES = 0
    held = [pair_serving.next_pair(project, rater)[1] for _ in range(2)]  # two already held (as if racing requests won)
    settings.TAGRANK_MAX_LIVE_LEASES = 1
    extra = pair_serving.lease_from_fallback(project, rater)
    assert leases.held_lease(project, rater, just_leased=extra).pk == held[0].pk
    _, served = pair_serving.next_pair(project, rater)
    assert served.pk == held[0].pk


@pytest.mark.django_db
def test_next_pair_is_throttled(api, project, images, rater, monkeypatch):
    rates = {"next_pair": "3/min", "submit": "600/min", "auth": "20/min"}
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", rates)
    client = api(rater)
    statuses = [client.get(NEXT).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


@pytest.mark.django_db
def test_request_bodies_over_the_limit_are_refused_before_reading(api, client, project, rater, settings):
    settings.TAGRANK_MAX_REQUEST_BYTES = 1000
    big = json.dumps({"username": "x" * 2000, "password": "y"})
    response = api().post("/api/v1/auth/token/", data=big, content_type="application/json")
    assert response.status_code == 413 and response.json()["code"] == "request_too_large"
    assert client.post("/accounts/login/", {"username": "x" * 2000, "password": "y"}).status_code == 413
    small = api().post("/api/v1/auth/token/", {"username": "x", "password": "y"}, format="json")
    assert small.status_code == 400  # under the limit: read and answered as usual


@pytest.mark.django_db
def test_uploads_are_limited_in_number_of_files(api, client, project, manager, image_bytes, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2
    files = [SimpleUploadedFile(f"{n}.png", image_bytes(seed=n), content_type="image/png") for n in range(3)]
    client.force_login(manager)
    response = client.post("/projects/test-project/upload/", {"files": files})
    assert response.status_code == 400
    assert not project.images.exists()
