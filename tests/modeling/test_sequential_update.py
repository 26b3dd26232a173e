"""Folding new comparisons into a stored posterior without a refit (a refill's posterior at scale)."""
import numpy as np
from scipy.stats import spearmanr

from modeling.ml.bradley_terry import Posterior, fit_posterior
from modeling.ml.sequential_update import update_with_comparisons
from tests.modeling.test_bradley_terry import simulated_comparisons


def test_a_win_moves_the_winner_up_the_loser_down_and_both_grow_surer():
    before = Posterior(np.zeros(3), np.array([1.0, 0.5, 1.0]))
    after = update_with_comparisons(before, np.array([0]), np.array([1]), np.array([1.0]))
    assert after.mean[0] > 0 > after.mean[1] and after.mean[2] == 0.0
    assert after.var[0] < 1.0 and after.var[1] < 0.5 and after.var[2] == 1.0
    assert after.mean[0] > -after.mean[1]  # the less certain image moves further
    np.testing.assert_array_equal(before.mean, np.zeros(3))  # the stored posterior is left as it was


def test_a_tie_between_equals_moves_neither():
    after = update_with_comparisons(Posterior(np.zeros(2), np.ones(2)), np.array([0]), np.array([1]), np.array([0.5]))
    np.testing.assert_allclose(after.mean, 0.0)
    assert np.all(after.var < 1.0)


def test_folding_in_new_comparisons_comes_closer_to_the_refit_than_the_stored_posterior():
    rng = np.random.default_rng(3)
    quality = rng.normal(size=300)
    old = simulated_comparisons(quality, 600, rng)
    new = simulated_comparisons(quality, 900, rng)
    stored = fit_posterior(300, *old)
    refit = fit_posterior(300, *(np.concatenate(parts) for parts in zip(old, new)))

    folded = update_with_comparisons(stored, *new)

    assert spearmanr(folded.mean, refit.mean)[0] > 0.98 > 0.9 > spearmanr(stored.mean, refit.mean)[0]
    assert np.mean(np.abs(folded.mean - refit.mean)) < 0.3 * np.mean(np.abs(stored.mean - refit.mean))
    assert np.mean(np.abs(folded.var - refit.var)) < 0.25 * np.mean(np.abs(stored.var - refit.var))
