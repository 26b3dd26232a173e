"""When to stop: the expected ranking accuracy stored with each fit, the target, and pair serving stopping at it."""
import numpy as np
import pytest

from labeling.models import Comparison, Membership
from modeling.models import RankingAccuracy, TrainingSettings
from modeling.services import human_scores
from tests.clients import signed_in
from tests.modeling.dashboard_data import add_comparisons, make_images, member, thurstone_judgments, user

pytestmark = pytest.mark.django_db

NEXT = "/api/v1/projects/test-project/next-pair/"
SETTINGS = "/api/v1/projects/test-project/training-settings/"
ACCURACY = "/api/v1/projects/test-project/ranking-accuracy/"


@pytest.fixture
def judged(project):
    """20 images, 300 consistent judgments: the fitted ranking is good (expected SRCC well above 0.5)."""
    images = make_images(project, 20)
    raters = [user("judge1"), user("judge2")]
    for rater in raters:
        member(project, rater)
    add_comparisons(project, thurstone_judgments(images, np.linspace(-2, 2, 20), 300, raters,
                                                 np.random.default_rng(0), noise=0.3))
    return images


@pytest.fixture
def manager(project):
    return member(project, user("boss"), Membership.Role.MANAGER).user


@pytest.fixture
def rater(project):
    return member(project, user("rater1")).user


def test_each_stored_fit_stores_the_expected_ranking_accuracy(project, judged):
    human_scores.fit_human_scores(project)
    accuracy = RankingAccuracy.objects.get(project=project)
    assert 0.8 < accuracy.expected_srcc < 1.0
    assert accuracy.srcc_low <= accuracy.expected_srcc <= accuracy.srcc_high
    assert (accuracy.n_images, accuracy.n_comparisons, accuracy.images_per_draw) == (20, 300, 20)


def test_serving_stops_at_the_target_when_the_manager_chose_so(project, judged, rater):
    TrainingSettings.objects.create(project=project, target_srcc=0.5, stop_at_target=True)
    human_scores.fit_human_scores(project)
    project.refresh_from_db()
    assert project.campaign_completed_at is not None

    response = signed_in(rater).get(NEXT)
    assert response.status_code == 410
    # The rater learns that the campaign is complete, and nothing else: no score, no target, no setting.
    assert response.json() == {"code": "campaign_complete",
                               "detail": "This campaign is complete: no more pairs are needed. "
                                         "Thank you for your judgments!"}


def test_serving_goes_on_at_the_target_when_the_rule_is_off(project, judged, rater):
    TrainingSettings.objects.create(project=project, target_srcc=0.5, stop_at_target=False)
    human_scores.fit_human_scores(project)
    project.refresh_from_db()
    assert project.campaign_completed_at is None
    assert signed_in(rater).get(NEXT).status_code == 200


def test_serving_goes_on_below_the_target(project, judged, rater):
    TrainingSettings.objects.create(project=project, target_srcc=0.999, stop_at_target=True)
    human_scores.fit_human_scores(project)
    assert signed_in(rater).get(NEXT).status_code == 200


def test_a_lease_held_when_the_campaign_completes_is_still_judged_and_stored(project, judged, rater):
    lease = signed_in(rater).get(NEXT).json()["lease"]
    TrainingSettings.objects.create(project=project, target_srcc=0.5, stop_at_target=True)
    human_scores.fit_human_scores(project)
    before = Comparison.objects.count()
    response = signed_in(rater).post("/api/v1/projects/test-project/comparisons/",
                                      {"lease": lease, "winner": "a", "client_key": "k1"}, format="json")
    assert response.status_code == 201
    assert Comparison.objects.count() == before + 1


def test_raising_the_target_or_turning_the_rule_off_reopens_the_campaign_at_once(project, judged, manager, rater):
    boss = signed_in(manager)
    assert boss.patch(SETTINGS, {"target_srcc": 0.5, "stop_at_target": True}, format="json").status_code == 200
    human_scores.fit_human_scores(project)
    assert signed_in(rater).get(NEXT).status_code == 410

    assert boss.patch(SETTINGS, {"target_srcc": 0.999}, format="json").status_code == 200
    assert signed_in(rater).get(NEXT).status_code == 200

    assert boss.patch(SETTINGS, {"target_srcc": 0.5}, format="json").status_code == 200
    assert signed_in(rater).get(NEXT).status_code == 410
    assert boss.patch(SETTINGS, {"stop_at_target": False}, format="json").status_code == 200
    assert signed_in(rater).get(NEXT).status_code == 200


def test_the_api_gives_managers_the_estimate_and_the_target(project, judged, manager, rater):
    TrainingSettings.objects.create(project=project, target_srcc=0.5, stop_at_target=True)
    human_scores.fit_human_scores(project)
    body = signed_in(manager).get(ACCURACY).json()
    stored = RankingAccuracy.objects.get(project=project)
    assert body["expected_srcc"] == pytest.approx(stored.expected_srcc)
    assert body["interval"] == pytest.approx([stored.srcc_low, stored.srcc_high])
    assert body["interval_quantiles"] == [0.05, 0.95]
    assert (body["target_srcc"], body["stop_at_target"], body["target_reached"]) == (0.5, True, True)
    assert body["campaign_completed_at"] is not None
    assert signed_in(rater).get(ACCURACY).status_code == 403
    assert signed_in(rater).get(SETTINGS).status_code == 403


def test_a_target_is_a_share_and_stopping_needs_one(project, manager):
    boss = signed_in(manager)
    assert boss.patch(SETTINGS, {"target_srcc": 1.5}, format="json").status_code == 400
    response = boss.patch(SETTINGS, {"stop_at_target": True}, format="json")
    assert response.status_code == 400 and "stop_at_target" in response.json()
    assert not TrainingSettings.objects.filter(project=project, stop_at_target=True).exists()


def test_the_dashboard_shows_the_expected_accuracy_against_the_target(client, project, judged, manager):
    TrainingSettings.objects.create(project=project, target_srcc=0.5, stop_at_target=True)
    human_scores.fit_human_scores(project)
    client.force_login(manager)
    page = client.get("/projects/test-project/dashboard/").content.decode()
    stored = RankingAccuracy.objects.get(project=project)
    assert f'id="expected-srcc">{stored.expected_srcc:.3f}<' in page
    assert "Target: <strong>0.500</strong>, reached" in page
    assert 'id="campaign-complete"' in page


def test_the_models_page_form_sets_the_target(client, project, manager):
    client.force_login(manager)
    response = client.post("/projects/test-project/models/settings/", {
        "ranking_lambda": 1.0, "promotion_tolerance": 0.02, "train_baseline": "on",
        "target_srcc": 0.85, "stop_at_target": "on"})
    assert response.status_code == 302
    saved = TrainingSettings.objects.get(project=project)
    assert (saved.target_srcc, saved.stop_at_target) == (0.85, True)


def test_reaching_the_target_sends_the_webhook_event_once(project, judged, monkeypatch):
    from labeling.models import Webhook, WebhookDelivery

    monkeypatch.setattr("worker.dispatch.send_webhook_delivery", lambda delivery_id: None)
    Webhook.objects.create(project=project, url="https://hooks.example.com/t", secret="s",
                           events=["ranking.target_reached"])
    TrainingSettings.objects.create(project=project, target_srcc=0.5, stop_at_target=False)
    human_scores.fit_human_scores(project)
    human_scores.fit_human_scores(project)  # still above the target: no second event
    delivery = WebhookDelivery.objects.get(event="ranking.target_reached")
    stored = RankingAccuracy.objects.get(project=project)
    assert delivery.payload["expected_srcc"] == pytest.approx(stored.expected_srcc)
    assert (delivery.payload["target_srcc"], delivery.payload["campaign_complete"]) == (0.5, False)


def test_the_project_page_tells_raters_the_campaign_is_complete_and_nothing_else(client, project, judged, rater):
    TrainingSettings.objects.create(project=project, target_srcc=0.5, stop_at_target=True)
    human_scores.fit_human_scores(project)
    client.force_login(rater)
    page = client.get("/projects/test-project/").content.decode()
    assert 'id="campaign-complete"' in page and "Start rating" not in page
    assert "0.5" not in page and "dashboard" not in page
