"""A campaign's target of judgments: progress on the page and API, serving stopped at the target when the
manager so chose (the shared "campaign complete" flag), reopened by a raised target."""
from __future__ import annotations

import itertools
import math

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


def image_rows(project, n: int, archived: int = 0) -> None:
    """``n`` image rows (no files: the target counts rows), the last ``archived`` of them archived."""
    from django.utils import timezone

    from labeling.models import Image

    Image.objects.bulk_create([
        Image(project=project, file=f"images/{k}.png", original_name=f"{k}.png", sha256=f"{k:064x}", width=1, height=1,
              archived_at=timezone.now() if k >= n - archived else None) for k in range(n)])


@pytest.mark.django_db
@pytest.mark.parametrize("per_image, judgments, met", [
    (0.25, 1, False), (0.25, 2, False), (0.25, 3, True),  # 10 active images: ceil(2.5) = 3 judgments
    (1.5, 14, False), (1.5, 15, True),                     # 15 judgments, not 17 (the archived image does not count)
    (0.1, 0, False), (0.1, 1, True),                       # ceil(0.1 * 10) = 1
    (0.17, 1, False), (0.17, 2, True),                     # ceil(1.7000000000000002) = 2
    (3.0, 20, False), (3.0, 29, False), (3.0, 30, True), (3.0, 31, True),  # 20: k = 8 of the 10 images decide
    (1e-17, 0, False), (1e-17, 1, True),                   # 1: k = 10^17 + 2, a LIMIT past every image
])
def test_a_per_image_target_is_met_as_the_full_count_says(project, monkeypatch, per_image, judgments, met):
    """The judgment path counts at most floor(judgments / per_image) + 2 images: the same answer as the target
    from the count of every active image, ``judgments >= ceil(per_image * images)``, on either side of it."""
    image_rows(project, 11, archived=1)
    project.target_judgments_per_image, project.stop_at_judgment_target = per_image, True
    project.save()
    monkeypatch.setattr(campaign_target.rater_counts, "project_total", lambda project: judgments)
    assert campaign_target.target_judgments(project) == math.ceil(per_image * 10)
    assert campaign_target.judgment_target_met(project) is met
    assert campaign_target.progress(project)["met"] is met


@pytest.mark.django_db
def test_the_judgment_path_counts_at_most_k_images(project, monkeypatch):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    image_rows(project, 50)
    project.target_judgments_per_image, project.stop_at_judgment_target = 2.0, True
    project.save()
    monkeypatch.setattr(campaign_target.rater_counts, "project_total", lambda project: 7)
    with CaptureQueriesContext(connection) as queries:
        assert not campaign_target.judgment_target_met(project)
    counts = [q["sql"] for q in queries.captured_queries if "labeling_image" in q["sql"]]
    assert len(counts) == 1 and "LIMIT 5" in counts[0]  # floor(7 / 2) + 2 images, not 50

    project.target_judgments_per_image = None
    project.target_judgments = 7  # a total target: no image counted
    with CaptureQueriesContext(connection) as queries:
        assert campaign_target.judgment_target_met(project)
    assert not [q for q in queries.captured_queries if "labeling_image" in q["sql"]]
