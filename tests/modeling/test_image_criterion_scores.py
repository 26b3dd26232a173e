"""An image's pages show its human score on each criterion to managers; raters still see no score."""
import pytest
from django.utils import timezone

from modeling.models import CriterionScore, HumanScore
from tests.modeling.dashboard_data import make_images

CRITERIA = [{"key": "alignment", "question": "Which matches the prompt better?"},
            {"key": "overall", "question": "Which is better overall?"}]


def scored_image(project, criteria):
    project.criteria = criteria
    project.save()
    image = make_images(project, 1)[0]
    now = timezone.now()
    HumanScore.objects.create(project=project, image=image, mean=1.23, variance=0.4, n_comparisons=7, fitted_at=now)
    if criteria:
        CriterionScore.objects.create(project=project, image=image, criterion="alignment", mean=-4.56,
                                      variance=0.5, n_comparisons=6, fitted_at=now)
    return image


@pytest.mark.django_db
def test_managers_see_each_criterions_human_score_on_the_image_pages(client, project, manager):
    image = scored_image(project, CRITERIA)
    client.force_login(manager)
    detail = client.get(f"/images/{image.pk}/").content.decode()
    assert 'data-criterion="alignment"' in detail and "-4.56" in detail
    assert 'data-criterion="overall"' in detail and "1.23" in detail and "(primary)" in detail
    browser = client.get(f"/projects/{project.slug}/browse/{image.pk}/").content.decode()
    assert 'data-criterion="alignment">-4.56<' in browser and 'data-criterion="overall">1.23<' in browser


@pytest.mark.django_db
def test_a_criterion_not_fitted_yet_says_so(client, project, manager):
    image = scored_image(project, CRITERIA)
    CriterionScore.objects.all().delete()
    client.force_login(manager)
    detail = client.get(f"/images/{image.pk}/").content.decode()
    assert "not fitted yet" in detail and "1.23" in detail


@pytest.mark.django_db
def test_raters_see_no_score_of_any_criterion(client, project, rater):
    image = scored_image(project, CRITERIA)
    client.force_login(rater)
    detail = client.get(f"/images/{image.pk}/")
    page = detail.content.decode()
    assert detail.status_code == 200 and 'id="original-image"' in page  # the rater does see the image
    assert "-4.56" not in page and "1.23" not in page and "data-criterion" not in page
    assert client.get(f"/projects/{project.slug}/browse/{image.pk}/").status_code == 403


@pytest.mark.django_db
def test_one_question_image_pages_are_unchanged(client, project, manager):
    image = scored_image(project, [])
    client.force_login(manager)
    detail = client.get(f"/images/{image.pk}/").content.decode()
    assert "Human (Bradley–Terry, logit scale): 1.23" in detail and "data-criterion" not in detail
    browser = client.get(f"/projects/{project.slug}/browse/{image.pk}/").content.decode()
    assert "<dt>Human score</dt><dd>1.23</dd>" in browser
