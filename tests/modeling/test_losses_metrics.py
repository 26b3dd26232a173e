"""Losses and metrics against values computed by hand."""
import math

import numpy as np
import pytest
import torch

from modeling.ml.losses import emd_loss, pairwise_loss, ranking_loss, ranking_outcomes, ranking_target
from modeling.ml.metrics import emd, evaluate_scores, format_row, kl_divergence, pairwise_agreement


def one_hot(score):
    d = np.zeros(10)
    d[score - 1] = 1.0
    return d


# -- EMD -------------------------------------------------------------------------------------------------
def test_emd_opposite_ends():
    # CDF difference is 1 on bins 1..9 and 0 on bin 10: sqrt(9/10).
    p, t = one_hot(1), one_hot(10)
    assert emd(t[None], p[None])[0] == pytest.approx(math.sqrt(0.9))
    loss = emd_loss(torch.tensor(p[None]), torch.tensor(t[None]))
    assert float(loss) == pytest.approx(math.sqrt(0.9))


def test_emd_uniform_against_point_mass():
    # uniform CDF k/10 against a step at 5: diffs .1 .2 .3 .4 -.5 -.4 -.3 -.2 -.1 0, squares sum to .85
    p, t = np.full(10, 0.1), one_hot(5)
    assert emd(t[None], p[None])[0] == pytest.approx(math.sqrt(0.085))
    assert float(emd_loss(torch.tensor(p[None]), torch.tensor(t[None]))) == pytest.approx(math.sqrt(0.085))
    # r = 1 is the mean absolute CDF difference: 2.5 / 10
    assert float(emd_loss(torch.tensor(p[None]), torch.tensor(t[None]), r=1)) == pytest.approx(0.25)


def test_emd_zero_for_identical_and_batched_mean():
    p = np.stack([one_hot(3), np.full(10, 0.1)])
    assert float(emd_loss(torch.tensor(p), torch.tensor(p))) == pytest.approx(0.0, abs=1e-5)
    t = np.stack([one_hot(3), one_hot(5)])  # per image: 0 and sqrt(.085)
    assert float(emd_loss(torch.tensor(p), torch.tensor(t))) == pytest.approx(math.sqrt(0.085) / 2, abs=1e-5)


# -- KL ----------------------------------------------------------------------------------------------------
def test_kl_reference_given_predicted():
    ref = np.zeros(10)
    ref[:2] = [0.5, 0.5]
    pred = np.zeros(10)
    pred[:2] = [0.25, 0.75]
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert kl_divergence(ref[None], pred[None])[0] == pytest.approx(expected, rel=1e-4)
    # the direction matters: KL(pred || ref) is a different number
    reverse = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert kl_divergence(pred[None], ref[None])[0] == pytest.approx(reverse, rel=1e-4)
    assert abs(expected - reverse) > 1e-3


def test_kl_is_finite_when_prediction_has_zero_bins():
    kl = kl_divergence(one_hot(2)[None], one_hot(7)[None], eps=1e-6)[0]
    assert np.isfinite(kl) and kl > 10  # about log(1/eps)


# -- correlations, error, binary accuracy, pairwise agreement --------------------------------------------
def test_correlations_by_hand():
    pred = np.array([1.0, 2.0, 3.0, 4.0])
    ref = np.array([2.0, 1.0, 4.0, 3.0])
    m = evaluate_scores(pred, ref_mean=ref)
    # ranks equal values: rho = 1 - 6*4 / (4*15) = 0.6; tau: 4 concordant, 2 discordant pairs
    assert m["srcc"] == pytest.approx(0.6)
    assert m["lcc"] == pytest.approx(0.6)
    assert m["kendall_tau"] == pytest.approx(2 / 6)
    assert m["error_mean"] == pytest.approx(1.0)
    assert m["error_std"] == pytest.approx(0.0)


def test_pearson_by_hand():
    m = evaluate_scores(np.array([1.0, 2.0, 3.0, 4.0]), ref_mean=np.array([1.0, 2.0, 3.0, 5.0]))
    assert m["lcc"] == pytest.approx(6.5 / math.sqrt(5 * 8.75))
    assert m["srcc"] == pytest.approx(1.0)


def test_binary_accuracy_at_five():
    m = evaluate_scores(np.array([4.0, 6.0, 7.0, 3.0]), ref_mean=np.array([6.0, 6.0, 4.0, 3.0]))
    assert m["binary_accuracy"] == pytest.approx(0.5)


def test_pairwise_agreement_excludes_ties_and_counts_predicted_ties_half():
    mean = np.array([1.0, 2.0, 3.0, 3.0])
    a, b = np.array([0, 2, 1, 0, 2]), np.array([1, 0, 2, 2, 3])
    outcome = np.array([0.0, 1.0, 1.0, 0.5, 1.0])
    # agree, agree, disagree, (tie: left out), predicted tie: half
    assert pairwise_agreement(mean, a, b, outcome) == pytest.approx(2.5 / 4)


def test_reference_mean_derived_from_distribution_and_missing_inputs_are_none():
    ref = np.stack([one_hot(2), one_hot(8), 0.5 * one_hot(4) + 0.5 * one_hot(6)])
    m = evaluate_scores(np.array([2.0, 8.0, 5.0]), ref_dist=ref, pred_dist=ref)
    assert m["error_mean"] == pytest.approx(0.0)
    assert m["emd"] == pytest.approx(0.0)
    assert m["pairwise_agreement"] is None

    bare = evaluate_scores(np.array([1.0, 2.0]))
    for k in ("error_mean", "lcc", "srcc", "kendall_tau", "kl", "emd", "binary_accuracy", "pairwise_agreement"):
        assert bare[k] is None
    assert "-" in format_row("x", bare)


# -- pairwise and ranking losses -----------------------------------------------------------------------
def test_pairwise_loss_by_hand():
    a, b = torch.tensor([1.0]), torch.tensor([0.0])
    assert float(pairwise_loss(a, b, torch.tensor([1.0]))) == pytest.approx(math.log1p(math.exp(-1)))
    assert float(pairwise_loss(a, b, torch.tensor([0.0]))) == pytest.approx(math.log1p(math.exp(1)))
    tie = 0.5 * (math.log1p(math.exp(-1)) + math.log1p(math.exp(1)))
    assert float(pairwise_loss(a, b, torch.tensor([0.5]))) == pytest.approx(tie)
    # symmetric: swapping the images and the outcome gives the same loss
    assert float(pairwise_loss(b, a, torch.tensor([0.0]))) == pytest.approx(math.log1p(math.exp(-1)))


def test_ranking_target_with_and_without_lambda():
    mean = torch.tensor([5.0, 5.2, 6.0])
    sim = torch.tensor([0.9, 0.1, 0.0])
    assert torch.equal(ranking_target(mean, sim, 0.0), mean)
    t = ranking_target(mean, sim, 1.0)
    assert torch.allclose(t, torch.tensor([5.9, 5.3, 6.0]))
    # with lambda = 1 image 0 now outranks image 1; image 2 still outranks both
    assert ranking_outcomes(t[0:1], t[1:2]).item() == 1.0
    assert ranking_outcomes(ranking_target(mean, sim, 0.0)[0:1], mean[1:2]).item() == 0.0
    assert ranking_outcomes(torch.tensor([3.0]), torch.tensor([3.0])).item() == 0.5
    loss = ranking_loss(torch.tensor([2.0]), torch.tensor([0.0]), t[0:1], t[1:2])
    assert float(loss) == pytest.approx(math.log1p(math.exp(-2)))
