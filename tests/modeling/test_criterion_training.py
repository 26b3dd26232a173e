"""A model version is trained on one criterion (the training settings' ``criterion``, the primary one by default)."""
import pytest
from rest_framework.test import APIClient

from labeling.models import Comparison, CriterionAnswer
from modeling.models import TrainingRun
from modeling.services import datasets, feature_extraction, training_runs
from tests.modeling.model_loop_support import add_images, fast_training, simulate_comparisons

pytestmark = pytest.mark.django_db

CRITERIA = [{"key": "alignment", "question": "Which matches the prompt better?"},
            {"key": "overall", "question": "Which is better overall?"}]
FLIP = {"a": "b", "b": "a"}


@pytest.fixture(autouse=True)
def no_heartbeat_thread(settings):
    settings.TAGRANK_TRAINING_HEARTBEAT_SECONDS = 0


@pytest.fixture
def answered(project, rater, image_bytes):
    """Alignment answers the opposite of overall; the 10 oldest judgments have no alignment answer."""
    project.criteria = CRITERIA
    project.save()
    images = add_images(project, 16, image_bytes)
    feature_extraction.extract_features([image.pk for image in images])
    simulate_comparisons(project, rater, images, 120)
    comparisons = list(Comparison.objects.filter(project=project).order_by("pk"))
    CriterionAnswer.objects.bulk_create(
        [CriterionAnswer(comparison=c, criterion="overall", outcome=c.outcome) for c in comparisons]
        + [CriterionAnswer(comparison=c, criterion="alignment", outcome=FLIP[c.outcome]) for c in comparisons[10:]]
    )
    return images


def test_the_dataset_of_a_criterion_reads_its_answers(project, answered):
    overall = datasets.build_dataset(project)
    alignment = datasets.build_dataset(project, criterion="alignment")
    assert overall.counts["comparisons"] == 120 and alignment.counts["comparisons"] == 110
    # Same pairs (less the unanswered ones), opposite outcomes.
    primary = {(a, b): o for a, b, o in zip(overall.data.comp_a.tolist(), overall.data.comp_b.tolist(),
                                            overall.data.outcome.tolist())}
    flipped = [primary[(a, b)] == 1 - o for a, b, o in zip(alignment.data.comp_a.tolist(),
                                                           alignment.data.comp_b.tolist(),
                                                           alignment.data.outcome.tolist())]
    assert flipped and all(flipped)


def test_a_version_is_trained_on_the_criterion_the_settings_name(project, answered, manager):
    fast_training(project, criterion="alignment")
    run, created = training_runs.request_training(project, dispatch=False, user=manager)
    training_runs.execute_run(run.pk, task_id="in-process")
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error
    version = run.model_version
    assert version.config["criterion"] == "alignment"
    assert version.metrics["counts"]["comparisons"] == 110  # the answered judgments only


def test_the_default_is_the_primary_criterion_and_a_dropped_one_falls_back(project, answered):
    from modeling.services import criterion_scores

    assert criterion_scores.training_criterion(project) is None
    fast_training(project, criterion="alignment")
    assert criterion_scores.training_criterion(project) == "alignment"
    project.criteria = [{"key": "overall", "question": "Q?"}, {"key": "beauty", "question": "Q?"}]
    project.save()
    assert criterion_scores.training_criterion(project) is None


def test_managers_choose_the_criterion_through_the_api(project, manager, rater):
    url = f"/api/v1/projects/{project.slug}/training-settings/"
    client = APIClient()
    client.force_authenticate(manager)
    assert client.get(url).json()["criterion"] == ""
    refused = client.patch(url, {"criterion": "alignment"}, format="json")  # a one-question project
    assert refused.status_code == 400 and "criterion" in refused.json()
    project.criteria = CRITERIA
    project.save()
    assert client.patch(url, {"criterion": "alignment"}, format="json").json()["criterion"] == "alignment"
    assert client.patch(url, {"criterion": "beauty"}, format="json").status_code == 400
    assert client.patch(url, {"criterion": ""}, format="json").json()["criterion"] == ""
    client.force_authenticate(rater)
    assert client.patch(url, {"criterion": "alignment"}, format="json").status_code == 403


def test_the_settings_form_offers_the_criteria_only_when_there_are_several(client, project, manager):
    from django.urls import reverse

    client.force_login(manager)
    page = client.get(reverse("project-models", args=[project.slug])).content.decode()
    assert 'name="criterion"' not in page
    project.criteria = CRITERIA
    project.save()
    page = client.get(reverse("project-models", args=[project.slug])).content.decode()
    assert 'name="criterion"' in page and 'value="alignment"' in page
