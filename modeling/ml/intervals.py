"""Intervals of the dashboards' numbers, on numpy arrays: percentile bootstrap intervals over units (pairs,
images), drawn as weights so that every number made of the same units shares the resamples, and exact
(Clopper–Pearson) intervals of shares. Plain numpy/scipy (no Django). A number is a dict
``{"value", "low", "high", "n"}``.
"""
from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
from scipy import stats

from modeling.ml.json_values import finite

N_RESAMPLES = 1000
MIN_RESAMPLES = 200
RESAMPLE_BUDGET = 40_000_000  # unit draws per set of intervals (see resamples_for)
CONFIDENCE = 0.95
SEED = 20240607  # fixed: the same data gives the same intervals
RESAMPLE_BATCH_WEIGHTS = 2_000_000  # bootstrap weights held in memory at once (16 MB)


def bootstrap_intervals(
    statistic: Callable[[np.ndarray], np.ndarray], n_units: int, *, n_resamples: int = N_RESAMPLES,
    confidence: float = CONFIDENCE, seed: int = SEED,
) -> tuple[np.ndarray, np.ndarray] | None:  # fmt: skip
    """Percentile bootstrap intervals of the K numbers ``statistic(weights)`` computes, from one set of resamples.

    ``weights[r, i]`` is how many times unit *i* was drawn in resample *r* (a row of ones is the data
    itself); ``statistic`` maps weights [B, units] to [B] or [B, K]. Written with weights, a statistic
    costs O(units) per resample and needs no copy of the data, and every number made of the same
    units shares the resamples. Resamples are drawn in batches of a few million weights; those where
    a number is undefined (NaN) are left out of its interval. Returns (low [K], high [K]), NaN where
    fewer than half the resamples define the number; None for fewer than two units.
    """
    if n_units < 2:
        return None
    n_resamples = resamples_for(n_units, n_resamples)
    rng = np.random.default_rng(seed)
    batch = max(1, min(n_resamples, RESAMPLE_BATCH_WEIGHTS // n_units))
    values = []
    for start in range(0, n_resamples, batch):
        size = min(batch, n_resamples - start)
        drawn = rng.integers(n_units, size=(size, n_units), dtype=np.int32) + (np.arange(size) * n_units)[:, None]
        weights = np.bincount(drawn.ravel(), minlength=size * n_units).reshape(size, n_units).astype(np.float64)
        values.append(np.asarray(statistic(weights), dtype=np.float64).reshape(size, -1))
    values = np.concatenate(values)  # [R, K]
    tail = (1.0 - confidence) / 2.0 * 100.0
    defined = np.isfinite(values)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        low, high = np.nanpercentile(np.where(defined, values, np.nan), [tail, 100.0 - tail], axis=0)
    too_few = defined.sum(axis=0) < n_resamples // 2
    low[too_few], high[too_few] = np.nan, np.nan
    return low, high


def resamples_for(n_units: int, n_resamples: int) -> int:
    """Fewer resamples for very many units: the bootstrap draws at most RESAMPLE_BUDGET units per interval set.

    With 10^5 units an interval is already narrow, and its ends are well estimated from a few hundred
    resamples; this keeps the report of a 10^6-comparison project to seconds.
    """
    return int(min(n_resamples, max(MIN_RESAMPLES, RESAMPLE_BUDGET // max(n_units, 1))))


def estimates(statistic: Callable[[np.ndarray], np.ndarray], n_units: int, names: list[str], *,
              with_interval: bool = True, **bootstrap) -> dict[str, dict]:
    """{name: {"value", "low", "high", "n"}}: each number on the data, and its bootstrap interval over units."""
    values = (np.asarray(statistic(np.ones((1, n_units))), dtype=np.float64).reshape(-1) if n_units
              else np.full(len(names), np.nan))
    intervals = bootstrap_intervals(statistic, n_units, **bootstrap) if with_interval else None
    result = {}
    for index, name in enumerate(names):
        low, high = (None, None) if intervals is None else (finite(intervals[0][index]), finite(intervals[1][index]))
        result[name] = {"value": finite(values[index]), "low": low, "high": high, "n": int(n_units)}
        if intervals is not None:
            result[name]["resamples"] = resamples_for(n_units, bootstrap.get("n_resamples", N_RESAMPLES))
    return result


def estimate(statistic: Callable[[np.ndarray], np.ndarray], n_units: int, **options) -> dict:
    """{"value", "low", "high", "n"} of one number (see ``estimates``)."""
    return estimates(statistic, n_units, ["value"], **options)["value"]


def ratio_statistic(numerators: np.ndarray, denominators: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """sum(w * numerator) / sum(w * denominator) over units, for each column of [U] or [U, K] inputs.

    A mean of per-judgment values with the judgments grouped in units (pairs) that are resampled whole.
    """

    def statistic(weights: np.ndarray) -> np.ndarray:
        total = weights @ denominators
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, (weights @ numerators) / total, np.nan)

    return statistic


def proportions(successes, trials, confidence: float = CONFIDENCE) -> list[dict]:
    """Shares with their exact (Clopper–Pearson) intervals, from the beta quantiles, for many at once."""
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    tail = (1.0 - confidence) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(k > 0, stats.beta.ppf(tail, k, n - k + 1), 0.0)
        high = np.where(k < n, stats.beta.ppf(1.0 - tail, k + 1, n - k), 1.0)
        share = k / n
    return [
        {"value": None, "low": None, "high": None, "n": 0} if trials_i == 0
        else {"value": float(share_i), "low": float(low_i), "high": float(high_i), "n": int(trials_i)}
        for share_i, low_i, high_i, trials_i in zip(share, low, high, n)
    ]  # fmt: skip


def proportion(successes: int, trials: int, confidence: float = CONFIDENCE) -> dict:
    return proportions([successes], [trials], confidence)[0]


def no_estimate(n: int) -> dict:
    return {"value": None, "low": None, "high": None, "n": n}
