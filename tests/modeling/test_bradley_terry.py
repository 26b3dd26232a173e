"""The human-score posterior: Bradley–Terry MAP fit with a Gaussian prior and Laplace variances."""

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import expit, log_expit, ndtr
from scipy.stats import spearmanr

from modeling.ml.bradley_terry import (
    FitConfig,
    Posterior,
    comparison_counts,
    fit_posterior,
    map_model_to_bt_scale,
    mean_posterior_variance,
    win_probability,
)


def simulated_comparisons(quality, n_comparisons, rng, noise=1.0):
    """Random pairs judged by a Thurstone observer: (a_index, b_index, outcome)."""
    n_images = quality.shape[0]
    a_index = rng.integers(0, n_images, size=n_comparisons)
    b_index = (a_index + rng.integers(1, n_images, size=n_comparisons)) % n_images
    outcome = (rng.random(n_comparisons) < ndtr((quality[a_index] - quality[b_index]) / noise)).astype(float)
    return a_index, b_index, outcome


def test_means_order_a_synthetic_set_given_enough_comparisons():
    rng = np.random.default_rng(0)
    quality = np.linspace(-2.0, 2.0, 40)
    a_index, b_index, outcome = simulated_comparisons(quality, 40 * 60, rng)

    posterior = fit_posterior(40, a_index, b_index, outcome)

    assert spearmanr(posterior.mean, quality)[0] > 0.97
    assert np.argmax(posterior.mean) >= 37 and np.argmin(posterior.mean) <= 2


def test_more_comparisons_order_better():
    rng = np.random.default_rng(1)
    quality = rng.normal(size=200)
    a_index, b_index, outcome = simulated_comparisons(quality, 200 * 30, rng)
    srcc = [
        spearmanr(fit_posterior(200, a_index[:m], b_index[:m], outcome[:m]).mean, quality)[0]
        for m in (200, 1000, 6000)
    ]
    assert srcc[0] < srcc[1] < srcc[2]


def test_fit_is_the_map_optimum_with_ties_weights_and_prior():
    rng = np.random.default_rng(2)
    n_images = 60
    quality = rng.normal(size=n_images)
    a_index, b_index, outcome = simulated_comparisons(quality, 400, rng)
    outcome[::7] = 0.5
    weight = rng.uniform(0.2, 2.0, size=outcome.size)
    prior_mean = rng.normal(scale=0.5, size=n_images)
    prior_var = rng.uniform(0.5, 3.0, size=n_images)

    posterior = fit_posterior(n_images, a_index, b_index, outcome, weight, prior_mean, prior_var)

    def negative_log_posterior(s):
        diff = s[a_index] - s[b_index]
        residual = weight * (outcome - expit(diff))
        gradient = (s - prior_mean) / prior_var - np.bincount(a_index, residual, n_images) + np.bincount(
            b_index, residual, n_images
        )
        value = np.sum((s - prior_mean) ** 2 / prior_var) / 2 - np.sum(weight * (log_expit(-diff) + outcome * diff))
        return value, gradient

    reference = minimize(
        negative_log_posterior, np.zeros(n_images), jac=True, method="L-BFGS-B", options={"gtol": 1e-10, "ftol": 1e-15}
    ).x
    np.testing.assert_allclose(posterior.mean, reference, atol=1e-5)
    assert np.max(np.abs(negative_log_posterior(posterior.mean)[1])) < 1e-6


def test_variance_shrinks_as_comparisons_are_added():
    rng = np.random.default_rng(3)
    quality = rng.normal(size=100)
    a_index, b_index, outcome = simulated_comparisons(quality, 4000, rng)
    variances = [fit_posterior(100, a_index[:m], b_index[:m], outcome[:m]).var for m in (0, 100, 500, 4000)]

    np.testing.assert_allclose(variances[0], 1.0)  # nothing compared: the prior
    for fewer, more in zip(variances, variances[1:]):
        assert np.mean(more) < np.mean(fewer)
    assert np.all(variances[-1] < variances[1])


def test_an_images_variance_shrinks_with_each_comparison():
    # Image 0 against a ladder of opponents that it beats half the time.
    variances = []
    for n in range(1, 8):
        a_index = np.zeros(n, dtype=int)
        b_index = np.arange(1, n + 1)
        outcome = np.arange(n) % 2.0
        variances.append(fit_posterior(8, a_index, b_index, outcome).var[0])
    assert np.all(np.diff(variances) < 0)


def test_a_tie_counts_as_half_a_win_each_way():
    a_index, b_index = np.array([0, 0]), np.array([1, 1])
    one_win_each = fit_posterior(3, a_index, b_index, np.array([1.0, 0.0]))
    two_ties = fit_posterior(3, a_index, b_index, np.array([0.5, 0.5]))
    np.testing.assert_allclose(two_ties.mean, one_win_each.mean, atol=1e-9)
    np.testing.assert_allclose(two_ties.mean, 0.0, atol=1e-9)

    # A tie between a strong and a weak image pulls them together.
    a_index = np.array([0, 0, 0, 0, 1])
    b_index = np.array([2, 2, 2, 2, 0])
    decided = fit_posterior(3, a_index, b_index, np.array([1.0, 1.0, 1.0, 1.0, 0.0]))
    tied = fit_posterior(3, a_index, b_index, np.array([1.0, 1.0, 1.0, 1.0, 0.5]))
    assert tied.mean[1] > decided.mean[1]
    assert tied.mean[0] < decided.mean[0]


def test_a_weight_of_two_counts_like_the_comparison_twice():
    rng = np.random.default_rng(4)
    quality = rng.normal(size=30)
    a_index, b_index, outcome = simulated_comparisons(quality, 200, rng)
    weight = np.where(np.arange(200) < 50, 2.0, 1.0)
    weighted = fit_posterior(30, a_index, b_index, outcome, weight=weight)
    duplicated = fit_posterior(
        30, np.r_[a_index, a_index[:50]], np.r_[b_index, b_index[:50]], np.r_[outcome, outcome[:50]]
    )
    np.testing.assert_allclose(weighted.mean, duplicated.mean, atol=1e-6)
    np.testing.assert_allclose(weighted.var, duplicated.var, rtol=1e-5)

    ignored = fit_posterior(30, a_index, b_index, outcome, weight=np.where(np.arange(200) < 50, 0.0, 1.0))
    rest = fit_posterior(30, a_index[50:], b_index[50:], outcome[50:])
    np.testing.assert_allclose(ignored.mean, rest.mean, atol=1e-6)


def test_the_prior_places_uncompared_images_and_pulls_compared_ones():
    # Images 0-4 are compared; 5-9 never are.
    rng = np.random.default_rng(5)
    quality = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    a_index, b_index, outcome = simulated_comparisons(quality, 60, rng)
    prior_mean = np.array([0.0, 0.0, 0.0, 0.0, 3.0, -1.5, -0.5, 0.5, 1.5, 2.5])
    prior_var = np.full(10, 0.5)

    flat = fit_posterior(10, a_index, b_index, outcome)
    with_prior = fit_posterior(10, a_index, b_index, outcome, prior_mean=prior_mean, prior_var=prior_var)

    np.testing.assert_allclose(with_prior.mean[5:], prior_mean[5:], atol=1e-9)
    np.testing.assert_allclose(with_prior.var[5:], prior_var[5:])
    np.testing.assert_allclose(flat.mean[5:], 0.0, atol=1e-9)
    assert with_prior.mean[4] > flat.mean[4]  # pulled towards its prior mean of 3
    assert np.all(with_prior.var[:5] < prior_var[:5])


def test_an_image_that_won_everything_stays_finite():
    a_index = np.zeros(20, dtype=int)
    b_index = np.arange(1, 21)
    posterior = fit_posterior(21, a_index, b_index, np.ones(20))
    assert np.all(np.isfinite(posterior.mean)) and np.all(np.isfinite(posterior.var))
    assert posterior.mean[0] == posterior.mean.max()
    assert posterior.mean[0] < 10


def test_a_warm_start_reaches_the_same_fit_in_fewer_steps():
    rng = np.random.default_rng(6)
    quality = rng.normal(size=300)
    a_index, b_index, outcome = simulated_comparisons(quality, 3000, rng)
    before = fit_posterior(300, a_index[:2900], b_index[:2900], outcome[:2900])
    cold = fit_posterior(300, a_index, b_index, outcome)
    warm = fit_posterior(300, a_index, b_index, outcome, init=before.mean)
    np.testing.assert_allclose(warm.mean, cold.mean, atol=1e-5)
    assert warm.newton_steps < cold.newton_steps


def test_win_probability_and_counts():
    posterior = Posterior(mean=np.array([1.0, 0.0, 0.0]), var=np.array([0.01, 0.01, 4.0]))
    p = win_probability(posterior, np.array([0, 1, 0]), np.array([1, 0, 2]))
    assert p[0] > 0.7 and p[1] < 0.3 and 0.5 < p[2] < p[0]  # uncertainty pulls towards 1/2
    np.testing.assert_array_equal(comparison_counts(4, np.array([0, 0, 1]), np.array([1, 2, 2])), [2, 2, 2, 0])


def test_invalid_comparisons_are_rejected():
    with pytest.raises(ValueError):
        fit_posterior(3, np.array([0]), np.array([0]), np.array([1.0]))  # an image against itself
    with pytest.raises(ValueError):
        fit_posterior(3, np.array([0]), np.array([3]), np.array([1.0]))
    with pytest.raises(ValueError):
        fit_posterior(3, np.array([0]), np.array([1]), np.array([2.0]))
    with pytest.raises(ValueError):
        fit_posterior(3, np.array([0]), np.array([1]), np.array([1.0]), prior_var=0.0)


def test_the_model_is_mapped_onto_the_bt_scale_robustly():
    rng = np.random.default_rng(7)
    n_images = 400
    bt_mean = rng.normal(scale=1.5, size=n_images)
    model_mean = 2.0 * bt_mean + 1.0 + rng.normal(scale=0.2, size=n_images)
    model_mean[:8] += 25.0  # a few images the model gets badly wrong
    counts = np.where(np.arange(n_images) < 300, 5, 0)  # the last 100 never compared
    posterior = Posterior(mean=bt_mean, var=np.full(n_images, 0.05))

    prior_mean, prior_var = map_model_to_bt_scale(model_mean, 0.1, posterior, counts, max_prior_weight=1000.0)

    np.testing.assert_allclose(prior_mean[300:], bt_mean[300:], atol=0.35)  # placed by content
    assert np.median(np.abs(prior_mean[8:] - bt_mean[8:])) < 0.1
    # scatter: the residuals' variance (0.1**2) plus the posterior variance (0.05), and the model's own
    np.testing.assert_allclose(prior_var, 0.01 + 0.05, rtol=0.3)
    assert map_model_to_bt_scale(model_mean, None, posterior, np.zeros(n_images, dtype=int)) is None


def test_the_model_never_counts_for_more_than_max_prior_weight_comparisons():
    rng = np.random.default_rng(10)
    bt_mean = rng.normal(size=200)
    posterior = Posterior(mean=bt_mean, var=np.full(200, 1e-4))
    for weight in (2.0, 8.0):
        _, prior_var = map_model_to_bt_scale(bt_mean, None, posterior, np.ones(200), max_prior_weight=weight)
        np.testing.assert_allclose(prior_var, 4.0 / weight)  # a perfect model, capped


def test_mean_posterior_variance_matches_the_inverse_hessian():
    rng = np.random.default_rng(11)
    n_images = 80
    quality = np.sort(rng.normal(size=n_images))
    # Neighbour pairs only: images are tied to the rest through chains, where the diagonal is too small.
    a_index = rng.integers(0, n_images - 1, size=400)
    b_index = a_index + 1
    outcome = (rng.random(400) < ndtr(quality[a_index] - quality[b_index])).astype(float)
    posterior = fit_posterior(n_images, a_index, b_index, outcome)

    p = expit(posterior.mean[a_index] - posterior.mean[b_index])
    hessian = np.eye(n_images)
    np.add.at(hessian, (a_index, a_index), p * (1 - p))
    np.add.at(hessian, (b_index, b_index), p * (1 - p))
    np.add.at(hessian, (a_index, b_index), -p * (1 - p))
    np.add.at(hessian, (b_index, a_index), -p * (1 - p))
    exact = np.diag(np.linalg.inv(hessian))
    np.testing.assert_allclose(posterior.var, 1.0 / np.diag(hessian))

    images = np.arange(0, n_images, 2)
    estimate = mean_posterior_variance(posterior, images, a_index, b_index, outcome, n_probes=64)
    assert abs(estimate - exact[images].mean()) < 0.1 * exact[images].mean()
    assert exact[images].mean() > 1.3 * posterior.var[images].mean()  # what the diagonal misses


def test_the_model_prior_helps_a_sparse_fit():
    rng = np.random.default_rng(8)
    n_images = 300
    quality = rng.normal(size=n_images)
    model_mean = quality + rng.normal(scale=0.3, size=n_images)  # a decent model, on its own scale
    a_index, b_index, outcome = simulated_comparisons(quality, 150, rng)  # half a comparison per image
    counts = comparison_counts(n_images, a_index, b_index)
    posterior = fit_posterior(n_images, a_index, b_index, outcome)
    flat_srcc = spearmanr(posterior.mean, quality)[0]
    for _ in range(5):  # EM steps: each map is fitted on the posterior of the previous prior
        prior_mean, prior_var = map_model_to_bt_scale(model_mean, None, posterior, counts)
        posterior = fit_posterior(n_images, a_index, b_index, outcome, prior_mean=prior_mean, prior_var=prior_var)
    assert spearmanr(posterior.mean, quality)[0] > flat_srcc + 0.3


def test_the_fit_config_is_honoured():
    rng = np.random.default_rng(9)
    quality = rng.normal(size=50)
    a_index, b_index, outcome = simulated_comparisons(quality, 500, rng)
    assert fit_posterior(50, a_index, b_index, outcome, config=FitConfig(max_newton_steps=1)).newton_steps == 1
    wide = fit_posterior(50, a_index, b_index, outcome, config=FitConfig(default_prior_var=10.0))
    narrow = fit_posterior(50, a_index, b_index, outcome, config=FitConfig(default_prior_var=0.1))
    assert np.std(wide.mean) > np.std(narrow.mean)
