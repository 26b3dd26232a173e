"""The expected ranking accuracy (modeling/ml/ranking_accuracy.py): calibrated where the posterior is right."""
import numpy as np
from scipy.special import expit
from scipy.stats import spearmanr

from modeling.ml.bradley_terry import fit_posterior
from modeling.ml.ranking_accuracy import AccuracyConfig, expected_srcc, spearman_rows


def test_spearman_rows_matches_scipy_and_is_zero_for_a_constant_ranking():
    rng = np.random.default_rng(0)
    x, truths = rng.normal(size=50), rng.normal(size=(3, 50))
    expected = [spearmanr(x, row)[0] for row in truths]
    assert np.allclose(spearman_rows(x, truths), expected)
    assert np.all(spearman_rows(np.zeros(50), truths) == 0.0)


def test_the_estimate_matches_the_measured_srcc_of_an_exact_gaussian_posterior():
    """Truth θ ~ N(0, 1), an observation x = θ + N(0, σ²): the posterior is N(x / (1 + σ²), σ² / (1 + σ²))
    exactly, so the expected SRCC must match the SRCC measured against θ, on average over seeds."""
    for noise_var in (0.25, 1.0, 4.0):
        predicted, measured = [], []
        for seed in range(20):
            rng = np.random.default_rng(seed)
            truth = rng.normal(size=300)
            observed = truth + rng.normal(scale=np.sqrt(noise_var), size=300)
            mean, var = observed / (1 + noise_var), np.full(300, noise_var / (1 + noise_var))
            estimate = expected_srcc(mean, var, AccuracyConfig(draws=100, seed=seed))
            predicted.append(estimate.expected_srcc)
            measured.append(spearmanr(mean, truth)[0])
            assert estimate.low <= estimate.expected_srcc <= estimate.high
        assert abs(np.mean(predicted) - np.mean(measured)) < 0.02, noise_var


def test_through_the_bradley_terry_fit_the_estimate_is_within_005_of_the_measured_srcc():
    """Bradley–Terry raters on scores drawn from the fit's own prior N(0, 1), random pairs: predicted
    against measured SRCC at several budgets, mean over seeds."""
    n = 300
    for per_image in (0.5, 2.0, 8.0):
        predicted, measured = [], []
        for seed in range(6):
            rng = np.random.default_rng(seed)
            truth = rng.normal(size=n)
            m = int(per_image * n)
            a = rng.integers(0, n, m)
            b = (a + rng.integers(1, n, m)) % n
            outcome = (rng.random(m) < expit(truth[a] - truth[b])).astype(float)
            posterior = fit_posterior(n, a, b, outcome)
            predicted.append(expected_srcc(posterior.mean, posterior.var, AccuracyConfig(draws=100)).expected_srcc)
            measured.append(spearmanr(posterior.mean, truth)[0])
        assert abs(np.mean(predicted) - np.mean(measured)) < 0.05, (per_image, np.mean(predicted), np.mean(measured))


def test_a_large_project_is_subsampled_per_draw_with_an_interval_that_covers_it():
    rng = np.random.default_rng(1)
    truth = rng.normal(size=20_000)
    mean = truth + rng.normal(scale=0.7, size=truth.shape)
    var = np.full(truth.shape, 0.49)
    full = expected_srcc(mean, var, AccuracyConfig(draws=20, max_images=20_000))
    sampled = expected_srcc(mean, var, AccuracyConfig(draws=200, max_images=500))
    assert sampled.images_per_draw == 500 and full.images_per_draw == 20_000 and sampled.n_images == 20_000
    assert abs(sampled.expected_srcc - full.expected_srcc) < 0.01
    assert sampled.high - sampled.low > full.high - full.low  # the subsampling error is in the interval
    assert sampled.low < full.expected_srcc < sampled.high


def test_too_few_images_give_no_estimate_and_non_finite_ones_are_left_out():
    assert expected_srcc(np.array([1.0]), np.array([0.1])) is None
    estimate = expected_srcc(np.array([0.0, 1.0, np.nan, 2.0]), np.array([0.01, 0.01, 0.01, np.inf]))
    assert estimate.n_images == 2 and estimate.expected_srcc > 0.99
