"""A refill whose refit would take too long selects from the stored scores, with the judgments since folded in."""
from dataclasses import replace

import numpy as np
import pytest
from django.db import transaction

from labeling.models import Comparison, PairCandidate
from modeling.ml.selection import pair_information
from modeling.models import HumanScoreStamp
from modeling.services import human_score_writes, human_scores
from modeling.services.pair_selection import refill_pair_queue
from tests.modeling.test_pair_selection import POLICY, judge, twelve_images  # noqa: F401 (a fixture)

LONG_FIT = 1_000.0  # seconds: past any budget below


@pytest.fixture
def fitted(project, rater, twelve_images):  # noqa: F811
    """A chain of judgments (image i beats image i+1), fitted and stored by a first refill. The better image is
    shown on either side in turn: a rater who always chose the left one would be weighed as a careless clicker."""
    for i, (better, worse) in enumerate(zip(twelve_images, twelve_images[1:])):
        if i % 2:
            Comparison.objects.create(project=project, image_a=worse, image_b=better, outcome="b", rater=rater,
                                      client_key=f"k{i}")
        else:
            judge(project, rater, better, worse, f"k{i}")
    summary = refill_pair_queue(project, seed=1, policy=POLICY)
    assert summary["posterior"] == "refitted"
    return twelve_images


def stored_fit(project):
    """The stored scores brought up to date, as a refill past its budget takes them."""
    return human_scores.stored_fit(project, human_score_writes.last_fit(project)[0])


def stamp(project):
    return HumanScoreStamp.objects.get(project=project)


def queue(project):
    return sorted(PairCandidate.objects.filter(project=project, is_open=True).values_list(
        "image_low_id", "image_high_id", "priority"))


@pytest.mark.django_db
def test_a_fit_stores_how_long_it_took(project, fitted):
    fit = human_scores.fit_human_scores(project)
    assert stamp(project).fit_seconds == pytest.approx(fit.seconds) and fit.seconds > 0


@pytest.mark.django_db
def test_after_a_long_fit_the_refill_selects_from_the_stored_scores_without_refitting(project, rater, fitted):
    HumanScoreStamp.objects.filter(project=project).update(fit_seconds=LONG_FIT)
    version = stamp(project).version
    judge(project, rater, fitted[11], fitted[0], "upset")

    summary = refill_pair_queue(project, seed=2, policy=POLICY)

    assert summary["posterior"] == "stored" and summary["comparisons_folded_in"] == 1
    assert summary["pairs"] > 0 and len(queue(project)) == summary["pairs"]
    assert stamp(project).version == version  # no fit was stored
    # With a budget above the last fit's time, the refill refits first again.
    summary = refill_pair_queue(project, seed=2, policy=replace(POLICY, refit_budget_seconds=2 * LONG_FIT))
    assert summary["posterior"] == "refitted" and stamp(project).version == version + 1


@pytest.mark.django_db
def test_with_nothing_new_the_stored_scores_give_the_queue_a_refit_gives(project, fitted):
    savepoint = transaction.savepoint()
    refill_pair_queue(project, seed=3, policy=POLICY)
    refitted = queue(project)
    transaction.savepoint_rollback(savepoint)
    HumanScoreStamp.objects.filter(project=project).update(fit_seconds=LONG_FIT)

    assert refill_pair_queue(project, seed=3, policy=POLICY)["posterior"] == "stored"
    stored = queue(project)
    assert [row[:2] for row in stored] == [row[:2] for row in refitted] and stored
    np.testing.assert_allclose([row[2] for row in stored], [row[2] for row in refitted], atol=1e-6)


@pytest.mark.django_db
def test_judgments_since_the_fit_count_in_the_stored_posterior(project, rater, fitted):
    image_ids, before, counts_before, folded = stored_fit(project)
    assert folded == 0
    first, second = 3, 4  # neighbours in the chain: the pair the chain says least about
    information = pair_information(before, np.array([first]), np.array([second]))[0]
    for key in range(3):
        judge(project, rater, fitted[second], fitted[first], f"again{key}")  # an upset, three times

    _, after, counts_after, folded = stored_fit(project)

    assert folded == 3 and Comparison.objects.filter(project=project).count() == 14
    assert counts_after[first] == counts_before[first] + 3 and counts_after[second] == counts_before[second] + 3
    assert after.mean[second] - after.mean[first] > before.mean[second] - before.mean[first]
    assert after.var[first] < before.var[first] and after.var[second] < before.var[second]
    assert pair_information(after, np.array([first]), np.array([second]))[0] < information
    assert list(image_ids) == [image.pk for image in fitted]
