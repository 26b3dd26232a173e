"""Pair selection: the batch rules, determinism, what active selection prefers, and that it pays."""

from collections import Counter

import numpy as np
import pytest

from active_learning import SimulationConfig, compare_strategies
from modeling.ml.bradley_terry import Posterior
from modeling.ml.selection import STRATEGIES, SelectionConfig, pair_information, select_pairs


def project_midway(n_images, seed=0):
    """A posterior and counts with some never-compared images."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(4.0, size=n_images)
    counts[: n_images // 10] = 0
    mean = rng.normal(scale=1.5, size=n_images) * (counts > 0)
    return Posterior(mean=mean, var=1.0 / (1.0 + 0.25 * counts)), counts


def assert_valid_batch(pairs, n_images, max_per_image, excluded=frozenset()):
    assert pairs.ndim == 2 and pairs.shape[1] == 2
    assert np.all((pairs >= 0) & (pairs < n_images))
    assert np.all(pairs[:, 0] != pairs[:, 1]), "an image paired with itself"
    unordered = [frozenset(pair) for pair in pairs.tolist()]
    assert len(set(unordered)) == len(unordered), "a pair repeated within the batch"
    assert not set(unordered) & set(excluded), "an excluded pair"
    assert max(Counter(pairs.ravel().tolist()).values()) <= max_per_image


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("max_per_image", [1, 2, 3])
def test_a_batch_never_has_self_pairs_repeats_or_crowded_images(strategy, max_per_image):
    posterior, counts = project_midway(500)
    for seed in range(5):
        pairs = select_pairs(posterior, counts, 100, np.random.default_rng(seed), strategy, max_per_image=max_per_image)
        assert pairs.shape == (100, 2)
        assert_valid_batch(pairs, 500, max_per_image)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_excluded_pairs_are_never_chosen_whatever_form_the_exclusion_takes(strategy):
    # Few images, so that exclusions bite: 20 images, 190 possible pairs, most excluded.
    n_images = 20
    posterior, counts = project_midway(n_images, seed=1)
    rng = np.random.default_rng(0)
    every_pair = [(i, j) for i in range(n_images) for j in range(i + 1, n_images)]
    excluded = {every_pair[k] for k in rng.choice(len(every_pair), size=150, replace=False)}
    excluded_frozen = {frozenset(pair) for pair in excluded}
    allowed = {frozenset(pair) for pair in every_pair} - excluded_frozen
    forms = {
        "tuples": excluded,
        "reversed tuples": {(j, i) for i, j in excluded},
        "frozensets": excluded_frozen,
        "array": np.array(sorted(excluded)),
        "callable": lambda first, second: np.array(
            [frozenset((i, j)) in excluded_frozen for i, j in zip(first.tolist(), second.tolist())]
        ),
    }
    for form, exclude in forms.items():
        for seed in range(3):
            pairs = select_pairs(posterior, counts, 15, np.random.default_rng(seed), strategy, exclude=exclude)
            assert_valid_batch(pairs, n_images, 2, excluded_frozen)
            assert {frozenset(pair) for pair in pairs.tolist()} <= allowed, form
            assert len(pairs) >= 10, form  # 40 pairs remain allowed: the batch is still (nearly) filled


def test_when_every_pair_is_excluded_the_batch_is_empty():
    posterior, counts = project_midway(6)
    pairs = select_pairs(posterior, counts, 5, np.random.default_rng(0), "active", exclude=lambda i, j: np.ones(len(i), bool))
    assert pairs.shape == (0, 2)


def test_a_batch_is_cut_short_rather_than_break_the_per_image_limit():
    posterior, counts = project_midway(5)
    pairs = select_pairs(posterior, counts, 10, np.random.default_rng(0), "active", max_per_image=1)
    assert len(pairs) == 2  # five images, each in at most one pair
    assert_valid_batch(pairs, 5, 1)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_selection_is_deterministic_under_a_seed(strategy):
    posterior, counts = project_midway(2000)
    first = select_pairs(posterior, counts, 100, np.random.default_rng(42), strategy)
    again = select_pairs(posterior, counts, 100, np.random.default_rng(42), strategy)
    other = select_pairs(posterior, counts, 100, np.random.default_rng(43), strategy)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_active_selection_serves_the_uncertain_and_never_compared_images():
    posterior, counts = project_midway(2000)
    never_compared = counts == 0  # 10% of the images
    pairs = select_pairs(posterior, counts, 100, np.random.default_rng(0), "active")
    random_pairs = select_pairs(posterior, counts, 100, np.random.default_rng(0), "random")
    assert np.mean(never_compared[pairs]) > 3 * np.mean(never_compared[random_pairs])
    assert np.mean(posterior.var[pairs]) > np.mean(posterior.var[random_pairs])


def test_active_selection_pairs_neighbours_in_score_order():
    # Every image equally well known: active pairs should be close in score, unlike random ones.
    rng = np.random.default_rng(3)
    posterior = Posterior(mean=rng.normal(scale=2.0, size=5000), var=np.full(5000, 0.05))
    counts = np.full(5000, 20)
    active = select_pairs(posterior, counts, 100, np.random.default_rng(0), "active", explore_share=0.0)
    random_pairs = select_pairs(posterior, counts, 100, np.random.default_rng(0), "random")

    def gap(pairs):
        return np.abs(posterior.mean[pairs[:, 0]] - posterior.mean[pairs[:, 1]])

    assert np.median(gap(active)) < 0.2
    assert np.median(gap(active)) < np.median(gap(random_pairs)) / 5


def test_the_explore_share_adds_random_distant_pairs():
    rng = np.random.default_rng(4)
    posterior = Posterior(mean=rng.normal(scale=2.0, size=5000), var=np.full(5000, 0.05))
    counts = np.full(5000, 20)

    def distant_pairs(explore_share):
        pairs = select_pairs(posterior, counts, 100, np.random.default_rng(0), "active", explore_share=explore_share)
        return int(np.sum(np.abs(posterior.mean[pairs[:, 0]] - posterior.mean[pairs[:, 1]]) > 1.0))

    assert distant_pairs(0.0) <= 2
    assert distant_pairs(0.3) >= 15


def test_cold_start_swiss_rounds_give_every_image_one_comparison_per_round():
    # Three quarters of a round each time, so that the Swiss pass fills the batch by itself (the
    # greedy pairing need not find a perfect matching; the random fill would then take a second use).
    n_images = 40
    rng = np.random.default_rng(6)
    # Round one: nothing known; every image in at most one pair, though max_per_image allows two.
    flat = Posterior(mean=np.zeros(n_images), var=np.ones(n_images))
    pairs = select_pairs(flat, np.zeros(n_images, int), 15, np.random.default_rng(0), "active")
    assert pairs.shape == (15, 2)
    assert_valid_batch(pairs, n_images, 1)
    # Round two: pairs are neighbours in score order (partners within 3 places in the pool).
    posterior = Posterior(mean=rng.normal(size=n_images), var=np.full(n_images, 0.8))
    pairs = select_pairs(posterior, np.ones(n_images, int), 15, np.random.default_rng(0), "active")
    assert pairs.shape == (15, 2)
    assert_valid_batch(pairs, n_images, 1)
    rank = np.argsort(np.argsort(posterior.mean))
    assert np.all(np.abs(rank[pairs[:, 0]] - rank[pairs[:, 1]]) <= 3)


def test_cold_start_serves_the_least_compared_count_level_first():
    rng = np.random.default_rng(7)
    counts = np.where(np.arange(200) < 60, 1, 3)  # 60 images behind by a round
    posterior = Posterior(mean=rng.normal(size=200), var=1.0 / (1.0 + 0.25 * counts))
    pairs = select_pairs(posterior, counts, 20, np.random.default_rng(0), "active")
    assert pairs.shape == (20, 2)
    assert np.all(counts[pairs] == 1)


def test_after_the_cold_start_active_selection_uses_the_information_criterion():
    # Every image past the cold start: exploration pairs appear (the Swiss phase has none).
    rng = np.random.default_rng(8)
    counts = np.full(3000, SelectionConfig().swiss_below)
    posterior = Posterior(mean=rng.normal(scale=2.0, size=3000), var=np.full(3000, 0.1))
    pairs = select_pairs(posterior, counts, 100, np.random.default_rng(0), "active", explore_share=0.3)
    assert int(np.sum(np.abs(posterior.mean[pairs[:, 0]] - posterior.mean[pairs[:, 1]]) > 1.0)) >= 15


def test_round_robin_serves_the_fewest_compared_images():
    rng = np.random.default_rng(5)
    counts = rng.integers(0, 50, size=1000)
    pairs = select_pairs(None, counts, 50, np.random.default_rng(0), "round_robin")
    assert_valid_batch(pairs, 1000, 1)
    assert counts[pairs].max() <= np.sort(counts)[150]  # all among the 15% least compared


def test_information_grows_with_uncertainty_and_shrinks_with_a_predictable_outcome():
    for score in ("eig", "proxy"):
        mean = np.array([0.0, 0.0, 3.0, 0.0, 0.0])
        var = np.array([0.01, 0.01, 0.5, 0.5, 1e-9])
        posterior = Posterior(mean=mean, var=var)
        first, second = np.array([0, 3, 3, 0]), np.array([1, 1, 2, 4])
        info = pair_information(posterior, first, second, score)
        assert np.all(info >= 0)
        assert info[1] > info[0]  # same means, more uncertain
        assert info[1] > info[2]  # same uncertainty, more predictable outcome
    eig = pair_information(Posterior(mean=np.zeros(2), var=np.full(2, 1e-12)), np.array([0]), np.array([1]))
    assert eig[0] < 1e-5  # known to be equal: a coin flip teaches nothing


def test_invalid_arguments():
    posterior, counts = project_midway(10)
    with pytest.raises(ValueError):
        select_pairs(posterior, counts, 5, np.random.default_rng(0), "swiss")
    with pytest.raises(ValueError):
        select_pairs(None, counts, 5, np.random.default_rng(0), "active")


def test_active_selection_beats_random_at_a_fixed_budget():
    """A small run of the benchmark: SRCC at 10 comparisons per image, N = 200, over 6 seeds."""
    config = SimulationConfig(budgets=(10,), heldout_pairs=500, batch_fraction=0.1)
    results = compare_strategies(200, ["random", "active"], seeds=list(range(6)), config=config)
    random_srcc, active_srcc = (result.srcc[:, 0] for result in results)
    assert active_srcc.mean() > random_srcc.mean()
    assert np.sum(active_srcc > random_srcc) >= 4


def test_the_model_prior_pays_where_content_predicts_quality():
    """With a content-predictable set, active selection with the model prior beats BT-only at 1 per image."""
    config = SimulationConfig(budgets=(1,), heldout_pairs=500, batch_fraction=0.1)
    results = compare_strategies(300, ["active", "active_prior"], seeds=list(range(4)), config=config, content_share=0.7)
    bt_only, with_prior = (result.srcc[:, 0] for result in results)
    assert with_prior.mean() > bt_only.mean() + 0.05
    assert np.all(with_prior > bt_only)
