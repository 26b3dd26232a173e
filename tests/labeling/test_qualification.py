"""Qualification through the REST API: gold pairs first, a failing rater stopped and left out of the human
scores, the running gold check pausing a rater, and a manager reinstating them."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from labeling.models import Comparison, GoldPair, Membership, PairLease, RaterEvent
from modeling.services import human_scores

NEXT = "/api/v1/projects/test-project/next-pair/"
COMPARISONS = "/api/v1/projects/test-project/comparisons/"
_keys = itertools.count()


@pytest.fixture
def qualifying_project(project, images, monkeypatch):
    """Eight images, six gold pairs; qualification: 4 gold pairs at 75 %."""
    monkeypatch.setattr("worker.dispatch.send_metrics_refresh", lambda project_id: None)
    project.qualification_gold_pairs, project.qualification_min_accuracy, project.gold_rate = 4, 0.75, 0.1
    project.save()
    for first, second in [(0, 1), (2, 3), (4, 5), (6, 7), (0, 2), (1, 3)]:
        GoldPair.objects.create(project=project, image_a=images[first], image_b=images[second], expected="a")
    return project


def judge(client, *, right: bool) -> dict:
    """Ask for a pair and answer it: a gold pair rightly or wrongly, an ordinary one with 'a'. Returns the pair."""
    response = client.get(NEXT)
    assert response.status_code == 200, response.content
    pair = response.json()
    lease = PairLease.objects.get(token=pair["lease"])
    winner = "a"
    if lease.gold_id is not None:
        expected = lease.gold.expected_for(lease.image_a_id)
        winner = expected if right else ("b" if expected == "a" else "a")
    stored = client.post(COMPARISONS, {"lease": pair["lease"], "winner": winner, "client_key": f"q{next(_keys)}"},
                         format="json")
    assert stored.status_code == 201, stored.content
    pair["gold"] = lease.gold_id is not None
    return pair


@pytest.mark.django_db
def test_a_rater_below_the_threshold_never_gets_an_ordinary_pair_and_does_not_move_the_scores(
        api, qualifying_project, rater, make_member):
    project = qualifying_project
    careful = api(rater)
    served = [judge(careful, right=True) for _ in range(4)]
    assert all(pair["gold"] for pair in served)  # the qualification round: gold pairs only
    assert Membership.objects.get(project=project, user=rater).qualification == "passed"
    ordinary = [judge(careful, right=True) for _ in range(6)]
    assert not all(pair["gold"] for pair in ordinary)  # qualified: ordinary pairs now
    before = human_scores.fit_human_scores(project).posterior.mean

    careless_user = make_member(project, "careless", "rater")
    careless = api(careless_user)
    answered = [judge(careless, right=k == 0) for k in range(4)]  # 1 of 4 right: 25 % < 75 %
    assert all(pair["gold"] for pair in answered)
    membership = Membership.objects.get(project=project, user=careless_user)
    assert membership.qualification == "failed"
    event = RaterEvent.objects.get(project=project, user=careless_user)
    assert event.kind == "failed" and "1 of 4" in event.reason

    refused = careless.get(NEXT)
    assert refused.status_code == 403 and refused.json()["code"] == "not_qualified"
    assert "Thank you" in refused.json()["detail"] and "75" not in refused.json()["detail"]  # polite, no setting
    assert careless.get(NEXT).status_code == 403
    leases = PairLease.objects.filter(project=project, rater=careless_user)
    assert leases.count() == 4 and all(lease.gold_id is not None for lease in leases)  # never an ordinary pair

    # Their four judgments are stored, and left out of the human scores.
    assert Comparison.objects.filter(project=project, rater=careless_user).count() == 4
    after = human_scores.fit_human_scores(project)
    assert careless_user.pk not in set(after.reliability.rater_ids.tolist())
    np.testing.assert_allclose(after.posterior.mean, before, atol=1e-4)
    assert not human_scores.human_scores_stale(project)


@pytest.mark.django_db
def test_the_running_gold_check_pauses_a_rater_and_a_manager_reinstates_them(api, qualifying_project, rater, manager):
    project = qualifying_project
    project.gold_rate = 1.0  # every pair a gold pair while any is left: the running check sees each answer
    project.save()
    client = api(rater)
    for _ in range(4):
        judge(client, right=True)
    assert Membership.objects.get(project=project, user=rater).qualification == "passed"
    judge(client, right=False)  # 4 of 5 right: 80 %, still fine
    assert Membership.objects.get(project=project, user=rater).paused_at is None
    judge(client, right=False)  # 4 of 6: 67 % < 75 %: paused
    membership = Membership.objects.get(project=project, user=rater)
    assert membership.paused_at is not None and "67%" in membership.pause_reason
    assert RaterEvent.objects.filter(project=project, user=rater, kind="paused").exists()
    refused = client.get(NEXT)
    assert refused.status_code == 403 and refused.json()["code"] == "rater_paused"
    assert rater.pk in human_scores.excluded_rater_ids(project)

    # A rater may not reinstate themself; the manager may, and the rater's judgments count again.
    assert client.post(f"/api/v1/projects/test-project/raters/{rater.pk}/reinstate/").status_code == 403
    answer = api(manager).post(f"/api/v1/projects/test-project/raters/{rater.pk}/reinstate/")
    assert answer.status_code == 200 and answer.json()["paused_at"] is None
    assert RaterEvent.objects.filter(project=project, user=rater, kind="reinstated").get().by == manager
    assert rater.pk not in human_scores.excluded_rater_ids(project)
    assert client.get(NEXT).status_code == 200
    assert api(manager).post("/api/v1/projects/test-project/raters/999999/reinstate/").status_code == 404


@pytest.mark.django_db
def test_the_progress_page_shows_the_standing_and_reinstates(client, qualifying_project, rater, manager):
    project = qualifying_project
    membership = Membership.objects.get(project=project, user=rater)
    membership.qualification, membership.paused_at, membership.pause_reason = "passed", "2026-01-01T00:00Z", "why"
    membership.save()
    client.force_login(manager)
    page = client.get(f"/projects/{project.slug}/progress/").content.decode()
    assert "paused" in page and "why" in page and "Reinstate" in page
    response = client.post(f"/projects/{project.slug}/raters/{membership.pk}/reinstate/")
    assert response.status_code == 302
    assert Membership.objects.get(pk=membership.pk).paused_at is None
