"""A warm start through a real worker: the settings' save sends the scoring, the worker scores and refits."""
import pytest
from rest_framework.test import APIClient

from labeling.models import Membership, Project
from modeling.models import HumanScore, ModelVersion, WarmStartScore
from tests.modeling.model_loop_support import wait_for
from tests.modeling.test_promotion_rollback import trained_version

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_naming_a_warm_start_scores_the_images_on_the_worker_and_refits(live_worker, project, images, manager):
    source = Project.objects.create(name="Last week", slug="last-week", question=project.question)
    Membership.objects.create(project=source, user=manager, role=Membership.Role.MANAGER)
    version = trained_version(source)
    ModelVersion.objects.filter(pk=version.pk).update(status=ModelVersion.Status.ACTIVE, is_active=True)
    client = APIClient()
    client.force_authenticate(manager)

    response = client.patch(f"/api/v1/projects/{project.slug}/training-settings/",
                            {"warm_start_version": version.pk}, format="json")
    assert response.status_code == 200, response.content

    wait_for(lambda: WarmStartScore.objects.filter(project=project, model_version=version).count() == len(images),
             120, "the worker to score the project's images with the warm start", on_timeout=live_worker.log)
    # The scoring's end sends the refit (as an activation does): the prior is in the stored human scores.
    wait_for(lambda: HumanScore.objects.filter(project=project).count() == len(images), 120,
             "the human scores refitted with the warm start", on_timeout=live_worker.log)
    assert not version.scores.filter(image__project=project).exists()
