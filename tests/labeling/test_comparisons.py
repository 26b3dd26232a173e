"""Storing judgments: one transaction, idempotent replays, every refusal with its reason, and undo."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from core.api_errors import refusal_status
from labeling.models import Comparison, ImageStats, Membership, PairCandidate, PairLease, Project
from labeling.services import comparisons as service
from labeling.services import leases, pair_serving
from labeling.services.leases import LeaseClosed, LeaseExpired, LeaseForeign, LeaseUnknown, LeaseWrongProject


@pytest.fixture
def leased(project, images, rater):
    return pair_serving.next_pair(project, rater)[1]


def submit(project, rater, lease, winner="a", key="key-1", response_ms=850):
    token = lease.token if isinstance(lease, PairLease) else lease
    return service.submit_comparison(project, rater, lease=token, winner=winner, client_key=key, response_ms=response_ms)


@pytest.mark.django_db
def test_submit_stores_the_judgment_with_left_as_image_a(project, rater, leased):
    comparison, created = submit(project, rater, leased, winner="b")
    assert created
    assert (comparison.image_a_id, comparison.image_b_id) == (leased.image_a_id, leased.image_b_id)
    assert (comparison.outcome, comparison.response_ms, comparison.client_key) == ("b", 850, "key-1")
    leased.refresh_from_db()
    assert leased.state == PairLease.State.JUDGED and leased.comparison == comparison
    assert ImageStats.objects.get(image_id=leased.image_a_id).comparison_count == 1
    candidate = PairCandidate.objects.get(pk=leased.candidate_id)
    assert candidate.judgments == 1 and not candidate.is_open


@pytest.mark.django_db
def test_a_replay_with_the_same_client_key_returns_the_original_and_stores_nothing(project, rater, leased):
    first, _ = submit(project, rater, leased, winner="a")
    again, created = submit(project, rater, leased, winner="b", response_ms=10)  # a retry, even if garbled
    assert not created and again.pk == first.pk and again.outcome == "a"
    assert Comparison.objects.count() == 1
    assert ImageStats.objects.get(image_id=leased.image_a_id).comparison_count == 1


@pytest.mark.django_db
def test_a_replay_is_answered_even_after_the_lease_expired(project, rater, leased):
    first, _ = submit(project, rater, leased)
    PairLease.objects.filter(pk=leased.pk).update(expires_at=timezone.now() - timedelta(hours=1))
    again, created = submit(project, rater, leased)
    assert not created and again.pk == first.pk


@pytest.mark.django_db
def test_the_same_client_key_for_another_pair_is_refused(project, rater, leased):
    submit(project, rater, leased, key="dup")
    _, other = pair_serving.next_pair(project, rater)
    with pytest.raises(service.ClientKeyReused) as refused:
        submit(project, rater, other, key="dup")
    assert refusal_status(refused.value) == 409
    assert Comparison.objects.count() == 1


@pytest.mark.django_db
def test_a_second_judgment_of_a_judged_lease_is_refused(project, rater, leased):
    submit(project, rater, leased, key="one")
    with pytest.raises(LeaseClosed, match="already judged"):
        submit(project, rater, leased, key="two")


@pytest.mark.django_db
def test_an_expired_lease_is_refused_and_nothing_is_stored(project, rater, leased):
    PairLease.objects.filter(pk=leased.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(LeaseExpired, match="expired") as refused:
        submit(project, rater, leased)
    assert refusal_status(refused.value) == 410
    assert Comparison.objects.count() == 0
    assert ImageStats.objects.get(image_id=leased.image_a_id).comparison_count == 0


@pytest.mark.django_db
def test_another_raters_lease_is_refused(project, rater, second_rater, leased):
    with pytest.raises(LeaseForeign, match="another rater") as refused:
        submit(project, second_rater, leased)
    assert refusal_status(refused.value) == 403


@pytest.mark.django_db
def test_a_lease_of_another_project_is_refused(project, rater, leased, other_project):
    Membership.objects.create(project=other_project, user=rater)
    with pytest.raises(LeaseWrongProject, match="another project"):
        submit(other_project, rater, leased)


@pytest.mark.django_db
def test_unknown_and_malformed_leases_are_refused(project, rater, images):
    with pytest.raises(LeaseUnknown, match="Unknown lease"):
        submit(project, rater, uuid.uuid4())
    with pytest.raises(LeaseUnknown, match="not a valid"):
        submit(project, rater, "not-a-uuid")


@pytest.mark.django_db
def test_images_from_another_project_are_refused(project, rater, leased, other_project, image_bytes):
    from labeling.services.imports import store_image

    foreign = store_image(other_project, "foreign.png", image_bytes(seed=99))[0]
    PairLease.objects.filter(pk=leased.pk).update(image_b=foreign)  # a lease row tampered with by hand
    with pytest.raises(service.ImagesOutsideProject):
        submit(project, rater, leased)
    assert Comparison.objects.count() == 0


@pytest.mark.django_db
def test_ties_are_refused_where_the_project_disallows_them(project, rater, leased):
    Project.objects.filter(pk=project.pk).update(allow_ties=False)
    project.refresh_from_db()
    with pytest.raises(service.TiesNotAllowed, match="does not allow ties"):
        submit(project, rater, leased, winner="tie")
    assert submit(project, rater, leased, winner="a")[1]


@pytest.mark.django_db
def test_bad_winner_key_and_response_time_are_refused(project, rater, leased):
    with pytest.raises(service.ComparisonRefused, match="Unknown winner"):
        submit(project, rater, leased, winner="left")
    with pytest.raises(service.ComparisonRefused, match="client_key"):
        submit(project, rater, leased, key="")
    with pytest.raises(service.ComparisonRefused, match="response_ms"):
        submit(project, rater, leased, response_ms=-5)
    assert Comparison.objects.count() == 0


@pytest.mark.django_db
def test_a_skipped_lease_cannot_be_judged(project, rater, leased):
    leases.end_lease(project, rater, leased.token, skip=True)
    with pytest.raises(LeaseClosed, match="skipped"):
        submit(project, rater, leased)


@pytest.mark.django_db
def test_undo_deletes_the_latest_judgment_and_leases_the_pair_again(project, rater, leased):
    comparison, _ = submit(project, rater, leased)
    new_lease, undone_id = service.undo_last_comparison(project, rater, comparison_id=comparison.pk)
    assert undone_id == comparison.pk
    assert not Comparison.objects.filter(pk=comparison.pk).exists()
    assert (new_lease.image_a_id, new_lease.image_b_id) == (leased.image_a_id, leased.image_b_id)  # same sides
    assert new_lease.state == PairLease.State.LIVE and new_lease.candidate_id == leased.candidate_id
    leased.refresh_from_db()
    assert leased.state == PairLease.State.UNDONE
    assert ImageStats.objects.get(image_id=leased.image_a_id).comparison_count == 0
    # The old lease is finished; the new one takes the judgment.
    with pytest.raises(LeaseClosed, match="undone"):
        submit(project, rater, leased, key="again")
    assert submit(project, rater, new_lease, key="again", winner="b")[0].outcome == "b"


@pytest.mark.django_db
def test_undo_only_the_latest_and_only_within_the_window(project, rater, leased, settings):
    first, _ = submit(project, rater, leased, key="first")
    _, second_lease = pair_serving.next_pair(project, rater)
    second, _ = submit(project, rater, second_lease, key="second")
    with pytest.raises(service.UndoRefused, match="latest"):
        service.undo_last_comparison(project, rater, comparison_id=first.pk)
    Comparison.objects.filter(pk=second.pk).update(created_at=timezone.now() - timedelta(seconds=120))
    settings.TAGRANK_UNDO_SECONDS = 60
    with pytest.raises(service.UndoRefused, match="Too late"):
        service.undo_last_comparison(project, rater)
    assert Comparison.objects.count() == 2


@pytest.mark.django_db
def test_undo_with_nothing_to_undo(project, rater, images):
    with pytest.raises(service.NothingToUndo):
        service.undo_last_comparison(project, rater)
    with pytest.raises(service.NothingToUndo):
        service.undo_last_comparison(project, rater, comparison_id=12345)


@pytest.mark.django_db
def test_progress_counts_per_day_and_per_rater_with_gold_accuracy(project, rater, second_rater, images, manager):
    from labeling.models import GoldPair

    project.gold_rate = 1.0
    project.save()
    GoldPair.objects.create(project=project, image_a=images[0], image_b=images[1], expected="a")
    _, gold_lease = pair_serving.next_pair(project, rater)
    right = "a" if gold_lease.image_a_id == images[0].pk else "b"
    submit(project, rater, gold_lease, winner=right, key="gold")
    _, gold_lease_2 = pair_serving.next_pair(project, second_rater)
    wrong = "b" if gold_lease_2.image_a_id == images[0].pk else "a"
    submit(project, second_rater, gold_lease_2, winner=wrong, key="gold-2")

    progress = service.project_progress(project)
    assert progress["comparisons"] == 2
    assert progress["per_day"] == [{"day": timezone.now().date(), "comparisons": 2}]
    by_name = {row["username"]: row for row in progress["per_rater"]}
    assert by_name["rater1"]["gold_accuracy"] == 1.0 and by_name["rater2"]["gold_accuracy"] == 0.0
    assert by_name["manager1"]["comparisons"] == 0 and by_name["manager1"]["gold_accuracy"] is None
    assert progress["pairs_remaining"]["images_never_compared"] == 6
