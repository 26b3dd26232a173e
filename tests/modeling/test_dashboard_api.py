"""The agreement API, the rater exclusion, and the dashboard page: stored numbers, permissions, CSV."""
import csv
import io

import krippendorff
import numpy as np
import pytest
from django.urls import reverse
from rest_framework.test import APIClient
from scipy import stats

from labeling.models import Comparison, Membership, Project
from labeling.services import invites
from modeling.ml.metrics import pairwise_agreement
from modeling.models import AgreementReport, ImageScore
from modeling.services import agreement, human_scores, report_fit_start
from modeling.services.datasets import holdout_comparisons
from tests.modeling.dashboard_data import build_rated_project, member, user

N_RESAMPLES = 200


@pytest.fixture
def enqueued(monkeypatch):
    """Calls to send_metrics_refresh, instead of messages to the broker."""
    calls = []
    monkeypatch.setattr("worker.dispatch.send_metrics_refresh", calls.append)
    return calls


@pytest.fixture
def boss(project):
    manager = user("boss")
    member(project, manager, role=Membership.Role.MANAGER)
    return manager


@pytest.fixture
def rated(project):
    return build_rated_project(project)


@pytest.fixture
def report(project, rated):
    return agreement.compute_and_store_report(project, n_resamples=N_RESAMPLES)


def api_as(account=None) -> APIClient:
    client = APIClient()
    if account is not None:
        client.force_authenticate(account)
    return client


def agreement_url(project):
    return f"/api/v1/projects/{project.slug}/agreement/"


# --- The agreement endpoint -----------------------------------------------------------------------


@pytest.mark.django_db
def test_the_endpoints_numbers_match_ones_computed_directly(project, boss, rated, report):
    body = api_as(boss).get(agreement_url(project)).json()
    assert body["report_id"] == report.pk and body["model_version"] == rated["version"].pk

    # Krippendorff's alpha straight from the rows: each honest rater's judgment of each unordered pair.
    rows = Comparison.objects.filter(project=project).values_list("image_a_id", "image_b_id", "outcome", "rater_id")
    judgments: dict[tuple, dict] = {}
    raters = sorted({row[3] for row in rows})
    for image_a, image_b, outcome, rater in rows.order_by("id"):
        low_wins = {"a": image_a < image_b, "b": image_b < image_a}.get(outcome)
        value = 1 if outcome == "tie" else (0 if low_wins else 2)
        judgments.setdefault((min(image_a, image_b), max(image_a, image_b)), {})[rater] = value
    reliability = np.array([[unit.get(rater, np.nan) for unit in judgments.values()] for rater in raters])
    expected_alpha = krippendorff.alpha(reliability_data=reliability, level_of_measurement="nominal")
    assert body["human"]["alpha"]["value"] == pytest.approx(expected_alpha)

    # Held-out pairwise agreement with the model loop's held-out set and modeling.ml.metrics.
    scores = dict(ImageScore.objects.filter(model_version=rated["version"]).values_list("image_id", "mean"))
    held = list(holdout_comparisons(Comparison.objects.filter(project=project))
                .values_list("image_a_id", "image_b_id", "outcome"))
    ids = sorted(scores)
    index = {image_id: position for position, image_id in enumerate(ids)}
    expected_agreement = pairwise_agreement(
        np.array([scores[image_id] for image_id in ids]), [index[a] for a, _, _ in held], [index[b] for _, b, _ in held],
        [{"a": 1.0, "b": 0.0, "tie": 0.5}[outcome] for _, _, outcome in held],
    )  # fmt: skip
    version = body["model"]["versions"][0]
    assert version["heldout_agreement"]["value"] == pytest.approx(expected_agreement)
    assert version["heldout_agreement"]["n"] == len(held)

    # SRCC against the comparisons-only human fit.
    fit = human_scores.fit_project_posterior(project, use_model_prior=False)
    compared = fit.counts > 0
    model = np.array([scores[image_id] for image_id in fit.image_ids])
    expected_srcc = stats.spearmanr(model[compared], fit.posterior.mean[compared])[0]
    assert version["human_correlation"]["srcc"]["value"] == pytest.approx(expected_srcc, abs=1e-6)

    # And everything equals a fresh direct computation with the same seed, on a fresh worker (a warm one starts the
    # comparisons-only fit from the last report's, and agrees to the fit's tolerance: test_agreement.py).
    report_fit_start.forget()
    direct = agreement.compute_report_data(project, n_resamples=N_RESAMPLES)
    for key in ("human", "raters", "model", "charts", "coverage", "totals", "encoder"):
        assert body[key] == direct[key], key


@pytest.mark.django_db
def test_agreement_endpoint_permissions(project, boss, rated, report, enqueued):
    rater = rated["raters"][0]
    outsider = user("outsider")
    other = Project.objects.create(name="Other", slug="other")
    member(other, outsider, role=Membership.Role.MANAGER)

    anonymous = api_as().get(agreement_url(project))
    assert anonymous.status_code == 401
    assert api_as(rater).get(agreement_url(project)).status_code == 403
    assert api_as(outsider).get(agreement_url(project)).status_code == 404
    assert api_as(boss).get(agreement_url(project)).status_code == 200
    assert api_as(outsider).get(agreement_url(other)).json()["code"] == "no_report"

    assert api_as().post(agreement_url(project)).status_code == 401
    assert api_as(rater).post(agreement_url(project)).status_code == 403
    assert enqueued == []
    assert api_as(boss).post(agreement_url(project)).status_code == 202
    assert enqueued == [project.pk]


@pytest.mark.django_db
def test_rater_exclusion_api(project, boss, rated, enqueued):
    lefty = rated["lefty"]
    url = f"/api/v1/projects/{project.slug}/raters/{lefty.pk}/exclusion/"
    response = api_as(boss).post(url, {"excluded": True}, format="json")
    assert response.status_code == 200
    assert response.json() == {"user_id": lefty.pk, "username": "lefty", "excluded": True}
    assert Membership.objects.get(project=project, user=lefty).excluded_from_training
    assert enqueued == [project.pk]

    assert api_as(boss).post(url, {"excluded": False}, format="json").json()["excluded"] is False
    assert not Membership.objects.get(project=project, user=lefty).excluded_from_training

    assert api_as(boss).post(url, {}, format="json").status_code == 400
    assert api_as(boss).post(url, {"excluded": "perhaps"}, format="json").status_code == 400
    stranger = user("stranger")
    assert api_as(boss).post(f"/api/v1/projects/{project.slug}/raters/{stranger.pk}/exclusion/",
                             {"excluded": True}, format="json").status_code == 404
    assert api_as(rated["raters"][0]).post(url, {"excluded": True}, format="json").status_code == 403
    assert api_as().post(url, {"excluded": True}, format="json").status_code == 401
    assert not Membership.objects.get(project=project, user=lefty).excluded_from_training


@pytest.mark.django_db
def test_excluding_a_rater_changes_the_next_report(project, boss, rated, report):
    invites.set_rater_excluded(project, rated["lefty"].pk, True, enqueue=False)
    fresh = agreement.compute_and_store_report(project, only_if_changed=True, n_resamples=N_RESAMPLES)
    assert fresh is not None
    assert fresh.data["totals"]["comparisons_used"] == report.data["totals"]["comparisons_used"] - 30
    lefty = next(row for row in fresh.data["raters"] if row["username"] == "lefty")
    assert lefty["excluded"] and lefty["comparisons"] == 30  # still measured, no longer used


# --- The dashboard page ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_dashboard_is_for_managers(client, project, boss, rated, report):
    url = reverse("project-dashboard", args=[project.slug])
    response = client.get(url)
    assert response.status_code == 302 and response.url.startswith(reverse("login"))
    client.force_login(rated["raters"][0])
    assert client.get(url).status_code == 403
    client.force_login(boss)
    assert client.get(url).status_code == 200


@pytest.mark.django_db
def test_dashboard_reads_the_stored_report_and_shows_its_numbers(client, project, boss, rated, report,
                                                                  django_assert_max_num_queries):
    client.force_login(boss)
    url = reverse("project-dashboard", args=[project.slug])
    with django_assert_max_num_queries(12):  # reads a report: no pass over comparisons or scores
        response = client.get(url)
    html = response.content.decode()
    data = report.data
    version = data["model"]["versions"][0]
    assert f'{version["heldout_agreement"]["value"]:.3f}' in html
    assert f'{data["human"]["alpha"]["value"]:.3f}' in html
    assert f'{version["human_correlation"]["srcc"]["value"]:.3f}' in html
    assert html.count('<svg class="chart"') == 5
    assert html.count('<circle class="point scatter-point"') == 40  # one per image with comparisons
    assert html.count('<circle class="point"') == 1  # the one model version in the agreement chart
    assert html.count('data-image-id="') == 40  # every scatter point opens its image
    assert "Always one side" in html and "Too fast" in html  # lefty's flags
    assert "encoder: tiny" in html and "for demonstration only" in html
    assert "https://" not in html and "http://" not in html.replace("http://www.w3.org", "")  # nothing external


@pytest.mark.django_db
def test_dashboard_shows_the_encoder_of_the_scores_in_view(client, project, boss, settings):
    settings.TAGRANK_ENCODER = "tiny"
    build_rated_project(project, encoder_id="openai/clip-vit-base-patch32")
    agreement.compute_and_store_report(project, n_resamples=50)
    client.force_login(boss)
    html = client.get(reverse("project-dashboard", args=[project.slug])).content.decode()
    assert "encoder: openai/clip-vit-base-patch32" in html
    assert "for demonstration only" not in html


@pytest.mark.django_db
def test_dashboard_without_a_report_offers_to_compute_one(client, project, boss, enqueued):
    client.force_login(boss)
    html = client.get(reverse("project-dashboard", args=[project.slug])).content.decode()
    assert 'id="no-report"' in html and "Recompute now" in html
    response = client.post(reverse("project-dashboard-recompute", args=[project.slug]))
    assert response.status_code == 302 and enqueued == [project.pk]
    assert client.get(reverse("project-dashboard-recompute", args=[project.slug])).status_code == 405


@pytest.mark.django_db
def test_dashboard_exclusion_button_is_reversible(client, project, boss, rated, report, enqueued):
    client.force_login(boss)
    lefty = rated["lefty"]
    url = reverse("project-rater-exclusion", args=[project.slug, lefty.pk])
    response = client.post(url, {"excluded": "1"})
    assert response.status_code == 302 and response.url.endswith("#raters")
    assert Membership.objects.get(project=project, user=lefty).excluded_from_training
    html = client.get(reverse("project-dashboard", args=[project.slug])).content.decode()
    assert "Include again" in html
    client.post(url, {"excluded": "0"})
    assert not Membership.objects.get(project=project, user=lefty).excluded_from_training
    assert enqueued == [project.pk, project.pk]
    client.force_login(rated["raters"][1])
    assert client.post(url, {"excluded": "1"}).status_code == 403


@pytest.mark.django_db
def test_every_chart_and_table_has_a_csv(client, project, boss, rated, report):
    from modeling.dashboard_views import CSV_TABLES

    client.force_login(boss)
    for table in CSV_TABLES:
        response = client.get(reverse("project-dashboard-csv", args=[project.slug, table]))
        assert response.status_code == 200, table
        assert response["Content-Type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(response.content.decode())))
        if table != "poster":  # no reference ratings in this project
            assert rows, table
    scatter = list(csv.DictReader(io.StringIO(
        client.get(reverse("project-dashboard-csv", args=[project.slug, "scatter"])).content.decode()
    )))  # fmt: skip
    points = report.data["charts"]["scatter"]["points"]
    assert [int(row["image_id"]) for row in scatter] == [point["image_id"] for point in points]
    assert float(scatter[0]["model"]) == pytest.approx(points[0]["model"])
    assert client.get(reverse("project-dashboard-csv", args=[project.slug, "nonsense"])).status_code == 404


@pytest.mark.django_db
def test_only_recent_reports_are_kept(project, rated):
    for _ in range(agreement.REPORTS_KEPT + 2):
        agreement.compute_and_store_report(project, n_resamples=10)
    assert AgreementReport.objects.filter(project=project).count() == agreement.REPORTS_KEPT


# --- The tasks ------------------------------------------------------------------------------------


def test_metrics_tasks_are_named_routed_to_default_and_scheduled():
    from worker import app
    from worker.schedule import BEAT_SCHEDULE

    app.loader.import_default_modules()
    for name in ("tagrank.metrics.fit_human_scores", "tagrank.metrics.compute_agreement"):
        task = app.tasks[name]
        assert task.acks_late and task.time_limit and task.soft_time_limit < task.time_limit
        assert task.max_retries and task.retry_backoff_max
        assert app.amqp.router.route({}, name)["queue"].name == "default"
        assert any(entry["task"] == name for entry in BEAT_SCHEDULE.values())


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_send_metrics_refresh_fits_and_reports_on_a_real_worker(live_worker, project):
    import time

    from modeling.models import HumanScore
    import worker.dispatch as dispatch

    build_rated_project(project)
    dispatch.send_metrics_refresh(project.pk)  # outside a transaction: sent at once
    deadline = time.monotonic() + 120
    while not AgreementReport.objects.filter(project=project).exists():
        assert time.monotonic() < deadline, f"no report after 120s; worker log:\n{live_worker.log()}"
        time.sleep(0.5)
    report = agreement.latest_report(project)
    assert HumanScore.objects.filter(project=project).count() == 40  # the fit ran first, in the chain
    assert report.data["totals"]["comparisons"] == 1030
    assert report.data["model"]["versions"][0]["heldout_agreement"]["value"] is not None
