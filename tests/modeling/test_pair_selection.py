"""Refilling the pair queue with the project's strategy, and next_pair serving from it."""
import itertools

import pytest

from labeling.models import Comparison, PairCandidate, Project
from labeling.services.pairs import next_pair
from modeling.models import HumanScore
from modeling.services.pair_selection import RefillPolicy, refill_due, refill_pair_queue
from tests.conftest import make_image_bytes

POLICY = RefillPolicy(batch_size=12, low_water=4, refit_every=3, max_per_image=3, explore_share=0.0)


@pytest.fixture
def twelve_images(project):
    from labeling.services.imports import store_image

    return [store_image(project, f"q{i}.png", make_image_bytes(seed=100 + i))[0] for i in range(12)]


def judge(project, rater, winner, loser, key):
    return Comparison.objects.create(project=project, image_a=winner, image_b=loser, outcome="a", rater=rater,
                                     client_key=key)


@pytest.mark.django_db
def test_active_refill_writes_informative_pairs_and_stores_human_scores(project, rater, twelve_images):
    # A chain of judgments: image i beats image i+1.
    for i, (better, worse) in enumerate(zip(twelve_images, twelve_images[1:])):
        judge(project, rater, better, worse, f"k{i}")
    summary = refill_pair_queue(project, seed=1, policy=POLICY)

    rows = list(PairCandidate.objects.filter(project=project))
    assert summary["strategy"] == "active" and summary["pairs"] == len(rows) > 0
    assert all(row.source == "active" and row.image_low_id < row.image_high_id for row in rows)
    assert all(row.priority > 0 for row in rows)  # expected information gain
    per_image = {}
    for row in rows:
        for image_id in (row.image_low_id, row.image_high_id):
            per_image[image_id] = per_image.get(image_id, 0) + 1
    assert max(per_image.values()) <= POLICY.max_per_image
    # The refill refitted the human scores: the chain's order is recovered.
    means = dict(HumanScore.objects.filter(project=project).values_list("image_id", "mean"))
    ordered = [means[image.pk] for image in twelve_images]
    assert ordered == sorted(ordered, reverse=True)


@pytest.mark.django_db
def test_refill_is_deterministic_under_a_seed(project, twelve_images):
    refill_pair_queue(project, seed=7, policy=POLICY)
    first = sorted(PairCandidate.objects.values_list("image_low_id", "image_high_id", "priority"))
    PairCandidate.objects.all().delete()
    refill_pair_queue(project, seed=7, policy=POLICY)
    assert sorted(PairCandidate.objects.values_list("image_low_id", "image_high_id", "priority")) == first


@pytest.mark.django_db
def test_closed_pairs_are_never_selected_again(project, twelve_images):
    ids = [image.pk for image in twelve_images]
    closed = [(a, b) for a, b in itertools.combinations(ids, 2)][:40]
    PairCandidate.objects.bulk_create([
        PairCandidate(project=project, image_low_id=a, image_high_id=b, is_open=False, judgments=project.overlap)
        for a, b in closed
    ])
    refill_pair_queue(project, seed=3, policy=POLICY)
    opened = set(PairCandidate.objects.filter(project=project, is_open=True).values_list("image_low_id", "image_high_id"))
    assert opened and not (opened & set(closed))


@pytest.mark.django_db
@pytest.mark.parametrize("strategy", ["random", "round_robin"])
def test_other_strategies_fill_the_queue_for_ab_comparisons(project, twelve_images, strategy):
    Project.objects.filter(pk=project.pk).update(pair_strategy=strategy)
    project.refresh_from_db()
    summary = refill_pair_queue(project, seed=5, policy=POLICY)
    assert summary["strategy"] == strategy and summary["pairs"] > 0
    assert set(PairCandidate.objects.values_list("source", flat=True)) == {strategy}
    assert not HumanScore.objects.exists()  # no posterior needed


@pytest.mark.django_db
def test_next_pair_serves_the_highest_priority_queued_pair(project, rater, twelve_images):
    refill_pair_queue(project, seed=11, policy=POLICY)
    best = PairCandidate.objects.filter(project=project).order_by("-priority", "id").first()
    served = next_pair(project, rater)
    assert served is not None
    (left, right), lease = served
    assert {left.pk, right.pk} == {lease.image_a_id, lease.image_b_id}
    assert lease.candidate_id == best.pk
    assert {lease.image_a_id, lease.image_b_id} == {best.image_low_id, best.image_high_id}


@pytest.mark.django_db
def test_refill_is_due_when_the_queue_runs_low_or_judgments_arrive(project, rater, twelve_images):
    assert refill_due(project, POLICY)  # empty queue
    refill_pair_queue(project, seed=2, policy=POLICY)
    assert not refill_due(project, POLICY)
    for i in range(POLICY.refit_every):
        judge(project, rater, twelve_images[i], twelve_images[i + 5], f"due{i}")
    assert refill_due(project, POLICY)
