"""Constraints live in the database, not only in forms."""
import pytest
from django.db import IntegrityError, transaction

from labeling.models import Comparison, Project, ReferenceRating, Tag, distribution_mean_std
from modeling.models import ImageScore, ModelVersion


@pytest.mark.django_db
@pytest.mark.parametrize(
    "image_b, outcome", [(0, "a"), (1, "z")], ids=["an image compared with itself", "an unknown outcome"]
)
def test_the_database_refuses_a_comparison_with(project, images, rater, image_b, outcome):
    with pytest.raises(IntegrityError), transaction.atomic():
        Comparison.objects.create(project=project, image_a=images[0], image_b=images[image_b], outcome=outcome,
                                  rater=rater, client_key="k1")


@pytest.mark.django_db
def test_duplicate_client_key_for_one_rater_is_refused(project, images, rater, make_user):
    Comparison.objects.create(project=project, image_a=images[0], image_b=images[1], outcome="a",
                              rater=rater, client_key="same")
    with pytest.raises(IntegrityError), transaction.atomic():
        Comparison.objects.create(project=project, image_a=images[2], image_b=images[3], outcome="b",
                                  rater=rater, client_key="same")
    # The same key from another rater is a different judgment.
    other = make_user("other-rater")
    Comparison.objects.create(project=project, image_a=images[2], image_b=images[3], outcome="b",
                              rater=other, client_key="same")
    assert Comparison.objects.count() == 2


@pytest.mark.django_db
def test_tag_names_are_unique_per_project_and_case_folded(project):
    Tag.objects.create(project=project, name="cat")
    with pytest.raises(IntegrityError), transaction.atomic():
        Tag.objects.create(project=project, name="cat")
    with pytest.raises(IntegrityError), transaction.atomic():
        Tag.objects.create(project=project, name="Cat")  # must be stored case-folded
    other = Project.objects.create(name="Other", slug="other")
    Tag.objects.create(project=other, name="cat")
    assert Tag.normalise("  Night   SKY ") == "night sky"


@pytest.mark.django_db
def test_project_overlap_and_gold_rate_bounds(project):
    with pytest.raises(IntegrityError), transaction.atomic():
        Project.objects.filter(pk=project.pk).update(overlap=0)
    with pytest.raises(IntegrityError), transaction.atomic():
        Project.objects.filter(pk=project.pk).update(gold_rate=1.5)


@pytest.mark.django_db
def test_one_active_model_version_per_project(project, images):
    ModelVersion.objects.create(project=project, encoder_id="tiny", is_active=True, status="active")
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.create(project=project, encoder_id="tiny", is_active=True, status="active")
    candidate = ModelVersion.objects.create(project=project, encoder_id="tiny", status="candidate")
    ImageScore.objects.create(model_version=candidate, image=images[0], mean=5.5, distribution=[0.1] * 10)
    with pytest.raises(IntegrityError), transaction.atomic():
        ImageScore.objects.create(model_version=candidate, image=images[0], mean=6.0, distribution=[0.1] * 10)
    with pytest.raises(IntegrityError), transaction.atomic():
        ImageScore.objects.create(model_version=candidate, image=images[1], mean=11.0, distribution=[0.1] * 10)


@pytest.mark.django_db
def test_reference_rating_mean_and_std_follow_the_votes(images):
    rating = ReferenceRating(image=images[0])
    rating.votes = [0, 0, 0, 1, 2, 1, 0, 0, 0, 0]  # scores 4, 5, 5, 6
    rating.save()
    rating.refresh_from_db()
    assert rating.mean == pytest.approx(5.0)
    assert rating.std == pytest.approx((0.5) ** 0.5)
    with pytest.raises(ValueError):
        rating.votes = [0] * 10
    assert distribution_mean_std([1] + [0] * 9) == (1.0, 0.0)
