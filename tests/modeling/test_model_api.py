"""The model-loop API and the Models page: access rules, retrain (202 + run), runs, promote and rollback."""
from __future__ import annotations

import pytest
from django.urls import reverse

from modeling.models import ModelVersion, Promotion, TrainingRun
from modeling.services import scoring
from tests.modeling.test_promotion_rollback import trained_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def as_user(client):
    def login(user):
        client.force_login(user)
        return client

    return login


@pytest.fixture
def outsider(make_user):
    return make_user("outsider")


@pytest.fixture
def versions(project, images):
    first, second = trained_version(project), trained_version(project)
    first.metrics = {"pairwise_agreement": 0.71, "baseline_pairwise_agreement": 0.64}
    first.save()
    return first, second


def api(name, **kwargs):
    return reverse(name, kwargs=kwargs)


def test_anonymous_callers_get_401(client, project, versions):
    run = TrainingRun.objects.create(project=project)
    for method, url in [
        ("get", api("api-model-versions", slug=project.slug)),
        ("post", api("api-retrain", slug=project.slug)),
        ("get", api("api-training-run", run_id=run.pk)),
        ("post", api("api-model-version-promote", version_id=versions[0].pk)),
        ("post", api("api-model-version-rollback", version_id=versions[0].pk)),
    ]:
        assert getattr(client, method)(url).status_code == 401, url


def test_outsiders_get_404_and_raters_may_neither_read_nor_act(as_user, project, rater, outsider, versions):
    run = TrainingRun.objects.create(project=project)
    client = as_user(outsider)
    assert client.get(api("api-model-versions", slug=project.slug)).status_code == 404
    assert client.get(api("api-training-run", run_id=run.pk)).status_code == 404
    assert client.post(api("api-model-version-promote", version_id=versions[0].pk), {"reason": "x"}).status_code == 404

    client = as_user(rater)  # raters judge blind: versions and runs reveal scores
    assert client.get(api("api-model-versions", slug=project.slug)).status_code == 403
    assert client.get(api("api-model-version", version_id=versions[0].pk)).status_code == 403
    assert client.get(api("api-training-runs", slug=project.slug)).status_code == 403
    assert client.get(api("api-training-run", run_id=run.pk)).status_code == 403
    assert client.get(api("api-promotions", slug=project.slug)).status_code == 403
    assert client.post(api("api-retrain", slug=project.slug)).status_code == 403
    assert client.post(api("api-model-version-promote", version_id=versions[0].pk), {"reason": "x"}).status_code == 403
    assert client.post(api("api-model-version-rollback", version_id=versions[0].pk), {"reason": "x"}).status_code == 403
    assert not Promotion.objects.exists() and TrainingRun.objects.count() == 1


def test_retrain_returns_202_with_the_run_and_only_one_run_is_open(as_user, project, manager):
    client = as_user(manager)
    first = client.post(api("api-retrain", slug=project.slug))
    assert first.status_code == 202
    body = first.json()
    assert body["created"] is True and body["status"] == "queued"
    run = TrainingRun.objects.get(pk=body["training_run"])
    assert run.requested_by == manager and run.trigger == TrainingRun.Trigger.MANUAL
    again = client.post(api("api-retrain", slug=project.slug))
    assert again.status_code == 202 and again.json() == {**body, "created": False}

    detail = client.get(body["url"]).json()
    assert detail["id"] == run.pk and detail["status"] == "queued" and detail["progress"] == 0
    assert set(detail) >= {"log", "error", "stage", "heartbeat_at", "model_version", "requested_by"}
    assert detail["requested_by"] == manager.username
    listing = client.get(api("api-training-runs", slug=project.slug)).json()
    assert [r["id"] for r in listing["results"]] == [run.pk]


def test_promote_needs_a_reason_and_is_logged(as_user, project, manager, versions):
    first, _ = versions
    client = as_user(manager)
    url = api("api-model-version-promote", version_id=first.pk)
    assert client.post(url, {}, content_type="application/json").status_code == 400
    response = client.post(url, {"reason": "best held-out agreement"}, content_type="application/json")
    assert response.status_code == 202
    body = response.json()
    assert body["kind"] == "manual" and body["decided_by"] == manager.username and body["to_version"] == first.pk
    first.refresh_from_db()
    assert first.status == ModelVersion.Status.SCORING and not first.is_active
    detail = client.get(api("api-model-version", version_id=first.pk)).json()
    assert detail["scoring"]["total"] == 8 and detail["scoring"]["done"] == 0
    assert detail["metrics"]["pairwise_agreement"] == 0.71

    scoring.rescore(first.pk)
    detail = client.get(api("api-model-version", version_id=first.pk)).json()
    assert detail["is_active"] and detail["status"] == "active" and detail["scoring"]["fraction"] == 1.0
    log = client.get(api("api-promotions", slug=project.slug)).json()["results"]
    assert log[0]["reason"] == "best held-out agreement" and log[0]["completed_at"]


def test_rollback_and_refusals_answer_409(as_user, project, manager, versions):
    first, second = versions
    client = as_user(manager)
    refused = client.post(api("api-model-version-rollback", version_id=second.pk), {"reason": "x"})
    assert refused.status_code == 409 and "never active" in refused.json()["detail"]
    for version in (first, second):
        client.post(api("api-model-version-promote", version_id=version.pk), {"reason": "go"})
        scoring.rescore(version.pk)
    assert client.post(api("api-model-version-promote", version_id=second.pk), {"reason": "again"}).status_code == 409
    back = client.post(api("api-model-version-rollback", version_id=first.pk), {"reason": "v2 ranks blur too high"})
    assert back.status_code == 202 and back.json()["kind"] == "rollback" and back.json()["from_version"] == second.pk
    scoring.rescore(first.pk)
    first.refresh_from_db()
    assert first.is_active
    ModelVersion.objects.filter(pk=second.pk).update(status=ModelVersion.Status.FAILED, is_active=False)
    assert client.post(api("api-model-version-promote", version_id=second.pk), {"reason": "x"}).status_code == 409


def test_the_openapi_schema_describes_the_model_endpoints(as_user, manager):
    schema = as_user(manager).get("/api/schema/", {"format": "json"}).json()
    paths = schema["paths"]
    assert "202" in paths["/api/v1/projects/{slug}/retrain/"]["post"]["responses"]
    promote = paths["/api/v1/model-versions/{version_id}/promote/"]["post"]
    assert {"202", "409", "401", "403", "404"} <= set(promote["responses"])
    assert "requestBody" in promote
    assert "/api/v1/training-runs/{run_id}/" in paths and "/api/v1/projects/{slug}/model-versions/" in paths


# --- The Models page -----------------------------------------------------------------------------


def test_models_page_shows_versions_the_active_one_the_run_and_the_last_failure(as_user, project, rater, manager, versions):
    first, second = versions
    client = as_user(manager)
    client.post(api("api-model-version-promote", version_id=first.pk), {"reason": "go"})
    scoring.rescore(first.pk)
    TrainingRun.objects.create(project=project, status=TrainingRun.Status.FAILED, error="ValueError: no data\n...",
                               failure_kind=TrainingRun.Failure.ERROR, finished_at=first.created_at)
    TrainingRun.objects.create(project=project, status=TrainingRun.Status.RUNNING, progress=0.4, stage="training the tags model")
    page = client.get(reverse("project-models", kwargs={"slug": project.slug}))
    html = page.content.decode()
    assert page.status_code == 200
    assert f'<strong id="active-version-id">{first.pk}</strong>' in html and first.encoder_id in html
    assert 'value="0.4"' in html and "training the tags model" in html
    assert "ValueError: no data" in html
    assert f'id="version-{second.pk}"' in html and "0.710" in html
    assert 'id="retrain-now"' in html and "Promote" in html

    assert as_user(rater).get(reverse("project-models", kwargs={"slug": project.slug})).status_code == 403


def test_models_page_buttons_retrain_promote_and_roll_back(as_user, project, manager, rater, versions):
    first, second = versions
    client = as_user(manager)
    url = reverse("project-models-retrain", kwargs={"slug": project.slug})
    assert client.post(url).status_code == 302
    assert TrainingRun.objects.filter(project=project, requested_by=manager).count() == 1
    client.post(url)
    assert TrainingRun.objects.filter(project=project).count() == 1  # one open run at a time

    promote = reverse("project-models-promote", kwargs={"slug": project.slug, "version_id": first.pk})
    client.post(promote, {"reason": "from the page"})
    assert Promotion.objects.get(to_version=first).decided_by == manager
    scoring.rescore(first.pk)
    client.post(reverse("project-models-promote", kwargs={"slug": project.slug, "version_id": second.pk}), {"reason": "next"})
    scoring.rescore(second.pk)
    rollback = reverse("project-models-rollback", kwargs={"slug": project.slug, "version_id": first.pk})
    client.post(rollback, {"reason": "back"})
    assert Promotion.objects.filter(kind="rollback", to_version=first, reason="back").exists()

    rater_client = as_user(rater)
    assert rater_client.post(url).status_code == 403
    assert rater_client.post(promote, {"reason": "x"}).status_code == 403


def test_lambda_is_a_per_project_training_setting_in_the_api_the_page_and_training(as_user, project, rater, manager):
    from modeling.services import training_runs as training

    url = api("api-training-settings", slug=project.slug)
    client = as_user(rater)
    assert client.get(url).status_code == 403                                       # raters judge blind
    assert client.patch(url, {"ranking_lambda": 3}, content_type="application/json").status_code == 403
    client = as_user(manager)
    assert client.get(url).json()["ranking_lambda"] == 1.0                       # the default
    assert client.patch(url, {"ranking_lambda": -1}, content_type="application/json").status_code == 400
    assert client.patch(url, {"ranking_lambda": 11}, content_type="application/json").status_code == 400
    assert client.patch(url, {"promotion_tolerance": -1.1}, content_type="application/json").status_code == 400
    changed = client.patch(url, {"ranking_lambda": 2.5}, content_type="application/json")
    assert changed.status_code == 200 and changed.json()["ranking_lambda"] == 2.5
    assert training.train_config(project).lam == 2.5                               # what the next run trains with

    page = client.get(reverse("project-models", kwargs={"slug": project.slug})).content.decode()
    assert 'id="training-settings"' in page and 'value="2.5"' in page
    client.post(reverse("project-models-settings", kwargs={"slug": project.slug}),
                {"ranking_lambda": "0.5", "promotion_tolerance": "0.02", "train_baseline": "on"})
    assert training.train_config(project).lam == 0.5
    refused = client.post(reverse("project-models-settings", kwargs={"slug": project.slug}),
                          {"ranking_lambda": "-3", "promotion_tolerance": "0.02"}, follow=True)
    assert "not saved" in refused.content.decode() and training.train_config(project).lam == 0.5
    rater_post = as_user(rater).post(reverse("project-models-settings", kwargs={"slug": project.slug}),
                                     {"ranking_lambda": "9", "promotion_tolerance": "0.02"})
    assert rater_post.status_code == 403 and training.train_config(project).lam == 0.5
