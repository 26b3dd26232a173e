"""Warm starts across campaigns: another project's model version as a new project's prior."""
import numpy as np
import pytest
from scipy import stats

from labeling.models import Membership, Project
from modeling.models import ModelVersion, TrainingSettings, WarmStartScore
from modeling.services import human_scores, warm_start
from tests.clients import signed_in
from tests.modeling.dashboard_data import add_comparisons, make_images, member, thurstone_judgments, user
from tests.modeling.test_promotion_rollback import trained_version

pytestmark = pytest.mark.django_db

SETTINGS = "/api/v1/projects/test-project/training-settings/"


@pytest.fixture
def sent(monkeypatch):
    """The warm-start scoring messages the settings sent (project ids)."""
    calls = []
    monkeypatch.setattr("worker.dispatch.send_warm_start_scoring", calls.append)
    monkeypatch.setattr("worker.dispatch.send_activation_refresh", lambda project_id: None)
    return calls


@pytest.fixture
def boss(project):
    return member(project, user("boss"), Membership.Role.MANAGER).user


@pytest.fixture
def earlier(boss, project):
    """An earlier campaign with the same question, managed by the same manager, with an active version."""
    source = Project.objects.create(name="Last week", slug="last-week", question=project.question)
    member(source, boss, Membership.Role.MANAGER)
    version = trained_version(source)
    ModelVersion.objects.filter(pk=version.pk).update(status=ModelVersion.Status.ACTIVE, is_active=True)
    version.refresh_from_db()
    return version


def test_a_manager_names_a_version_of_another_project_they_manage(project, boss, earlier, sent):
    response = signed_in(boss).patch(SETTINGS, {"warm_start_version": earlier.pk}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["warm_start_version"] == earlier.pk
    assert body["warm_start"] == {"version": earlier.pk, "in_use": True, "scored_images": 0}
    assert TrainingSettings.objects.get(project=project).warm_start_version == earlier
    assert sent == [project.pk]  # scored on the worker
    assert list(warm_start.eligible_versions(boss, project)) == [earlier]

    response = signed_in(boss).patch(SETTINGS, {"warm_start_version": None}, format="json")
    assert response.status_code == 200 and response.json()["warm_start"] is None


def test_a_version_of_someone_elses_project_is_404_like_a_missing_one(project, boss, sent):
    foreign = Project.objects.create(name="Not yours", slug="not-yours", question=project.question)
    version = trained_version(foreign)
    for version_id in (version.pk, 999_999_999):
        response = signed_in(boss).patch(SETTINGS, {"warm_start_version": version_id}, format="json")
        assert response.status_code == 404, response.content
    assert not TrainingSettings.objects.filter(project=project, warm_start_version__isnull=False).exists()
    assert sent == []
    assert list(warm_start.eligible_versions(boss, project)) == []


def test_a_version_of_a_project_the_caller_only_rates_in_is_403(project, boss, sent):
    rated = Project.objects.create(name="Rated", slug="rated", question=project.question)
    member(rated, boss)  # a rater there
    response = signed_in(boss).patch(SETTINGS, {"warm_start_version": trained_version(rated).pk}, format="json")
    assert response.status_code == 403


def test_another_encoder_or_question_or_the_project_itself_is_a_clear_400(project, boss, earlier, sent):
    ModelVersion.objects.filter(pk=earlier.pk).update(encoder_id="openai/clip-vit-base-patch32")
    response = signed_in(boss).patch(SETTINGS, {"warm_start_version": earlier.pk}, format="json")
    assert response.status_code == 400
    assert "encoder" in response.json()["warm_start_version"][0]

    other_question = Project.objects.create(name="Aesthetics", slug="aesthetics", question="Which is prettier?")
    member(other_question, boss, Membership.Role.MANAGER)
    response = signed_in(boss).patch(SETTINGS, {"warm_start_version": trained_version(other_question).pk},
                                      format="json")
    assert response.status_code == 400 and "question" in response.json()["warm_start_version"][0]

    response = signed_in(boss).patch(SETTINGS, {"warm_start_version": trained_version(project).pk}, format="json")
    assert response.status_code == 400 and "another project" in response.json()["warm_start_version"][0]
    assert not TrainingSettings.objects.filter(project=project, warm_start_version__isnull=False).exists()
    assert sent == []


def test_a_rater_cannot_read_or_set_the_warm_start(project, earlier, sent):
    rater = member(project, user("rater1")).user
    assert signed_in(rater).get(SETTINGS).status_code == 403
    assert signed_in(rater).patch(SETTINGS, {"warm_start_version": earlier.pk}, format="json").status_code == 403


def test_the_worker_scores_the_new_projects_images_with_the_warm_start(project, images, boss, earlier, sent):
    TrainingSettings.objects.create(project=project, warm_start_version=earlier)
    result = warm_start.score_project(project.pk)
    assert result["scored"] == len(images)
    scores = WarmStartScore.objects.filter(project=project, model_version=earlier)
    assert scores.count() == len(images)
    assert all(1.0 <= score.mean <= 10.0 for score in scores)
    assert not earlier.scores.filter(image__project=project).exists()  # never in the version's own ImageScores
    assert warm_start.score_project(project.pk)["scored"] == 0  # idempotent


def fake_scores(project, version, images, values):
    WarmStartScore.objects.bulk_create([
        WarmStartScore(project=project, image=image, model_version=version, mean=float(value), uncertainty=0.1)
        for image, value in zip(images, values)])


def judged_with_a_warm_start(project, earlier, quality, warm_scores, n_judgments: int, seed: int) -> None:
    """One image per ``quality``, ``earlier`` as the warm start scoring them ``warm_scores``, and
    ``n_judgments`` Thurstone judgments on ``quality`` by two raters."""
    images = make_images(project, len(quality))
    TrainingSettings.objects.create(project=project, warm_start_version=earlier)
    fake_scores(project, earlier, images, warm_scores)
    raters = [user("a"), user("b")]
    for rater in raters:
        member(project, rater)
    add_comparisons(project, thurstone_judgments(images, quality, n_judgments, raters, np.random.default_rng(seed)))


def test_the_warm_start_is_the_prior_from_the_first_judgments_and_still_competes_once_an_own_version_is_active(
        project, earlier):
    quality = np.random.default_rng(0).normal(size=60)
    judged_with_a_warm_start(project, earlier, quality, np.clip(5.5 + 1.5 * quality, 1, 10),  # a model that transfers well
                             n_judgments=30, seed=1)

    fit = human_scores.fit_project_posterior(project)
    flat = human_scores.fit_project_posterior(project, use_model_prior=False)
    assert fit.model_version_id == earlier.pk
    assert stats.spearmanr(fit.posterior.mean, quality)[0] > stats.spearmanr(flat.posterior.mean, quality)[0] + 0.2
    prior = warm_start.warm_start_prior(project, fit.image_ids)
    assert prior.out_of_fold.all() and prior.version_id == earlier.pk

    # The project's own first version (a ranker with no out-of-fold scores yet) does not switch it off.
    ModelVersion.objects.create(project=project, encoder_id=earlier.encoder_id, is_active=True,
                                status=ModelVersion.Status.ACTIVE)
    assert warm_start.warm_start_prior(project, fit.image_ids).version_id == earlier.pk
    assert human_scores.fit_project_posterior(project).model_version_id == earlier.pk


def test_new_warm_start_scores_make_the_human_scores_stale(project, earlier):
    images = make_images(project, 5)
    TrainingSettings.objects.create(project=project, warm_start_version=earlier)
    human_scores.fit_human_scores(project)
    assert not human_scores.human_scores_stale(project)
    fake_scores(project, earlier, images, [5.0] * 5)
    assert human_scores.human_scores_stale(project)


def test_start_a_new_campaign_from_the_models_page(client, project, boss, earlier):
    from django.contrib.auth.models import Permission

    boss.user_permissions.add(Permission.objects.get(codename="add_project"))
    client.force_login(boss)
    source = earlier.project
    page = client.get(f"/projects/{source.slug}/models/").content.decode()
    assert "Start a new campaign from this model" in page
    response = client.post(f"/projects/{source.slug}/models/{earlier.pk}/new-campaign/")
    assert response.status_code == 302
    new = Project.objects.get(slug="last-week-next")
    assert response["Location"] == f"/projects/{new.slug}/upload/"
    assert new.question == source.question
    assert Membership.objects.get(project=new, user=boss).role == Membership.Role.MANAGER
    assert TrainingSettings.objects.get(project=new).warm_start_version == earlier


def test_a_manager_who_may_not_create_projects_gets_403(client, boss, earlier):
    client.force_login(boss)
    response = client.post(f"/projects/{earlier.project.slug}/models/{earlier.pk}/new-campaign/")
    assert response.status_code == 403
    assert not Project.objects.filter(slug="last-week-next").exists()


def test_the_settings_form_offers_only_eligible_versions_and_saves_the_choice(client, project, boss, earlier, sent):
    foreign = trained_version(Project.objects.create(name="Not yours", slug="not-yours", question=project.question))
    client.force_login(boss)
    page = client.get("/projects/test-project/models/").content.decode()
    assert f'<option value="{earlier.pk}">Last week, version {earlier.pk}' in page
    assert f'<option value="{foreign.pk}"' not in page
    form = {"ranking_lambda": 1.0, "promotion_tolerance": 0.02, "train_baseline": "on"}
    client.post("/projects/test-project/models/settings/", {**form, "warm_start_version": foreign.pk})
    assert not TrainingSettings.objects.filter(project=project, warm_start_version__isnull=False).exists()
    client.post("/projects/test-project/models/settings/", {**form, "warm_start_version": earlier.pk})
    assert TrainingSettings.objects.get(project=project).warm_start_version == earlier
    assert sent == [project.pk]
    assert 'id="warm-start"' in client.get("/projects/test-project/models/").content.decode()


def test_one_click_warm_starts_a_managed_project_with_the_same_question(client, project, boss, earlier, sent):
    foreign = Project.objects.create(name="Not yours", slug="not-yours", question=project.question)
    client.force_login(boss)
    page = client.get(f"/projects/{earlier.project.slug}/models/").content.decode()
    assert f"Warm-start “{project.name}” from this model" in page
    assert "Not yours" not in page

    url = f"/projects/{earlier.project.slug}/models/{earlier.pk}/warm-start-into/"
    assert client.post(url, {"project": foreign.slug}).status_code == 404  # not theirs: as if missing
    assert not TrainingSettings.objects.filter(warm_start_version__isnull=False).exists()
    response = client.post(url, {"project": project.slug})
    assert response.status_code == 302 and response["Location"] == f"/projects/{project.slug}/models/"
    assert TrainingSettings.objects.get(project=project).warm_start_version == earlier
    assert sent == [project.pk]
    page = client.get(f"/projects/{earlier.project.slug}/models/").content.decode()
    assert f"Warm-start “{project.name}” from this model" not in page  # done: no longer offered


def test_the_demo_next_campaign_is_one_click_from_the_demo_model(client, sent):
    from labeling.services import demo

    result = demo.seed_demo({"chelsea.png": ["cat"]}, {"coins.png": ["coins"]})
    version = trained_version(result.project)
    ModelVersion.objects.filter(pk=version.pk).update(status=ModelVersion.Status.ACTIVE, is_active=True)
    manager = Membership.objects.get(project=result.project, role=Membership.Role.MANAGER).user
    client.force_login(manager)
    page = client.get(f"/projects/{demo.DEMO_SLUG}/models/").content.decode()
    assert "Warm-start “Demo: next campaign (fresh photos)” from this model" in page
    client.post(f"/projects/{demo.DEMO_SLUG}/models/{version.pk}/warm-start-into/", {"project": demo.DEMO_NEXT_SLUG})
    assert TrainingSettings.objects.get(project=result.next_project).warm_start_version_id == version.pk
    assert sent == [result.next_project.pk]


def test_the_sweep_resends_scoring_for_images_the_warm_start_missed(project, images, earlier, sent):
    TrainingSettings.objects.create(project=project, warm_start_version=earlier)
    assert warm_start.sweep() == 0  # no features yet: nothing a scoring could do
    warm_start.score_project(project.pk)  # extracts the features and scores all
    assert warm_start.sweep() == 0
    WarmStartScore.objects.filter(image=images[0]).delete()  # as if its message was lost
    assert warm_start.sweep() == 1 and sent == [project.pk]


def test_a_bad_transfer_fades_as_judgments_arrive(project, earlier):
    """A warm start that ranks this project's images at random: with enough judgments the ranking is as good
    as the comparisons alone make it."""
    quality = np.random.default_rng(2).normal(size=60)
    judged_with_a_warm_start(project, earlier, quality, np.random.default_rng(3).uniform(1, 10, size=60),  # unrelated
                             n_judgments=600, seed=4)

    fit = human_scores.fit_project_posterior(project)
    flat = human_scores.fit_project_posterior(project, use_model_prior=False)
    assert fit.model_version_id == earlier.pk  # the prior was used, and weighed as little as it deserves
    assert stats.spearmanr(fit.posterior.mean, quality)[0] > stats.spearmanr(flat.posterior.mean, quality)[0] - 0.02
