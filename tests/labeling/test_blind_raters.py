"""Raters judge blind: images, tags and the question, nothing that reveals a score; managers see everything."""
from __future__ import annotations

import pytest
from django.utils import timezone

from labeling.models import Image
from labeling.services.tags import add_tag

IMAGES = "/api/v1/projects/test-project/images/"


@pytest.fixture
def scored(project, images, manager):
    from modeling.models import HumanScore, ImageScore, ModelVersion

    Image.objects.filter(pk=images[0].pk).update(metadata={"cfg_scale": 7.5, "seed": 3}, caption="a red square")
    version = ModelVersion.objects.create(project=project, encoder_id="tiny", is_active=True, status="active")
    ImageScore.objects.create(model_version=version, image=images[0], mean=8.25, distribution=[0.1] * 10)
    HumanScore.objects.create(image=images[0], project=project, mean=1.75, variance=0.5, n_comparisons=4,
                              fitted_at=timezone.now())
    return images[0]


@pytest.mark.django_db
def test_the_images_api_hides_metadata_prompts_and_score_filters_from_raters(api, scored, rater, manager):
    row = api(rater).get(IMAGES).json()["results"][0]
    assert row["id"] == scored.pk and row["tags"] == ["even"]
    assert not {"metadata", "caption", "original_name", "external_id"} & set(row)  # the rater's view has none
    assert api(rater).get(IMAGES, {"has_score": "true"}).status_code == 403
    seen = api(manager).get(IMAGES).json()["results"][0]
    assert seen["metadata"] == {"cfg_scale": 7.5, "seed": 3} and seen["caption"] == "a red square"
    assert api(manager).get(IMAGES, {"has_score": "true"}).json()["count"] == 1


@pytest.mark.django_db
def test_raters_see_their_own_name_on_tags_but_not_other_raters(api, project, images, rater, second_rater, manager):
    image = Image.objects.select_related("project").get(pk=images[0].pk)
    add_tag(image, "mine", rater, may_extend_vocabulary=True)
    add_tag(image, "theirs", second_rater, may_extend_vocabulary=True)
    url = f"/api/v1/images/{image.pk}/tags/"
    names = {row["name"]: row["rater"] for row in api(rater).get(url).json()}
    assert names["mine"] == "rater1" and names["theirs"] is None
    names = {row["name"]: row["rater"] for row in api(manager).get(url).json()}
    assert names["mine"] == "rater1" and names["theirs"] == "rater2"
    added = api(rater).post(url, {"name": "another"}, format="json").json()
    assert {row["name"]: row["rater"] for row in added}["theirs"] is None


@pytest.mark.django_db
def test_the_image_page_shows_raters_the_image_tags_and_question_only(client, project, scored, rater, manager):
    project.question = "Which one looks sharper?"
    project.save()
    client.force_login(rater)
    html = client.get(f"/images/{scored.pk}/").content.decode()
    assert "Which one looks sharper?" in html and "even" in html and scored.file.url in html
    for revealing in ("8.25", "1.75", "image-scores", "cfg_scale", "a red square", "explanation", "heat-map"):
        assert revealing not in html, revealing
    client.force_login(manager)
    html = client.get(f"/images/{scored.pk}/").content.decode()
    assert "8.25" in html and "1.75" in html and "cfg_scale" in html and "a red square" in html


@pytest.mark.django_db
def test_training_runs_are_for_managers_and_tracebacks_for_site_staff(api, project, rater, manager, make_user):
    from modeling.models import TrainingRun

    traceback = 'Traceback (most recent call last):\n  File "/srv/app/x.py", line 3, in f\nValueError: no comparisons yet\n'
    run = TrainingRun.objects.create(project=project, status=TrainingRun.Status.FAILED, error=traceback)
    url = f"/api/v1/training-runs/{run.pk}/"
    assert api(rater).get(url).status_code == 403
    assert api(rater).get(f"/api/v1/projects/{project.slug}/training-runs/").status_code == 403
    assert api(manager).get(url).json()["error"] == "ValueError: no comparisons yet"
    listed = api(manager).get(f"/api/v1/projects/{project.slug}/training-runs/").json()["results"][0]
    assert listed["error"] == "ValueError: no comparisons yet"
    staff = make_user("root", is_superuser=True, is_staff=True)
    assert api(staff).get(url).json()["error"] == traceback


@pytest.mark.django_db
def test_the_project_api_shows_raters_no_setting_they_could_game(api, project, rater, manager):
    """Gold rate, overlap, the qualification threshold, the grouping key, targets: the manager's, never a rater's."""
    hidden = {"gold_rate", "overlap", "pair_strategy", "qualification_gold_pairs", "qualification_min_accuracy",
              "group_key", "target_judgments", "retrain_min_new_comparisons", "weight_raters_by_reliability"}
    url = f"/api/v1/projects/{project.slug}/"
    for answer in (api(rater).get(url).json(), api(rater).get("/api/v1/projects/").json()["results"][0]):
        assert answer["role"] == "rater" and answer["question"] == project.question
        assert not hidden & set(answer), hidden & set(answer)
    assert hidden <= set(api(manager).get(url).json())
