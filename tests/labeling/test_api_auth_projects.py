"""API: tokens, the 401 wall for anonymous callers, throttling, and projects."""
import pytest
from django.contrib.auth.models import Permission
from rest_framework.throttling import ScopedRateThrottle

from labeling.models import Comparison, Membership, Project

ANONYMOUS_REFUSED = [
    ("get", "/api/v1/projects/"),
    ("post", "/api/v1/projects/"),
    ("get", "/api/v1/projects/test-project/"),
    ("patch", "/api/v1/projects/test-project/"),
    ("get", "/api/v1/projects/test-project/next-pair/"),
    ("get", "/api/v1/projects/test-project/comparisons/"),
    ("post", "/api/v1/projects/test-project/comparisons/"),
    ("post", "/api/v1/projects/test-project/comparisons/undo/"),
    ("post", "/api/v1/projects/test-project/skip/"),
    ("post", "/api/v1/projects/test-project/release/"),
    ("get", "/api/v1/projects/test-project/images/"),
    ("post", "/api/v1/projects/test-project/images/"),
    ("get", "/api/v1/projects/test-project/tags/"),
    ("get", "/api/v1/projects/test-project/gold-pairs/"),
    ("post", "/api/v1/projects/test-project/gold-pairs/"),
    ("get", "/api/v1/projects/test-project/progress/"),
    ("get", "/api/v1/projects/test-project/scores/?format=csv"),
    ("get", "/api/v1/images/1/tags/"),
    ("post", "/api/v1/images/1/tags/"),
    ("delete", "/api/v1/images/1/tags/?name=x"),
]


@pytest.mark.django_db
@pytest.mark.parametrize("method,url", ANONYMOUS_REFUSED)
def test_anonymous_callers_get_401_with_a_token_challenge(api, project, images, method, url):
    response = getattr(api(), method)(url, format="json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert "credentials" in response.json()["detail"]


@pytest.mark.django_db
def test_a_bad_token_is_401_too(api, project):
    client = api()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert client.get("/api/v1/projects/").status_code == 401


@pytest.mark.django_db
def test_login_is_open_but_the_schema_needs_a_signed_in_caller(api, client, rater):
    for url in ("/api/schema/", "/api/schema/swagger/", "/api/schema/redoc/"):
        assert client.get(url).status_code in (401, 403), url
        assert api(rater).get(url).status_code == 200, url
    client.force_login(rater)
    assert client.get("/api/schema/swagger/").status_code == 200
    assert api().post("/api/v1/auth/token/", {"username": "x", "password": "y"}, format="json").status_code == 400


@pytest.mark.django_db
def test_token_for_username_and_password_works_for_api_calls(api, rater, project):
    response = api().post("/api/v1/auth/token/", {"username": "rater1", "password": "pw-for-tests-1"}, format="json")
    assert response.status_code == 200
    token = response.json()["token"]
    again = api().post("/api/v1/auth/token/", {"username": "rater1", "password": "pw-for-tests-1"}, format="json")
    assert again.json()["token"] == token  # one token per user
    client = api()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/v1/projects/").json()["results"][0]["slug"] == "test-project"


@pytest.mark.django_db
def test_token_refuses_wrong_password_missing_fields_and_malformed_json(api, rater):
    wrong = api().post("/api/v1/auth/token/", {"username": "rater1", "password": "nope"}, format="json")
    assert wrong.status_code == 400 and wrong.json()["code"] == "invalid_credentials"
    missing = api().post("/api/v1/auth/token/", {"username": "rater1"}, format="json")
    assert missing.status_code == 400 and "password" in missing.json()
    malformed = api().post("/api/v1/auth/token/", data="{not json", content_type="application/json")
    assert malformed.status_code == 400 and "JSON parse error" in malformed.json()["detail"]


@pytest.mark.django_db
def test_token_requests_are_throttled(api, rater, monkeypatch, settings):
    settings.AXES_FAILURE_LIMIT = 100  # this test is about DRF's per-address throttle, not the login limit
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"auth": "5/min", "submit": "600/min"})
    statuses = [
        api().post("/api/v1/auth/token/", {"username": "rater1", "password": "nope"}, format="json").status_code
        for _ in range(6)
    ]
    assert statuses == [400] * 5 + [429]


@pytest.mark.django_db
def test_project_list_shows_member_projects_with_counts_and_role(api, project, images, rater, other_project):
    Comparison.objects.create(project=project, image_a=images[0], image_b=images[1], outcome="a", rater=rater,
                              client_key="k")
    body = api(rater).get("/api/v1/projects/").json()
    assert body["count"] == 1
    (listed,) = body["results"]
    assert listed["id"] == project.pk and listed["slug"] == "test-project" and listed["name"] == "Test project"
    assert listed["role"] == "rater"
    assert listed["counts"] == {"images": 8, "tags": 2, "comparisons": 1, "my_comparisons": 1}


@pytest.mark.django_db
def test_deactivated_members_lose_the_project(api, project, rater):
    Membership.objects.filter(user=rater).update(is_active=False)
    assert api(rater).get("/api/v1/projects/").json()["count"] == 0
    assert api(rater).get("/api/v1/projects/test-project/").status_code == 404


@pytest.mark.django_db
def test_project_detail_for_members_404_for_others(api, project, rater, manager, outsider):
    assert api(rater).get("/api/v1/projects/test-project/").json()["role"] == "rater"
    assert api(manager).get("/api/v1/projects/test-project/").json()["role"] == "manager"
    assert api(outsider).get("/api/v1/projects/test-project/").status_code == 404
    assert api(rater).get("/api/v1/projects/no-such-project/").status_code == 404


@pytest.mark.django_db
def test_managers_change_settings_raters_and_outsiders_cannot(api, project, rater, manager, outsider):
    url = "/api/v1/projects/test-project/"
    assert api(rater).patch(url, {"overlap": 3}, format="json").status_code == 403
    assert api(outsider).patch(url, {"overlap": 3}, format="json").status_code == 404
    response = api(manager).patch(url, {"overlap": 3, "question": "Which is sharper?"}, format="json")
    assert response.status_code == 200 and response.json()["overlap"] == 3
    project.refresh_from_db()
    assert (project.overlap, project.question) == (3, "Which is sharper?")


@pytest.mark.django_db
def test_project_settings_refuse_bad_values(api, project, manager):
    url = "/api/v1/projects/test-project/"
    assert "gold_rate" in api(manager).patch(url, {"gold_rate": 1.5}, format="json").json()
    assert "overlap" in api(manager).patch(url, {"overlap": 0}, format="json").json()
    assert "slug" in api(manager).patch(url, {"slug": "renamed"}, format="json").json()
    assert "tag_vocabulary" in api(manager).patch(url, {"tag_vocabulary": "sometimes"}, format="json").json()
    project.refresh_from_db()
    assert project.overlap == 1 and project.slug == "test-project"


@pytest.mark.django_db
def test_creating_projects_needs_staff_or_the_add_permission(api, make_user, rater):
    payload = {"name": "New", "slug": "new-project", "question": "Which is nicer?"}
    assert api(rater).post("/api/v1/projects/", payload, format="json").status_code == 403
    creator = make_user("creator")
    creator.user_permissions.add(Permission.objects.get(codename="add_project"))
    response = api(creator).post("/api/v1/projects/", payload, format="json")
    assert response.status_code == 201 and response.json()["role"] == "manager"
    assert Membership.objects.get(project__slug="new-project").user == creator
    duplicate = api(creator).post("/api/v1/projects/", payload, format="json")
    assert duplicate.status_code == 400 and "slug" in duplicate.json()
    assert Project.objects.filter(slug="new-project").count() == 1
