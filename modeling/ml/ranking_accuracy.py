"""Expected ranking accuracy: how close the current ranking is to the truth, judged by the posterior itself.

The human scores are a Gaussian posterior per image (mean and Laplace variance, ``bradley_terry.Posterior``).
If the posterior is right, the true scores are a draw from it. So the Spearman correlation between the
current ranking (the posterior means) and the truth has a distribution we can sample:

    for each draw d:                                   # config.draws of them
        images = a random subset of at most config.max_images images
        truth_d = mean[images] + std[images] * normal()   # [K] one plausible truth
        srcc_d = spearman(mean[images], truth_d)
    expected = mean(srcc_d);  interval = quantiles(srcc_d, config.interval)

The stopping rule compares ``expected`` with the manager's target. Each draw takes its own subset of
images, so on a large project the interval covers the subsampling error as well as the posterior's.
The draws are independent per image: the stored variance is the Hessian's inverse diagonal and the
posterior correlations are left out. On random pairs, joint draws of the full Laplace posterior gave
estimates lower by 0.003 to 0.010 only; ``benchmarks/stopping_rule.py`` measures how well the estimate
is calibrated against the true SRCC.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata


@dataclass(frozen=True)
class AccuracyConfig:
    draws: int = 200  # posterior draws of the truth
    max_images: int = 2000  # images ranked per draw: bounds the cost at O(draws * max_images log max_images)
    interval: tuple[float, float] = (0.05, 0.95)  # quantiles of the reported interval
    seed: int = 0  # the same posterior always gives the same estimate


@dataclass(frozen=True)
class AccuracyEstimate:
    expected_srcc: float  # mean over draws of SRCC(current ranking, sampled truth)
    low: float  # the interval's lower quantile
    high: float  # the interval's upper quantile
    n_images: int  # images with a posterior
    images_per_draw: int  # n_images, or config.max_images when subsampled
    draws: int


def spearman_rows(x: np.ndarray, truths: np.ndarray) -> np.ndarray:
    """Spearman correlation of ``x`` [K] with each row of ``truths`` [D, K] -> [D]; 0 where x is constant."""
    rank_x = rankdata(x)
    rank_x = rank_x - rank_x.mean()  # [K]
    rank_t = rankdata(truths, axis=1)
    rank_t = rank_t - rank_t.mean(axis=1, keepdims=True)  # [D, K]
    norm = np.linalg.norm(rank_x) * np.linalg.norm(rank_t, axis=1)  # [D]
    return np.divide(rank_t @ rank_x, norm, out=np.zeros(truths.shape[0]), where=norm > 0)


def expected_srcc(mean: np.ndarray, var: np.ndarray, config: AccuracyConfig = AccuracyConfig()) -> AccuracyEstimate | None:
    """The expected SRCC between the ranking by ``mean`` [N] and a truth drawn from N(mean, var) [N].

    Images whose mean or variance is not finite are left out. None with fewer than two images."""
    mean, var = np.asarray(mean, dtype=np.float64), np.asarray(var, dtype=np.float64)
    keep = np.isfinite(mean) & np.isfinite(var) & (var >= 0)
    mean, std = mean[keep], np.sqrt(var[keep])
    n_images = int(mean.shape[0])
    if n_images < 2:
        return None
    rng = np.random.default_rng(config.seed)
    per_draw = min(n_images, config.max_images)
    srcc = np.empty(config.draws)
    chunk = max(1, 200_000 // per_draw)  # draws per batch: about 200k numbers in memory at a time
    for start in range(0, config.draws, chunk):
        count = min(chunk, config.draws - start)
        if per_draw == n_images:
            truths = mean + std * rng.standard_normal((count, n_images))  # [D, N]
            srcc[start:start + count] = spearman_rows(mean, truths)
            continue
        for d in range(count):
            images = rng.choice(n_images, size=per_draw, replace=False)  # [K]
            truth = mean[images] + std[images] * rng.standard_normal(per_draw)
            srcc[start + d] = spearman_rows(mean[images], truth[None, :])[0]
    low, high = np.quantile(srcc, config.interval)
    return AccuracyEstimate(float(srcc.mean()), float(low), float(high), n_images, per_draw, config.draws)
