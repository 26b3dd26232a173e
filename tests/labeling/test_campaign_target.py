"""A campaign's target of judgments: progress on the page and API, serving stopped at the target when the
manager so chose (the shared "campaign complete" flag), reopened by a raised target."""
from __future__ import annotations

import itertools

import pytest
from django.test import Client

from labeling.models import Project
from labeling.services import campaign_target, crowd_links
from modeling.services import stopping_rule

BASE = "/api/v1/projects/test-project/"
_keys = itertools.count()


def judge(client) -> int:
    pair = client.get(BASE + "next-pair/")
    if pair.status_code != 200:
        return pair.status_code
    stored = client.post(BASE + "comparisons/", {"lease": pair.json()["lease"], "winner": "a",
                                                 "client_key": f"t{next(_keys)}"}, format="json")
    assert stored.status_code == 201
    return 201


@pytest.mark.django_db
def test_serving_stops_at_the_judgment_target_and_a_raised_target_reopens(api, project, images, manager, rater):
    managers = api(manager)
    response = managers.patch(BASE, {"target_judgments": 3, "stop_at_judgment_target": True}, format="json")
    assert response.status_code == 200
    raters = api(rater)
    assert [judge(raters) for _ in range(3)] == [201, 201, 201]
    done = raters.get(BASE + "next-pair/")
    assert done.status_code == 410 and done.json()["code"] == "campaign_complete"
    target = managers.get(BASE + "progress/").json()["target"]
    assert target["kind"] == "judgments" and target["target_judgments"] == 3 and target["judgments"] == 3
    assert target["met"] and target["share"] == 1.0 and target["campaign_completed_at"] is not None

    # The model loop's own stopping rule (ranking accuracy, not set here) keeps the shared flag set.
    assert stopping_rule.apply_stopping_rule(Project.objects.get(pk=project.pk))
    assert Project.objects.get(pk=project.pk).campaign_completed_at is not None

    assert managers.patch(BASE, {"target_judgments": 5}, format="json").status_code == 200
    assert Project.objects.get(pk=project.pk).campaign_completed_at is None  # reopened at once
    assert judge(raters) == 201
    page = Client()
    page.force_login(manager)
    html = page.get(f"/projects/{project.slug}/progress/").content.decode()
    assert "4 of 5 judgments" in html and "Pairs stop being served at the target." in html


@pytest.mark.django_db
def test_a_per_image_target_without_stopping_is_reported_and_serving_goes_on(api, project, images, manager, rater):
    project.target_judgments_per_image = 0.25  # 8 images: 2 judgments
    project.save()
    raters = api(rater)
    assert [judge(raters) for _ in range(3)] == [201, 201, 201]  # past the target: still served
    target = api(manager).get(BASE + "progress/").json()["target"]
    assert target["kind"] == "judgments_per_image" and target["target_judgments"] == 2
    assert target["met"] and not target["stop_at_target"] and target["campaign_completed_at"] is None
    assert target["judgments_per_image"] == pytest.approx(3 / 8)
    assert api(rater).get(BASE + "progress/").status_code == 403  # managers only


@pytest.mark.django_db
def test_a_target_is_one_number_and_positive(api, project, manager):
    managers = api(manager)
    both = managers.patch(BASE, {"target_judgments": 10, "target_judgments_per_image": 2}, format="json")
    assert both.status_code == 400
    assert managers.patch(BASE, {"target_judgments_per_image": 0}, format="json").status_code == 400
    assert managers.patch(BASE, {"target_judgments": -1}, format="json").status_code == 400
    assert managers.patch(BASE, {"qualification_min_accuracy": 1.5}, format="json").status_code == 400
    page = Client()
    page.force_login(manager)
    form = page.post(f"/projects/{project.slug}/settings/", {
        "name": project.name, "question": project.question, "tag_vocabulary": "open", "overlap": 1,
        "gold_rate": 0, "pair_strategy": "active", "retrain_min_new_comparisons": 50, "retrain_max_age_hours": 24,
        "qualification_gold_pairs": 0, "qualification_min_accuracy": 0.8, "target_judgments": 10,
        "target_judgments_per_image": 2,
    })
    assert form.status_code == 200 and "not both" in form.content.decode()
    stored = Project.objects.get(pk=project.pk)
    assert stored.target_judgments is None and stored.target_judgments_per_image is None


@pytest.mark.django_db
def test_a_crowd_worker_gets_the_completion_code_when_the_campaign_completes(project, images, manager):
    project.target_judgments, project.stop_at_judgment_target = 1, True
    project.save()
    link = crowd_links.create_link(project, manager, quota=10, completion_code="EARLY-1")
    worker = Client()
    worker.get(f"/study/{link.token}/", {"PROLIFIC_PID": "w"})
    pair = worker.get(BASE + "next-pair/").json()
    worker.post(BASE + "comparisons/", {"lease": pair["lease"], "winner": "b", "client_key": "k"},
                content_type="application/json")
    done = worker.get(BASE + "next-pair/").json()
    assert done["code"] == "campaign_complete" and done["completion_code"] == "EARLY-1"
    assert campaign_target.progress(project)["met"]
