"""Several criteria per pair: one lease, one submit with every answer (idempotent), per-criterion reads;
one-question projects unchanged."""
import json

import pytest

from labeling.models import Comparison, CriterionAnswer, Image

CRITERIA = [{"key": "alignment", "question": "Which matches the prompt better?"},
            {"key": "overall", "question": "Which is better overall?"}]
NEXT = "/api/v1/projects/test-project/next-pair/"
SUBMIT = "/api/v1/projects/test-project/comparisons/"


@pytest.fixture
def two_criteria(project, images):
    project.criteria = CRITERIA
    project.save()
    return project


@pytest.mark.django_db
def test_one_lease_serves_every_question_and_one_submit_stores_every_answer(api, two_criteria, rater):
    pair = api(rater).get(NEXT).json()
    assert pair["criteria"] == CRITERIA
    body = {"lease": pair["lease"], "answers": {"alignment": "b", "overall": "a"}, "client_key": "k1"}
    stored = api(rater).post(SUBMIT, body, format="json")
    assert stored.status_code == 201 and stored.json()["answers"] == {"alignment": "b", "overall": "a"}
    comparison = Comparison.objects.get()
    assert comparison.outcome == "a"  # the primary criterion ("overall") is the judgment's outcome
    assert dict(comparison.answers.values_list("criterion", "outcome")) == {"alignment": "b", "overall": "a"}
    replay = api(rater).post(SUBMIT, body, format="json")
    assert replay.status_code == 200 and replay.json()["id"] == comparison.pk
    assert Comparison.objects.count() == 1 and CriterionAnswer.objects.count() == 2


@pytest.mark.django_db
def test_missing_extra_or_refused_answers_are_400s_and_store_nothing(api, two_criteria, rater):
    lease = api(rater).get(NEXT).json()["lease"]
    for answers in ({"alignment": "a"}, {"alignment": "a", "overall": "b", "beauty": "a"}, {"alignment": "x", "overall": "a"}):
        answer = api(rater).post(SUBMIT, {"lease": lease, "answers": answers, "client_key": "k"}, format="json")
        assert answer.status_code == 400
    answer = api(rater).post(SUBMIT, {"lease": lease, "winner": "a", "client_key": "k"}, format="json")
    assert answer.status_code == 400 and "alignment" in answer.json()["detail"]
    answer = api(rater).post(SUBMIT, {"lease": lease, "answers": {"alignment": "bad", "overall": "a"},
                                      "client_key": "k"}, format="json")
    assert answer.status_code == 400  # "both bad" is not allowed in this project
    assert not Comparison.objects.exists() and not CriterionAnswer.objects.exists()


@pytest.mark.django_db
def test_one_question_projects_answer_as_before(api, project, images, rater):
    pair = api(rater).get(NEXT).json()
    assert "criteria" not in pair
    stored = api(rater).post(SUBMIT, {"lease": pair["lease"], "winner": "b", "client_key": "k1"}, format="json")
    assert stored.status_code == 201 and "answers" not in stored.json()
    assert api(rater).post(SUBMIT, {"lease": pair["lease"], "client_key": "k2"}, format="json").json() == {
        "winner": ["This field is required."]}
    refused = api(rater).post(SUBMIT, {"lease": pair["lease"], "answers": {"overall": "a"}, "client_key": "k3"},
                              format="json")
    assert refused.status_code == 400
    assert not CriterionAnswer.objects.exists()


@pytest.mark.django_db
def test_managers_set_two_to_four_criteria_and_bad_lists_are_400s(api, project, manager):
    url = f"/api/v1/projects/{project.slug}/"
    assert api(manager).patch(url, {"criteria": CRITERIA}, format="json").json()["criteria"] == CRITERIA
    for bad in ([CRITERIA[0]], CRITERIA * 2, [{"key": "Bad Key", "question": "Q?"}, CRITERIA[1]],
                [{"key": "a", "question": ""}, CRITERIA[1]], "alignment"):
        assert api(manager).patch(url, {"criteria": bad}, format="json").status_code == 400
    assert api(manager).patch(url, {"criteria": []}, format="json").json()["criteria"] == []


@pytest.mark.django_db
def test_the_project_form_takes_one_criterion_a_line(client, project, manager):
    from django.urls import reverse

    client.force_login(manager)
    page = client.get(reverse("project-edit", args=[project.slug])).content.decode()
    assert 'name="criteria_lines"' in page


@pytest.mark.django_db
def test_leaderboard_and_preference_export_read_each_criterion(api, project, manager, rater):
    from labeling.services.comparisons import submit_comparison
    from labeling.services.imports import store_image
    from labeling.services.pair_serving import next_pair
    from tests.conftest import make_image_bytes

    project.criteria, project.group_key = CRITERIA, "prompt_id"
    project.save()
    for prompt in range(3):
        for generator in ("g1", "g2"):
            store_image(project, f"{prompt}{generator}.png", make_image_bytes(seed=10 * prompt + len(generator) + (generator == "g2")),
                        caption=f"prompt {prompt}", metadata={"prompt_id": f"p{prompt}", "generator": generator})
    generator_of = {image.pk: image.metadata["generator"] for image in Image.objects.filter(project=project)}
    # g1 is better aligned, g2 better overall, in every prompt.
    while (result := next_pair(project, rater)) is not None:
        _, lease = result
        g1_left = generator_of[lease.image_a_id] == "g1"
        submit_comparison(project, rater, lease=lease.token, client_key=str(lease.token),
                          answers={"alignment": "a" if g1_left else "b", "overall": "b" if g1_left else "a"})
    url = f"/api/v1/projects/{project.slug}/leaderboard/"
    overall = api(manager).get(url, {"field": "generator"}).json()
    alignment = api(manager).get(url, {"field": "generator", "criterion": "alignment"}).json()
    assert overall["values"][0]["value"] == "g2" and alignment["values"][0]["value"] == "g1"
    assert alignment["criterion"] == "alignment"
    assert api(manager).get(url, {"field": "generator", "criterion": "beauty"}).status_code == 400
    export = f"/api/v1/projects/{project.slug}/export/preferences/"
    rows = [json.loads(line) for line in b"".join(api(manager).get(export, {"criterion": "alignment"}).streaming_content).decode().splitlines()]
    assert len(rows) == 3 and all(generator_of[row["chosen_image_id"]] == "g1" for row in rows)
    assert {row["criterion"] for row in rows} == {"alignment"}
    rows = [json.loads(line) for line in b"".join(api(manager).get(export).streaming_content).decode().splitlines()]
    assert all(generator_of[row["chosen_image_id"]] == "g2" for row in rows) and rows[0]["criterion"] == "overall"
    assert api(manager).get(export, {"criterion": "beauty"}).status_code == 400
