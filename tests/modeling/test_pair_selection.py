"""Refilling the pair queue with the project's strategy, and next_pair serving from it."""
import itertools
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from labeling.models import Comparison, PairCandidate, Project
from labeling.services.pair_serving import next_pair
from modeling.ml.selection import pair_information
from modeling.models import HumanScore, PairRefillState
from modeling.services.pair_selection import (
    RefillPolicy,
    claim_refill,
    closed_pair_test,
    refill_due,
    refill_pair_queue,
    refill_policy,
)
from worker.selection_tasks import refill_pair_queues
from tests.conftest import make_image_bytes

POLICY = RefillPolicy(batch_size=12, low_water=4, refit_every=3, max_per_image=3, explore_share=0.0)


@pytest.fixture
def twelve_images(project):
    from labeling.services.imports import store_image

    return [store_image(project, f"q{i}.png", make_image_bytes(seed=100 + i))[0] for i in range(12)]


def judge(project, rater, winner, loser, key, winner_left=True):
    """``winner`` beats ``loser``, shown on the left (or, with ``winner_left`` False, on the right)."""
    left, right = (winner, loser) if winner_left else (loser, winner)
    return Comparison.objects.create(project=project, image_a=left, image_b=right, rater=rater, client_key=key,
                                     outcome="a" if winner_left else "b")


@pytest.mark.django_db
def test_active_refill_writes_informative_pairs_and_stores_human_scores(project, rater, twelve_images):
    # Image i beats every image up to three places below it, shown on either side in turn. (A bare chain, i beats
    # i+1, tells the reliability fit nothing: without its own judgment each link's images are ordered the other
    # way by their other links, and the rater reads as careless. So does a rater who always chose the left image.)
    pairs = [(i, j) for i in range(12) for j in range(i + 1, min(i + 4, 12))]
    for k, (i, j) in enumerate(pairs):
        judge(project, rater, twelve_images[i], twelve_images[j], f"k{k}", winner_left=k % 2 == 0)
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
    # The refill refitted the human scores: the images' order is recovered.
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
def test_the_closed_pair_test_knows_only_pairs_of_the_images_it_is_given(project, twelve_images):
    ids = [image.pk for image in twelve_images]
    PairCandidate.objects.bulk_create([
        PairCandidate(project=project, image_low_id=ids[0], image_high_id=ids[2], is_open=False, judgments=3),
        PairCandidate(project=project, image_low_id=ids[4], image_high_id=ids[6], is_open=False, judgments=3),
        PairCandidate(project=project, image_low_id=ids[7], image_high_id=ids[8], is_open=True, judgments=1),
    ])
    given = np.array(ids[:2] + ids[3:], dtype=np.int64)  # image 2 left out, as an image the fit did not see
    is_closed = closed_pair_test(project, given)
    position = {image_id: k for k, image_id in enumerate(given.tolist())}
    first = np.array([position[ids[6]], position[ids[0]], position[ids[0]], position[ids[7]]])
    second = np.array([position[ids[4]], position[ids[3]], position[ids[1]], position[ids[8]]])
    # (4, 6) is closed, in either order; (0, 2) must not close (0, 3), where image 3 stands in image 2's place.
    assert is_closed(first, second).tolist() == [True, False, False, False]


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


@pytest.mark.django_db
def test_a_small_projects_queue_is_low_once_half_its_batch_is_judged(project, rater, twelve_images):
    # Twelve images, at most 3 pairs per image: a batch holds at most 18 pairs, below a low water of 100, so
    # "fewer open pairs than low_water" alone would make every check due and re-plan after each judgment.
    policy = RefillPolicy(batch_size=200, low_water=100, refit_every=10**6, max_per_image=3, explore_share=0.0)
    refill_pair_queue(project, seed=5, policy=policy)
    written = PairRefillState.objects.get(project=project).pairs_written
    assert 0 < written < policy.low_water
    assert not refill_due(project, policy)
    open_rows = PairCandidate.objects.filter(project=project, is_open=True).order_by("-priority", "id")
    to_close = written - (written + 1) // 2 + 1  # then fewer than half of the batch are open
    PairCandidate.objects.filter(pk__in=[row.pk for row in open_rows[: to_close - 1]]).update(is_open=False)
    assert not refill_due(project, policy)
    PairCandidate.objects.filter(pk=open_rows.filter(is_open=True).first().pk).update(is_open=False)
    assert refill_due(project, policy)


# --- Keeping up with the judgments: refills sent from the submit path -------------------------------


def submit(project, rater, key):
    """One judgment through the rating services, as the API stores it (lease, then submit)."""
    from labeling.services.comparisons import submit_comparison

    served = next_pair(project, rater)
    assert served is not None
    return submit_comparison(project, rater, lease=served[1].token, winner="a", client_key=key)[0]


@pytest.fixture
def sent_refills(monkeypatch, settings):
    settings.TAGRANK_PAIR_QUEUE = {"batch_size": 12, "low_water": 2, "refit_every": 3, "max_per_image": 3,
                                   "explore_share": 0.0, "check_every_seconds": 0}
    sent = []
    monkeypatch.setattr("worker.dispatch.send_claimed_pair_refill", sent.append)
    return sent


@pytest.mark.django_db
def test_judgments_make_a_refill_due_although_leases_touch_the_queue(project, rater, twelve_images):
    Project.objects.filter(pk=project.pk).update(overlap=2)
    project.refresh_from_db()
    refill_pair_queue(project, seed=2, policy=POLICY)
    for i in range(POLICY.refit_every - 1):
        submit(project, rater, f"touch{i}")
    assert not refill_due(project, POLICY)
    submit(project, rater, "touch-last")  # each lease and judgment rewrote its queue row's updated_at
    assert refill_due(project, POLICY)


@pytest.mark.django_db
def test_the_submit_path_sends_one_refill_while_one_is_in_flight(project, rater, twelve_images, sent_refills,
                                                                 django_capture_on_commit_callbacks):
    refill_pair_queue(project, seed=4)
    with django_capture_on_commit_callbacks(execute=True):
        for i in range(2):
            submit(project, rater, f"early{i}")
    assert sent_refills == []  # not due yet: 2 of 3 judgments, queue above its low water
    for i in range(7):  # the third judgment sends one; the next six find it in flight
        with django_capture_on_commit_callbacks(execute=True):
            submit(project, rater, f"burst{i}")
    assert sent_refills == [project.pk]
    state = PairRefillState.objects.get(project=project)
    assert state.in_flight_until > timezone.now()

    # The worker runs it: the flag is cleared, and only judgments after it count towards the next one.
    refill_pair_queues.run(project.pk, claimed=True)
    state.refresh_from_db()
    assert state.in_flight_until is None and state.refilled_at is not None
    with django_capture_on_commit_callbacks(execute=True):
        submit(project, rater, "after0")
    assert sent_refills == [project.pk]
    for i in range(1, 3):
        with django_capture_on_commit_callbacks(execute=True):
            submit(project, rater, f"after{i}")
    assert sent_refills == [project.pk, project.pk]


@pytest.mark.django_db
def test_the_submit_path_checks_whether_a_refill_is_due_at_most_once_per_interval(
        project, rater, twelve_images, sent_refills, settings, django_capture_on_commit_callbacks):
    from django.core.cache import cache

    settings.TAGRANK_PAIR_QUEUE = {**settings.TAGRANK_PAIR_QUEUE, "check_every_seconds": 60}
    cache.delete(f"tagrank:refill-checked:{project.pk}")
    refill_pair_queue(project, seed=4)
    for i in range(5):  # the first judgment checks (not due yet); the rest fall within the interval
        with django_capture_on_commit_callbacks(execute=True):
            submit(project, rater, f"quick{i}")
    assert refill_due(project, refill_policy()) and sent_refills == []
    cache.delete(f"tagrank:refill-checked:{project.pk}")  # the interval has passed
    with django_capture_on_commit_callbacks(execute=True):
        submit(project, rater, "later")
    assert sent_refills == [project.pk]


@pytest.mark.django_db
def test_a_lost_refill_is_sent_again_once_its_flag_expires(project, twelve_images, sent_refills):
    policy = refill_policy()
    assert claim_refill(project, policy)
    assert not claim_refill(project, policy)
    PairRefillState.objects.filter(project=project).update(in_flight_until=timezone.now() - timedelta(seconds=1))
    assert claim_refill(project, policy)


@pytest.mark.django_db
def test_a_failed_refill_clears_its_flag(project, twelve_images, monkeypatch):
    assert claim_refill(project)

    def broken(project, **kwargs):
        raise RuntimeError("selection failed")

    monkeypatch.setattr("modeling.services.pair_selection.refill_pair_queue", broken)
    with pytest.raises(RuntimeError):
        refill_pair_queues.run(project.pk, claimed=True)
    assert PairRefillState.objects.get(project=project).in_flight_until is None


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_send_at_most_one_refill(project, twelve_images):
    """Eight requests claim at once, each on its own connection: exactly one wins."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from django.db import connection

    PairRefillState.objects.create(project=project)
    barrier = Barrier(8)

    def claim(_):
        try:
            barrier.wait(timeout=30)
            return claim_refill(project)
        finally:
            connection.close()

    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(claim, range(8)))
    assert won.count(True) == 1


# --- The model prior, at once after an activation -----------------------------------------------------


@pytest.mark.django_db
def test_an_activation_mid_campaign_refits_with_its_prior_and_refills_the_queue(
    project, rater, twelve_images, monkeypatch, django_capture_on_commit_callbacks
):
    from modeling.models import ImageScore, ModelVersion
    from modeling.services import human_scores, scoring

    from labeling.services.imports import store_image

    # Mid-campaign: twelve images judged in a chain (enough to place the model on the human scale), and
    # four never compared yet.
    images = twelve_images + [store_image(project, f"new{i}.png", make_image_bytes(seed=300 + i))[0]
                              for i in range(4)]
    for i, (better, worse) in enumerate(zip(images[:12], images[1:12])):
        judge(project, rater, better, worse, f"chain{i}")
    refill_pair_queue(project, seed=9, policy=POLICY)
    assert HumanScore.objects.get(image=images[12]).mean == pytest.approx(HumanScore.objects.get(image=images[15]).mean)

    # A version whose scores agree with the chain and rank the new images 12 > 13 > 14 > 15.
    version = ModelVersion.objects.create(project=project, status=ModelVersion.Status.SCORING, encoder_id="tiny-v1")
    ImageScore.objects.bulk_create(
        ImageScore(model_version=version, image=image, mean=9.5 - 0.5 * k, distribution=[0.1] * 10)
        for k, image in enumerate(images)
    )
    order = []
    monkeypatch.setattr("worker.dispatch.send_metrics_refresh", lambda project_id: order.append("metrics"))
    monkeypatch.setattr("worker.dispatch.send_pair_refill",
                        lambda project_id: order.append(refill_pair_queues.run(project_id, force=True)))
    with django_capture_on_commit_callbacks(execute=True):
        assert scoring.activate(version)

    # The activation's refill ran at once, refitting the human scores with the version as the prior ...
    assert len(order) == 2 and order[1][0]["model_prior_version"] == version.pk
    fit = human_scores.fit_project_posterior(project)
    means = dict(HumanScore.objects.filter(project=project).values_list("image_id", "mean"))
    uncompared = [means[image.pk] for image in images[12:]]
    assert uncompared == sorted(uncompared, reverse=True) and uncompared[0] > uncompared[-1]
    # ... and the queue now holds the pairs that posterior makes informative, served first.
    stored = fit.posterior
    rows = list(PairCandidate.objects.filter(project=project, source="active", is_open=True))
    index = {image_id: k for k, image_id in enumerate(fit.image_ids.tolist())}
    expected = pair_information(stored, np.array([index[r.image_low_id] for r in rows]),
                                np.array([index[r.image_high_id] for r in rows]))
    np.testing.assert_allclose([r.priority for r in rows], expected, rtol=1e-6)
    best = max(rows, key=lambda r: (r.priority, -r.pk))
    assert next_pair(project, rater)[1].candidate_id == best.pk


@pytest.mark.django_db
def test_a_failing_refill_check_does_not_fail_the_stored_judgment(project, rater, twelve_images, monkeypatch,
                                                                   django_capture_on_commit_callbacks):
    def broken(project):
        raise RuntimeError("database went away")

    monkeypatch.setattr("modeling.services.pair_selection.refill_after_comparison", broken)
    refill_pair_queue(project, seed=6)
    with django_capture_on_commit_callbacks(execute=True):
        stored = submit(project, rater, "robust")
    assert Comparison.objects.filter(pk=stored.pk).exists()
