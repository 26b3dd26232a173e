"""A leaderboard of the values of a categorical field (generators, checkpoints, samplers) from pairwise judgments.

Model. Value *v* has a Bradley–Terry rating ``r_v``; an image of value *u* is preferred over an image of value
*v* with probability ``sigmoid(r_u - r_v)``. Only comparisons between images of *different* values say
anything about the values, so the others are left out; a tie (and "both bad") counts as half a win each way.
The ratings are in log-odds units and centred (their mean is 0); a very weak Gaussian prior (``prior_var``)
keeps them finite when a value won or lost every comparison.

Everything the fit needs is the V x V matrix of wins, ``wins[u, v]`` = comparisons that *u* won against *v*
(ties as halves). The fit is Newton's method on it, run for many bootstrap replicates at once (batched
``np.linalg.solve`` on [B, V, V]).

Intervals. A bootstrap over *units*: whole clusters of comparisons when a cluster is given (in a campaign
judged within prompts, the prompt: comparisons of one prompt share its images, so they are not independent),
single comparisons otherwise. Each replicate draws the units with replacement (one multinomial draw), sums
their win matrices and refits. The interval of a rating, of a difference and of a rank are the replicates'
percentiles (``level``, 95 % by default). ``benchmarks/leaderboard.py`` measures how often they cover the
truth in simulated campaigns.

Shapes: V values, M comparisons, U units, B bootstrap replicates.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.special import expit


@dataclass(frozen=True)
class LeaderboardConfig:
    n_bootstrap: int = 1000  # bootstrap replicates
    level: float = 0.95  # coverage of the intervals
    prior_var: float = 100.0  # Gaussian prior on each rating: weak, only keeps unbeaten values finite
    newton_steps: int = 50
    tolerance: float = 1e-8
    chunk: int = 200  # replicates drawn and fitted at a time (memory: chunk x U counts)
    seed: int = 0


@dataclass(frozen=True)
class Leaderboard:
    rating: np.ndarray  # [V] centred log-odds ratings
    rating_low: np.ndarray  # [V] interval bounds
    rating_high: np.ndarray  # [V]
    rank: np.ndarray  # [V] 1 = best
    rank_low: np.ndarray  # [V] best rank within the interval
    rank_high: np.ndarray  # [V] worst rank within the interval
    wins: np.ndarray  # [V, V] wins of row over column (ties as halves)
    games: np.ndarray  # [V, V] comparisons between row and column
    replicates: np.ndarray  # [B, V] the bootstrap ratings (for intervals of differences)
    level: float

    @property
    def win_rate(self) -> np.ndarray:
        """[V, V] share of the comparisons between row and column that the row won (NaN where none)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.games > 0, self.wins / np.maximum(self.games, 1), np.nan)

    def difference_interval(self, first: int, second: int) -> tuple[float, float, float]:
        """(estimate, low, high) of ``rating[first] - rating[second]``."""
        tail = (1.0 - self.level) / 2.0
        samples = self.replicates[:, first] - self.replicates[:, second]
        low, high = np.quantile(samples, [tail, 1.0 - tail])
        return float(self.rating[first] - self.rating[second]), float(low), float(high)


def win_matrix(value_a: np.ndarray, value_b: np.ndarray, outcome: np.ndarray, n_values: int) -> np.ndarray:
    """[V, V] wins of row over column from comparisons of images with values ``value_a`` / ``value_b`` [M]
    (``outcome`` [M]: 1 a won, 0 b won, 0.5 tie). Comparisons within one value are left out."""
    cells, amounts = _win_entries(value_a, value_b, outcome, n_values)
    return np.bincount(cells, weights=amounts, minlength=n_values * n_values).reshape(n_values, n_values)


def _win_entries(value_a, value_b, outcome, n_values) -> tuple[np.ndarray, np.ndarray]:
    """Each comparison's two entries in the flattened win matrix: (cell [2M'], amount [2M'])."""
    across = value_a != value_b
    a, b, y = value_a[across].astype(np.int64), value_b[across].astype(np.int64), outcome[across].astype(np.float64)
    return np.concatenate([a * n_values + b, b * n_values + a]), np.concatenate([y, 1.0 - y])


def fit_ratings(wins: np.ndarray, config: LeaderboardConfig = LeaderboardConfig()) -> np.ndarray:
    """Centred Bradley–Terry ratings from win matrices: [V, V] -> [V], or [B, V, V] -> [B, V]."""
    batched = wins.ndim == 3
    wins = wins if batched else wins[None]
    n_values = wins.shape[-1]
    games = wins + np.swapaxes(wins, 1, 2)  # [B, V, V]
    won = wins.sum(axis=2)  # [B, V]
    rating = np.zeros(wins.shape[:2])  # [B, V]
    precision = 1.0 / config.prior_var
    eye = np.eye(n_values)
    for _ in range(config.newton_steps):
        p = expit(rating[:, :, None] - rating[:, None, :])  # [B, V, V] P(row beats column)
        gradient = won - (games * p).sum(axis=2) - precision * rating  # [B, V] of the log posterior
        curvature = games * p * (1.0 - p)  # [B, V, V]
        hessian = eye * (curvature.sum(axis=2)[:, :, None] + precision) - curvature  # [B, V, V] minus the Hessian
        step = np.linalg.solve(hessian, gradient[:, :, None])[:, :, 0]  # [B, V]
        rating = rating + step
        if np.abs(step).max(initial=0.0) < config.tolerance:
            break
    rating = rating - rating.mean(axis=1, keepdims=True)
    return rating if batched else rating[0]


def ranks(rating: np.ndarray) -> np.ndarray:
    """1 = highest rating, along the last axis ([V] or [B, V])."""
    order = np.argsort(-rating, axis=-1, kind="stable")
    result = np.empty_like(order)
    np.put_along_axis(result, order, np.arange(1, rating.shape[-1] + 1) + np.zeros_like(order), axis=-1)
    return result


def build_leaderboard(
    value_a: np.ndarray,
    value_b: np.ndarray,
    outcome: np.ndarray,
    n_values: int,
    cluster: np.ndarray | None = None,
    config: LeaderboardConfig = LeaderboardConfig(),
) -> Leaderboard:
    """The leaderboard of ``n_values`` values from M comparisons.

    value_a, value_b: [M] int, the value of each comparison's two images; outcome: [M] 1 / 0 / 0.5;
    cluster: [M] int, the unit the bootstrap resamples (e.g. the prompt), None for single comparisons."""
    value_a, value_b, outcome = np.asarray(value_a), np.asarray(value_b), np.asarray(outcome, dtype=np.float64)
    wins = win_matrix(value_a, value_b, outcome, n_values)
    rating = fit_ratings(wins, config)
    replicates = _bootstrap(value_a, value_b, outcome, n_values, cluster, config)  # [B, V]
    tail = (1.0 - config.level) / 2.0
    low, high = np.quantile(replicates, [tail, 1.0 - tail], axis=0)
    replicate_ranks = ranks(replicates)
    rank_low, rank_high = np.quantile(replicate_ranks, [tail, 1.0 - tail], axis=0, method="nearest")
    return Leaderboard(
        rating=rating, rating_low=low, rating_high=high, rank=ranks(rating),
        rank_low=rank_low.astype(int), rank_high=rank_high.astype(int),
        wins=wins, games=wins + wins.T, replicates=replicates, level=config.level,
    )


def _bootstrap(value_a, value_b, outcome, n_values, cluster, config) -> np.ndarray:
    """[B, V] ratings refitted on resampled units (clusters, or single comparisons)."""
    rng = np.random.default_rng(config.seed)
    across = value_a != value_b
    if cluster is None:
        # Single comparisons: identical ones are interchangeable, so resample (pair of values, outcome) kinds.
        kind = (value_a[across].astype(np.int64) * n_values + value_b[across]) * 3 + np.round(outcome[across] * 2)
        units, unit_of = np.unique(kind.astype(np.int64), return_inverse=True)
        multiplicity = np.bincount(unit_of, minlength=units.size).astype(np.float64)
    else:
        units, unit_of = np.unique(np.asarray(cluster)[across], return_inverse=True)
        multiplicity = np.ones(units.size)
    n_units = units.size
    if n_units == 0:
        return np.zeros((config.n_bootstrap, n_values))
    # The nonzero (unit, cell) entries of the units' win matrices.
    cells, amounts = _win_entries(value_a[across], value_b[across], outcome[across], n_values)
    entry_unit = np.concatenate([unit_of, unit_of])
    key = entry_unit * (n_values * n_values) + cells
    unique_keys, position = np.unique(key, return_inverse=True)
    entry_amount = np.bincount(position, weights=amounts)  # [R]
    entry_unit, entry_cell = unique_keys // (n_values * n_values), unique_keys % (n_values * n_values)
    if cluster is None:
        entry_amount = entry_amount / multiplicity[entry_unit]  # one comparison's worth per draw
    # [U, V*V] each unit's win matrix, flattened (sparse: a unit touches few cells).
    unit_wins = sparse.csr_matrix((entry_amount, (entry_unit, entry_cell)), shape=(n_units, n_values * n_values))
    total = int(multiplicity.sum())
    draws_p = multiplicity / multiplicity.sum()
    replicates = []
    for start in range(0, config.n_bootstrap, config.chunk):
        size = min(config.chunk, config.n_bootstrap - start)
        counts = rng.multinomial(total, draws_p, size=size).astype(np.float64)  # [b, U] draws of each unit
        wins = np.asarray((unit_wins.T @ counts.T).T)  # [b, V*V]
        replicates.append(fit_ratings(wins.reshape(size, n_values, n_values), config))
    return np.concatenate(replicates)
