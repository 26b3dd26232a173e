"""Accounts: login limits (django-axes) on every way in, password validators, expiring and revocable tokens."""
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from rest_framework.authtoken.models import Token

from labeling.models import Membership
from labeling.services import invites

TOKEN = "/api/v1/auth/token/"
PROJECT = "/api/v1/projects/test-project/"


@pytest.fixture(autouse=True)
def small_login_limit(settings):
    settings.AXES_FAILURE_LIMIT = 3


def login(client, password, **extra):
    return client.post(reverse("login"), {"username": "rater1", "password": password}, **extra)


@pytest.mark.django_db
def test_login_page_locks_out_after_repeated_failures_even_with_the_right_password(client, rater):
    assert [login(client, "wrong").status_code for _ in range(2)] == [200, 200]
    locked = login(client, "wrong")
    assert locked.status_code == 429 and "Too many failed sign-ins" in locked.content.decode()
    assert int(locked["Retry-After"]) > 0
    assert login(client, "pw-for-tests-1").status_code == 429
    # Another address is not locked out of this account.
    assert login(client, "pw-for-tests-1", REMOTE_ADDR="10.9.9.9").status_code == 302


@pytest.mark.django_db
def test_forged_forwarded_for_does_not_dodge_the_limit_without_proxies(client, rater, settings):
    settings.TAGRANK_PROXY_COUNT = 0
    statuses = [login(client, "wrong", HTTP_X_FORWARDED_FOR=f"203.0.113.{n}").status_code for n in range(4)]
    assert statuses[-1] == 429


@pytest.mark.django_db
def test_behind_one_proxy_the_address_it_appended_counts(client, rater, settings):
    from django.test import RequestFactory

    from labeling.login_limits import client_ip

    settings.TAGRANK_PROXY_COUNT = 1
    request = RequestFactory().get("/", HTTP_X_FORWARDED_FOR="1.1.1.1, 198.51.100.7", REMOTE_ADDR="10.0.0.2")
    assert client_ip(request) == "198.51.100.7"  # the forged 1.1.1.1 is ignored
    for _ in range(3):
        login(client, "wrong", HTTP_X_FORWARDED_FOR="1.1.1.1, 198.51.100.7")
    assert login(client, "pw-for-tests-1", HTTP_X_FORWARDED_FOR="1.1.1.1, 198.51.100.7").status_code == 429
    assert login(client, "pw-for-tests-1", HTTP_X_FORWARDED_FOR="198.51.100.8").status_code == 302


@pytest.mark.django_db
def test_token_endpoint_shares_the_login_limit_and_answers_json(api, rater):
    client = api()
    statuses = [client.post(TOKEN, {"username": "rater1", "password": "no"}, format="json").status_code
                for _ in range(3)]
    assert statuses == [400, 400, 429]
    locked = client.post(TOKEN, {"username": "rater1", "password": "pw-for-tests-1"}, format="json")
    assert locked.status_code == 429 and locked.json()["code"] == "login_locked" and locked["Retry-After"]


@pytest.mark.django_db
def test_token_endpoint_takes_json_only(api, rater):
    multipart = api().post(TOKEN, {"username": "rater1", "password": "pw-for-tests-1"}, format="multipart")
    assert multipart.status_code == 415
    assert api().post(TOKEN, {"username": "rater1", "password": "pw-for-tests-1"}, format="json").status_code == 200


@pytest.mark.django_db
def test_guessing_invitation_links_is_limited(client, project, manager):
    statuses = [client.get(reverse("signup", args=[f"guess-{n}"])).status_code for n in range(3)]
    assert statuses == [410, 410, 429]  # the failure that reaches the limit is answered as locked out
    invite = invites.create_invite(project, manager)
    assert client.get(reverse("signup", args=[invite.token])).status_code == 429  # even a real one, for a while


@pytest.mark.django_db
def test_signup_refuses_common_and_numeric_passwords(client, project, manager):
    invite = invites.create_invite(project, manager)
    for password in ("password123", "8326451902"):
        response = client.post(reverse("signup", args=[invite.token]),
                               {"username": "newbie", "password1": password, "password2": password})
        assert response.status_code == 200 and "password" in response.content.decode().lower()
    assert not get_user_model().objects.filter(username="newbie").exists()
    strong = "vivid-otter-laments-42"
    ok = client.post(reverse("signup", args=[invite.token]),
                     {"username": "newbie", "password1": strong, "password2": strong})
    assert ok.status_code == 302 and get_user_model().objects.filter(username="newbie").exists()


@pytest.mark.django_db
def test_tokens_expire_and_a_fresh_one_is_issued(api, project, rater, settings):
    settings.TAGRANK_TOKEN_TTL_HOURS = 1
    body = api().post(TOKEN, {"username": "rater1", "password": "pw-for-tests-1"}, format="json").json()
    assert body["expires_at"]
    client = api()
    client.credentials(HTTP_AUTHORIZATION=f"Token {body['token']}")
    assert client.get(PROJECT).status_code == 200
    Token.objects.filter(key=body["token"]).update(created=Token.objects.get().created - timedelta(hours=2))
    expired = client.get(PROJECT)
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]
    fresh = api().post(TOKEN, {"username": "rater1", "password": "pw-for-tests-1"}, format="json").json()["token"]
    assert fresh != body["token"]


@pytest.mark.django_db
def test_a_token_can_be_revoked_by_its_owner(api, project, rater):
    client = api(rater)
    assert client.post("/api/v1/auth/token/revoke/").status_code == 204
    assert not Token.objects.filter(user=rater).exists()
    assert client.get(PROJECT).status_code == 401
    assert api().post("/api/v1/auth/token/revoke/").status_code == 401


@pytest.mark.django_db
def test_deactivation_revokes_tokens_unless_another_project_still_has_the_user(api, project, other_project, rater,
                                                                               second_rater):
    Membership.objects.create(project=other_project, user=second_rater)
    first, second = api(rater), api(second_rater)
    for membership in Membership.objects.filter(project=project, user__in=[rater, second_rater]):
        invites.set_membership_active(membership, False)
    assert not Token.objects.filter(user=rater).exists() and first.get(PROJECT).status_code == 401
    # Still a member elsewhere: the token works there, and this project is gone for them.
    assert second.get(PROJECT).status_code == 404
    assert second.get("/api/v1/projects/other-project/").status_code == 200
    second_rater.is_active = False
    second_rater.save()
    assert not Token.objects.filter(user=second_rater).exists()
    assert second.get("/api/v1/projects/other-project/").status_code == 401
