"""Every answer under /api/ is the API's JSON error, including those the URL resolver and the request limits give."""
import pytest
from django.test import Client
from rest_framework.authtoken.models import Token


@pytest.fixture
def manager_client(manager):
    return Client(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=manager).key}")


@pytest.mark.django_db
@pytest.mark.parametrize("path", [
    "/api/v1/projects/not%20a%20slug/",      # the slug converter does not match
    "/api/v1/images/twelve/tags/",           # nor the int converter
    "/api/v1/no-such-resource/",
    "/api/schema/nothing-here/",
])
def test_a_url_that_matches_no_route_is_a_json_404(manager_client, path):
    response = manager_client.get(path)
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found.", "code": "not_found"}


@pytest.mark.django_db
def test_a_missing_trailing_slash_is_still_redirected_and_pages_keep_their_404(manager_client, project, settings):
    response = manager_client.get("/api/v1/projects")
    assert response.status_code == 301 and response["Location"] == "/api/v1/projects/"
    page = manager_client.get("/no-such-page/")
    assert page.status_code == 404 and not page["Content-Type"].startswith("application/json")
    settings.DEBUG = True  # Django's technical 404 page, in the demo: the API still answers JSON
    assert manager_client.get("/api/v1/no-such-resource/")["Content-Type"] == "application/json"


@pytest.mark.django_db
def test_a_view_s_own_404_is_left_as_the_view_wrote_it(manager_client, project):
    response = manager_client.get("/api/v1/model-versions/999999/")
    assert response.status_code == 404 and response.json()["detail"] != "Not found."


@pytest.mark.django_db
def test_an_over_long_uri_is_a_414_json_error_under_the_api_and_text_elsewhere(manager_client, project, settings):
    settings.TAGRANK_MAX_URI_BYTES = 200
    long_query = "q=" + "x" * 200
    response = manager_client.get(f"/api/v1/projects/{project.slug}/images/?{long_query}")
    assert response.status_code == 414 and response.json()["code"] == "uri_too_long"
    page = manager_client.get(f"/projects/?{long_query}")
    assert page.status_code == 414 and page["Content-Type"].startswith("text/plain")
    assert manager_client.get(f"/api/v1/projects/{project.slug}/images/?q=short").status_code == 200


@pytest.mark.django_db
def test_an_id_beyond_the_database_s_integers_is_a_404_not_a_server_error(manager_client, project):
    url = f"/api/v1/projects/{project.slug}/raters/{2**80}/exclusion/"
    response = manager_client.post(url, {"excluded": True}, content_type="application/json")
    assert response.status_code == 404 and response.json() == {"detail": "Not found.", "code": "not_found"}


@pytest.mark.django_db
def test_an_error_of_a_csv_answer_is_json(manager_client, project):
    response = manager_client.get(f"/api/v1/projects/{project.slug}/tags/summary/?format=csv&min_images=0")
    assert response.status_code == 400 and response["Content-Type"] == "application/json"
