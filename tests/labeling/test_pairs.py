"""Pair serving: leases, overlap, expiry, gold pairs, the queue, the fallback, and concurrency."""
from __future__ import annotations

import random
import time
import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from labeling.models import (
    Comparison,
    GoldPair,
    Image,
    ImageStats,
    Membership,
    PairCandidate,
    PairLease,
    Project,
)
from labeling.services import image_stats, leases, pair_queue, pair_serving
from labeling.services.comparisons import submit_comparison
from labeling.services.pair_serving import next_pair
from labeling.services.pair_sql import ordered


def judge(project, rater, lease, winner="a", key=None):
    return submit_comparison(project, rater, lease=lease.token, winner=winner, client_key=key or str(lease.token))[0]


def unordered(lease) -> tuple[int, int]:
    return ordered(lease.image_a_id, lease.image_b_id)


def make_rater(make_user, project, name):
    user = make_user(name)
    Membership.objects.create(project=project, user=user, role=Membership.Role.RATER)
    return user


@pytest.mark.django_db
def test_next_pair_leases_two_images_of_the_project_with_an_expiry(project, images, rater, settings):
    settings.TAGRANK_LEASE_SECONDS = 120
    (left, right), lease = next_pair(project, rater)
    assert left != right and {left.project_id, right.project_id} == {project.pk}
    assert (lease.image_a, lease.image_b) == (left, right)
    assert lease.state == PairLease.State.LIVE and lease.rater == rater
    assert timedelta(seconds=119) < lease.expires_at - timezone.now() <= timedelta(seconds=120)


@pytest.mark.django_db
def test_a_rater_never_gets_a_pair_twice_and_runs_out_after_every_pair(project, images, rater):
    served = []
    while (result := next_pair(project, rater)) is not None:
        _, lease = result
        served.append(unordered(lease))
        judge(project, rater, lease)
    assert len(served) == len(set(served)) == 8 * 7 // 2  # every unordered pair exactly once, then nothing


@pytest.mark.django_db
def test_a_pair_judged_outside_leases_in_either_order_is_not_served_to_that_rater(project, image_bytes, rater):
    from labeling.services.imports import store_image

    first = store_image(project, "x.png", image_bytes(seed=1))[0]
    second = store_image(project, "y.png", image_bytes(seed=2))[0]
    # Judged once with `second` on the left, written directly (e.g. an import of older judgments).
    Comparison.objects.create(project=project, image_a=second, image_b=first, outcome="a", rater=rater, client_key="old")
    assert next_pair(project, rater) is None


@pytest.mark.django_db
def test_overlap_bounds_live_leases_plus_judgments_per_pair(project, image_bytes, make_user):
    from labeling.services.imports import store_image

    project.overlap = 2
    project.save()
    store_image(project, "x.png", image_bytes(seed=1))
    store_image(project, "y.png", image_bytes(seed=2))  # one pair only
    raters = [make_rater(make_user, project, f"r{i}") for i in range(4)]
    (_, lease_1), (_, lease_2) = next_pair(project, raters[0]), next_pair(project, raters[1])
    assert unordered(lease_1) == unordered(lease_2)
    assert next_pair(project, raters[2]) is None  # two live leases fill the overlap
    judge(project, raters[0], lease_1)
    assert next_pair(project, raters[2]) is None  # one judgment + one live lease still fill it
    judge(project, raters[1], lease_2)
    assert next_pair(project, raters[3]) is None  # two judgments: done for good
    candidate = PairCandidate.objects.get(project=project)
    assert candidate.judgments == 2 and not candidate.is_open


@pytest.mark.django_db
def test_an_expired_lease_gives_its_slot_back(project, image_bytes, make_user, settings):
    from labeling.services.imports import store_image

    settings.TAGRANK_LEASE_SECONDS = 1
    store_image(project, "x.png", image_bytes(seed=1))
    store_image(project, "y.png", image_bytes(seed=2))
    first, second = make_rater(make_user, project, "r1"), make_rater(make_user, project, "r2")
    _, lease = next_pair(project, first)
    assert next_pair(project, second) is None
    time.sleep(1.1)
    _, second_lease = next_pair(project, second)
    assert unordered(second_lease) == unordered(lease)
    assert PairLease.objects.filter(state=PairLease.State.LIVE, expires_at__gt=timezone.now()).count() == 1


@pytest.mark.django_db
def test_skip_returns_the_slot_to_others_but_not_to_the_rater_who_skipped(project, image_bytes, make_user):
    from labeling.services.imports import store_image

    store_image(project, "x.png", image_bytes(seed=1))
    store_image(project, "y.png", image_bytes(seed=2))
    first, second = make_rater(make_user, project, "r1"), make_rater(make_user, project, "r2")
    _, lease = next_pair(project, first)
    leases.end_lease(project, first, lease.token, skip=True)
    assert next_pair(project, first) is None
    assert next_pair(project, second) is not None


@pytest.mark.django_db
def test_release_returns_the_slot_to_everyone_including_the_rater(project, image_bytes, rater):
    from labeling.services.imports import store_image

    store_image(project, "x.png", image_bytes(seed=1))
    store_image(project, "y.png", image_bytes(seed=2))
    _, lease = next_pair(project, rater)
    assert next_pair(project, rater) is None
    assert leases.release_leases(project, rater, [lease.token, "not-a-token"]) == 1
    assert next_pair(project, rater) is not None


@pytest.mark.django_db
def test_left_and_right_are_randomised(project, images, make_user):
    rng = random.Random(4)
    first_is_lower = Counter()
    for index in range(40):
        rater = make_rater(make_user, project, f"r{index}")
        _, lease = pair_serving.next_pair(project, rater, rng=rng)
        first_is_lower[lease.image_a_id < lease.image_b_id] += 1
        leases.end_lease(project, rater, lease.token, skip=False)
    assert first_is_lower[True] >= 8 and first_is_lower[False] >= 8


@pytest.mark.django_db
def test_fallback_pairs_the_images_with_the_fewest_comparisons(project, images, make_user):
    """Six of eight images already have comparisons: every pair served holds one of the two that have none."""
    veteran = make_rater(make_user, project, "veteran")
    for index, (first, second) in enumerate([(0, 1), (2, 3), (4, 5), (0, 2), (1, 3)]):
        Comparison.objects.create(project=project, image_a=images[first], image_b=images[second], outcome="a",
                                  rater=veteran, client_key=f"k{index}")
    assert ImageStats.objects.get(image=images[6]).comparison_count == 0
    assert ImageStats.objects.get(image=images[0]).comparison_count == 2
    never_compared = {images[6].pk, images[7].pk}
    partners = set()
    newcomer = make_rater(make_user, project, "newcomer")
    for index in range(12):
        lease = pair_serving.lease_from_fallback(project, newcomer, rng=random.Random(index))
        pair = set(unordered(lease))
        assert pair & never_compared, "a pair without any never-compared image"
        partners |= pair - never_compared
        # Forget it again, so that the next draw starts from the same state.
        PairLease.objects.filter(pk=lease.pk).delete()
        PairCandidate.objects.all().delete()
    assert len(partners) >= 3  # partners are drawn at random, not always the same image


@pytest.mark.django_db
def test_image_stats_follow_comparisons_and_recount_repairs_bulk_loads(project, images, rater):
    _, lease = next_pair(project, rater)
    judge(project, rater, lease)
    assert ImageStats.objects.get(image_id=lease.image_a_id).comparison_count == 1
    from labeling.services.comparisons import undo_last_comparison

    undo_last_comparison(project, rater)
    assert ImageStats.objects.get(image_id=lease.image_a_id).comparison_count == 0
    # Rows written in bulk bypass the signals; the fallback notices missing counters and repairs them.
    ImageStats.objects.filter(image__in=images[:4]).delete()
    Comparison.objects.bulk_create([Comparison(project=project, image_a=images[0], image_b=images[1], outcome="a",
                                               rater=rater, client_key="bulk")])
    assert next_pair(project, rater) is not None
    assert ImageStats.objects.filter(project=project).count() == 8
    assert ImageStats.objects.get(image=images[0]).comparison_count == 1
    # A full recount puts every counter right, e.g. after comparisons were deleted in the admin.
    Comparison.objects.all().delete()
    assert image_stats.recount_image_stats(project) == 8
    assert set(ImageStats.objects.values_list("comparison_count", flat=True)) == {0}


@pytest.mark.django_db
def test_deleting_a_project_or_image_with_judgments_is_refused(project, images, rater):
    from django.db.models import ProtectedError

    _, lease = next_pair(project, rater)
    judge(project, rater, lease)
    next_pair(project, rater)
    with pytest.raises(ProtectedError):
        project.delete()
    with pytest.raises(ProtectedError):
        Image.objects.get(pk=lease.image_a_id).delete()
    assert Comparison.objects.count() == 1 and ImageStats.objects.count() == len(images)


@pytest.mark.django_db
def test_queue_serves_highest_priority_first_and_falls_back_when_empty(project, images, rater, second_rater):
    pair_queue.enqueue_pairs(project, [(images[0].pk, images[1].pk, 0.2), (images[3].pk, images[2].pk, 0.9)])
    _, lease = next_pair(project, rater)
    assert unordered(lease) == (images[2].pk, images[3].pk)
    assert lease.candidate.source == PairCandidate.Source.ACTIVE
    judge(project, rater, lease)
    _, lease = next_pair(project, rater)
    assert unordered(lease) == (images[0].pk, images[1].pk)
    judge(project, rater, lease)
    _, lease = next_pair(project, rater)  # queue used up: the fallback
    assert lease.candidate.source == PairCandidate.Source.FALLBACK
    # Another rater still gets the queued pairs? No: overlap 1, both are done.
    assert PairCandidate.objects.filter(source=PairCandidate.Source.ACTIVE, is_open=True).count() == 0


@pytest.mark.django_db
def test_enqueue_replace_drops_stale_unleased_rows_only(project, images, rater):
    pair_queue.enqueue_pairs(project, [(images[0].pk, images[1].pk, 1.0), (images[2].pk, images[3].pk, 0.5)])
    _, leased = next_pair(project, rater)  # leases the 0-1 pair
    pair_queue.enqueue_pairs(project, [(images[4].pk, images[5].pk, 0.7)], replace=True)
    remaining = set(PairCandidate.objects.filter(project=project).values_list("image_low_id", "image_high_id"))
    assert ordered(images[4].pk, images[5].pk) in remaining
    assert unordered(leased) in remaining  # leased rows stay: their lease points at them
    assert ordered(images[2].pk, images[3].pk) not in remaining
    assert pair_queue.open_queue_size(project) == 2


@pytest.mark.django_db
def test_raising_the_overlap_reopens_finished_pairs(project, image_bytes, make_user):
    from labeling.services.imports import store_image

    store_image(project, "x.png", image_bytes(seed=1))
    store_image(project, "y.png", image_bytes(seed=2))
    first, second = make_rater(make_user, project, "r1"), make_rater(make_user, project, "r2")
    judge(project, first, next_pair(project, first)[1])
    assert next_pair(project, second) is None
    project.overlap = 2
    project.save()
    pair_queue.reopen_for_overlap(project)
    assert next_pair(project, second) is not None


@pytest.mark.django_db
def test_gold_pairs_are_served_at_the_gold_rate_and_scored(project, images, rater):
    project.gold_rate = 1.0
    project.save()
    gold = GoldPair.objects.create(project=project, image_a=images[0], image_b=images[1], expected="a")
    _, lease = next_pair(project, rater)
    assert lease.gold == gold and unordered(lease) == (images[0].pk, images[1].pk)
    # The right answer follows the image, wherever it was shown.
    right_answer = "a" if lease.image_a_id == images[0].pk else "b"
    comparison = judge(project, rater, lease, winner=right_answer)
    assert comparison.is_gold and comparison.gold_correct is True
    _, lease = next_pair(project, rater)  # the only gold pair is done: regular pairs follow
    assert lease.gold is None and lease.candidate is not None


@pytest.mark.django_db
def test_a_wrong_answer_on_a_gold_pair_is_recorded_as_wrong(project, images, rater):
    project.gold_rate = 1.0
    project.save()
    GoldPair.objects.create(project=project, image_a=images[0], image_b=images[1], expected="b")
    _, lease = next_pair(project, rater)
    wrong = "a" if lease.image_b_id == images[1].pk else "b"
    assert judge(project, rater, lease, winner=wrong).gold_correct is False


@pytest.mark.django_db
def test_gold_rate_zero_never_serves_gold(project, images, rater):
    GoldPair.objects.create(project=project, image_a=images[0], image_b=images[1], expected="a")
    project.gold_rate = 0.0  # said here, not left to the model's default
    project.save(update_fields=["gold_rate"])
    for _ in range(10):
        _, lease = next_pair(project, rater)
        assert lease.gold is None
        judge(project, rater, lease)


def _lease_concurrently(project_id: int, rater_ids: list[int], requests_per_rater: int) -> list[int | None]:
    """Every rater asks for pairs from its own thread (own connection), all starting at once."""
    barrier = threading.Barrier(len(rater_ids))
    results: list[int | None] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(rater_id):
        try:
            from django.contrib.auth import get_user_model

            project = Project.objects.get(pk=project_id)
            rater = get_user_model().objects.get(pk=rater_id)
            barrier.wait(timeout=30)
            for _ in range(requests_per_rater):
                result = next_pair(project, rater)
                with lock:
                    results.append(result[1].pk if result else None)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(rater_id,)) for rater_id in rater_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return results


@pytest.mark.parametrize("database", [connection.vendor])  # PostgreSQL in CI: row locks; SQLite: write lock
@pytest.mark.parametrize("overlap", [1, 2])
@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_never_over_lease_a_pair(database, overlap, image_bytes, make_user, settings):
    """16 raters ask for 3 pairs each at the same moment; 6 images make 15 pairs, i.e. 15 * overlap slots.

    Every slot is handed out exactly once (no over-lease, none lost), and no rater gets a pair twice.
    """
    from labeling.services.imports import store_image

    settings.TAGRANK_MAX_LIVE_LEASES = 0  # each rater holds three leases here: no cap

    assert connection.vendor == database
    project = Project.objects.create(name="Busy", slug=f"busy-{overlap}", overlap=overlap)
    for index in range(6):
        store_image(project, f"{index}.png", image_bytes(seed=50 + index))
    raters = [make_rater(make_user, project, f"busy-{overlap}-{index}") for index in range(16)]
    # Half of the slots come from the queue (active selection), half from the fallback.
    ids = list(Image.objects.filter(project=project).values_list("pk", flat=True))
    pair_queue.enqueue_pairs(project, [(ids[0], ids[k], float(k)) for k in range(1, 6)])

    results = _lease_concurrently(project.pk, [r.pk for r in raters], requests_per_rater=3)

    granted = [lease_id for lease_id in results if lease_id is not None]
    assert len(granted) == 15 * overlap  # 48 requests for 15 * overlap slots
    handed = PairLease.objects.filter(project=project)
    per_pair = Counter(ordered(a, b) for a, b in handed.values_list("image_a_id", "image_b_id"))
    assert len(per_pair) == 15 and set(per_pair.values()) == {overlap}
    per_rater_pair = Counter((r, ordered(a, b)) for r, a, b in handed.values_list("rater_id", "image_a_id", "image_b_id"))
    assert max(per_rater_pair.values()) == 1
    # A candidate's slots are the locked unit: one row per pair, never duplicated.
    assert PairCandidate.objects.filter(project=project).count() == 15


@pytest.mark.parametrize("database", [connection.vendor])  # PostgreSQL in CI: row locks; SQLite: write lock
@pytest.mark.django_db(transaction=True)
def test_a_refill_replacing_the_queue_keeps_a_pair_that_is_being_leased(database, image_bytes, make_user):
    """A refill (``replace``) drops the previous batch's never-leased rows. A row that a rater's lease
    transaction holds at that moment stays: deleting it would leave the new lease pointing at no candidate
    (on PostgreSQL the refill then failed at commit on the foreign key, and its whole batch was lost)."""
    from labeling.services.imports import store_image

    assert connection.vendor == database
    project = Project.objects.create(name="Refilled", slug="refilled")
    ids = [store_image(project, f"{index}.png", image_bytes(seed=80 + index))[0].pk for index in range(4)]
    rater = make_rater(make_user, project, "refilled-rater")
    pair_queue.enqueue_pairs(project, [(ids[0], ids[1], 1.0)])
    leased, may_commit, errors = threading.Event(), threading.Event(), []

    def lease_slowly():
        try:
            with transaction.atomic():
                next_pair(project, rater)  # the queue's only pair, its row locked until this commits
                leased.set()
                may_commit.wait(timeout=30)
                time.sleep(0.3)  # the refill below is waiting on this transaction (or skipped the row)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
            leased.set()
        finally:
            connections.close_all()

    thread = threading.Thread(target=lease_slowly)
    thread.start()
    assert leased.wait(timeout=30)
    may_commit.set()
    pair_queue.enqueue_pairs(project, [(ids[2], ids[3], 2.0)], replace=True)
    thread.join(timeout=60)
    assert not errors, errors

    lease = PairLease.objects.get(project=project, rater=rater)
    assert ordered(lease.image_a_id, lease.image_b_id) == (ids[0], ids[1])
    assert lease.candidate_id is not None and PairCandidate.objects.filter(pk=lease.candidate_id).exists()
    assert set(PairCandidate.objects.filter(project=project).values_list("image_low_id", "image_high_id")) == {
        (ids[0], ids[1]), (ids[2], ids[3])
    }
