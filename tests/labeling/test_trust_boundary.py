"""The low findings of the trust-boundary review (issue 26): each test failed on the code before the fix.

Outbound addresses that hide an IPv4 host, password spraying across user names, tokens that outlived a
password change, archived projects, and integer ids too large for the database.
"""
from __future__ import annotations

import pytest
from django.urls import reverse

from core import outbound


# --- Outbound: IPv6 forms that carry or tunnel to an IPv4 host ------------------------------------


@pytest.mark.parametrize("address", [
    "2002:a9fe:a9fe::1",  # 6to4 for 169.254.169.254
    "2002:808:808::1",  # 6to4, even for a public IPv4: a relay decides where it goes
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "2001::1",
    "fec0::1",  # site-local
    "64:ff9b::a9fe:a9fe",  # NAT64 for 169.254.169.254
    "::a9fe:a9fe",  # IPv4-compatible
    "::ffff:10.0.0.1",
])
def test_outbound_refuses_ipv6_that_carries_or_tunnels_to_ipv4(address, settings):
    settings.TAGRANK_OUTBOUND_ALLOW_PRIVATE = False
    assert not outbound.is_public(address)
    with pytest.raises(outbound.OutboundRefused, match="refused"):
        outbound.check_address("http://example.test/", address)


def test_outbound_still_allows_public_addresses(settings):
    settings.TAGRANK_OUTBOUND_ALLOW_PRIVATE = False
    for address in ("93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "::ffff:8.8.8.8"):
        assert outbound.is_public(address), address


def test_outbound_refuses_a_6to4_url_when_registered(project, settings):
    from labeling.services import webhooks

    settings.TAGRANK_OUTBOUND_ALLOW_PRIVATE = False
    for url in ("http://[2002:a9fe:a9fe::1]/", "http://[fec0::1]/hook", "http://[2001::1]/"):
        with pytest.raises(outbound.OutboundRefused, match="refused"):
            webhooks.register(project, url, ["import.finished"])


# --- Password spraying: a limit per address across user names --------------------------------------


def spray(client, names, password="Spring2026!"):
    return [client.post(reverse("login"), {"username": name, "password": password}).status_code for name in names]


@pytest.mark.django_db
def test_thirty_user_names_from_one_address_cause_a_lockout(client, rater, settings):
    settings.AXES_FAILURE_LIMIT = 5
    settings.TAGRANK_LOGIN_ADDRESS_FAILURE_LIMIT = 20
    statuses = spray(client, [f"user{n}" for n in range(30)])
    assert 429 in statuses and statuses.index(429) == 19  # the 20th failure from the address locks it
    # The address stays locked out, even for a real account with its right password...
    assert client.post(reverse("login"), {"username": "rater1", "password": "pw-for-tests-1"}).status_code == 429
    # Another address is not affected.
    assert client.post(reverse("login"), {"username": "rater1", "password": "pw-for-tests-1"},
                       REMOTE_ADDR="10.9.9.9").status_code == 302


@pytest.mark.django_db
def test_a_few_failures_by_different_users_behind_one_address_lock_nobody(client, rater, make_user, settings):
    settings.AXES_FAILURE_LIMIT = 5
    settings.TAGRANK_LOGIN_ADDRESS_FAILURE_LIMIT = 20
    assert spray(client, [f"colleague{n}" for n in range(10)]) == [200] * 10  # typos behind one office NAT
    assert client.post(reverse("login"), {"username": "rater1", "password": "pw-for-tests-1"}).status_code == 302


@pytest.mark.django_db
def test_a_sprayer_cannot_reset_the_address_count_by_signing_in(client, rater, settings):
    settings.AXES_FAILURE_LIMIT = 5
    settings.TAGRANK_LOGIN_ADDRESS_FAILURE_LIMIT = 6
    assert spray(client, [f"user{n}" for n in range(5)]) == [200] * 5
    assert client.post(reverse("login"), {"username": "rater1", "password": "pw-for-tests-1"}).status_code == 302
    client.logout()
    assert spray(client, ["user5"]) == [429]


@pytest.mark.django_db
def test_the_shared_cache_handler_counts_the_address_too(client, rater, settings):
    settings.AXES_HANDLER = "labeling.login_limits.CacheLoginLimits"
    settings.AXES_FAILURE_LIMIT = 3
    settings.TAGRANK_LOGIN_ADDRESS_FAILURE_LIMIT = 8
    from axes.handlers.proxy import AxesProxyHandler

    AxesProxyHandler.implementation = None  # pick the handler named in the settings
    try:
        statuses = spray(client, [f"user{n}" for n in range(10)])
        assert statuses[:7] == [200] * 7 and statuses[7] == 429
        assert spray(client, ["rater1", "rater1"], password="nope") == [429, 429]
    finally:
        AxesProxyHandler.implementation = None


# --- Tokens end when the password changes ------------------------------------------------------------


@pytest.mark.django_db
def test_a_password_change_revokes_api_tokens(api, project, rater, second_rater):
    from rest_framework.authtoken.models import Token

    client, bystander = api(rater), api(second_rater)
    assert client.get("/api/v1/projects/test-project/").status_code == 200
    rater.set_password("a-new-password-77")
    rater.save()
    assert client.get("/api/v1/projects/test-project/").status_code == 401
    assert not Token.objects.filter(user=rater).exists()
    assert bystander.get("/api/v1/projects/test-project/").status_code == 200  # others keep theirs
    # Saving without a new password (a sign-in's last_login, a profile edit) keeps the new token.
    fresh = api(rater)
    rater.last_login = None
    rater.save(update_fields=["last_login"])
    rater.first_name = "R"
    rater.save()
    assert fresh.get("/api/v1/projects/test-project/").status_code == 200


# --- Integer ids past the database's range are a 404, never a 500 -----------------------------------


HUGE_ID = "1" * 23


@pytest.mark.django_db
def test_an_oversized_id_is_a_404_on_the_api_and_the_pages(api, client, project, manager):
    client.force_login(manager)
    for url in (f"/api/v1/projects/test-project/raters/{HUGE_ID}/exclusion/",
                f"/api/v1/projects/test-project/images/{HUGE_ID}/comparisons/",
                f"/api/v1/images/{HUGE_ID}/tags/", f"/api/v1/model-versions/{HUGE_ID}/",
                f"/api/v1/projects/test-project/webhooks/{HUGE_ID}/"):
        assert api(manager).get(url).status_code == 404, url
        assert api(manager).post(url, {}, format="json").status_code == 404, url
    for url in (f"/projects/test-project/dashboard/raters/{HUGE_ID}/exclusion/", f"/images/{HUGE_ID}/",
                f"/projects/test-project/models/{HUGE_ID}/promote/", f"/projects/test-project/raters/{HUGE_ID}/"):
        assert client.post(url).status_code == 404, url
        assert client.get(url).status_code in (404, 405), url
    # The largest id the converter takes still reaches the view (a missing object: 404, no overflow).
    assert api(manager).post(f"/api/v1/projects/test-project/raters/{'9' * 18}/exclusion/", {"excluded": True},
                             format="json").status_code == 404


# --- Archived projects: read-only, exports allowed, never a 500 --------------------------------------


@pytest.fixture
def archived(project, images, manager, rater):
    from labeling.services import archive

    archive.archive_project(project)
    return project


@pytest.mark.django_db
def test_an_archived_project_reads_and_refuses_writes_without_a_500(api, archived, manager):
    client = api(manager)
    url = "/api/v1/projects/test-project/"
    answer = client.get(url)
    assert answer.status_code == 200 and answer.json()["archived_at"]
    refused = client.patch(url, {"name": "Renamed"}, format="json")
    assert refused.status_code == 403 and "archived" in refused.json()["detail"]
    archived.refresh_from_db()
    assert archived.name == "Test project"
    assert client.get("/api/v1/projects/").json()["count"] == 0  # it leaves the project list


@pytest.mark.django_db
def test_raters_cannot_judge_or_tag_an_archived_project(api, archived, images, rater):
    from labeling.models import Comparison, ImageTag

    client = api(rater)
    tags_before = ImageTag.objects.count()
    assert client.post(f"/api/v1/images/{images[0].pk}/tags/", {"name": "lovely"}, format="json").status_code == 403
    assert client.delete(f"/api/v1/images/{images[0].pk}/tags/?name=even").status_code == 403
    assert ImageTag.objects.count() == tags_before
    body = {"image_a": images[0].pk, "image_b": images[1].pk, "winner": "a", "client_key": "k-1"}
    assert client.post("/api/v1/projects/test-project/comparisons/", body, format="json").status_code == 403
    assert not Comparison.objects.exists()
    assert client.get(f"/api/v1/images/{images[0].pk}/tags/").status_code == 200  # reading still works


@pytest.mark.django_db
def test_managers_cannot_retrain_an_archived_project_but_can_export_it(api, client, archived, manager):
    from modeling.models import TrainingRun
    from modeling.services import triggers

    assert api(manager).post("/api/v1/projects/test-project/retrain/", {}, format="json").status_code == 403
    client.force_login(manager)
    assert client.post("/projects/test-project/models/retrain/").status_code == 403
    assert client.post("/projects/test-project/settings/", {"name": "x"}).status_code == 403
    assert not TrainingRun.objects.exists()
    assert triggers.check_all_projects(dispatch=False) == []  # the beat's retraining leaves it alone
    for export in ("scores/", "export/comparisons/", "export/image-tags/", "export/model-versions/"):
        assert api(manager).get(f"/api/v1/projects/test-project/{export}").status_code == 200, export
    assert client.get("/projects/test-project/").status_code == 200
    assert client.get("/projects/test-project/settings/").status_code == 200


@pytest.mark.django_db
def test_an_archived_project_takes_no_new_members(client, archived, manager):
    from labeling.services import invites

    invite = invites.create_invite(archived, manager)
    with pytest.raises(invites.InviteUnusable, match="archived"):
        invites.usable_invite(invite.token)
