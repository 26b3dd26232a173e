"""A uniform random sample of pairs (and of images) for the agreement report of a very large project.

Every agreement number is a ratio of sums over pairs (``agreement_stats``: raw agreement, alpha's
coincidences, agreement with the majority, held-out agreement, the ceiling), so a uniform random sample of
pairs, each with all of its judgments, estimates it without bias in the limit, and the bootstrap over the
sampled pairs gives its interval (sampling pairs from the project's, which the interval then covers; the
finite-population correction is left out, which makes it a little wider). The correlations are over images:
a uniform sample of images. The page and the API say that the numbers were estimated, and from how much.

The pair sample is a hash of the pair (its two image indices, unordered) against a threshold: the same
pair is in or out whichever of its judgments is looked at, and whatever the order of the rows; one pass
over the comparisons in chunks, so the memory it takes beyond the mask does not grow with them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SampleConfig:
    above: int = 500_000  # comparisons: exact below, sampled from here on
    comparisons: int = 250_000  # about this many comparisons in the sample (all the judgments of its pairs)
    images: int = 100_000  # images in the correlations' sample
    seed: int = 20240607
    chunk: int = 1 << 20  # comparisons hashed at once


def sampled(n_comparisons: int, config: SampleConfig) -> bool:
    return n_comparisons >= config.above


def pair_sample(a_index: np.ndarray, b_index: np.ndarray, config: SampleConfig) -> tuple[np.ndarray, float]:
    """[M] bool: the comparisons whose unordered pair is in the sample; and the share of pairs sampled.

    Each pair is in with probability ``config.comparisons / M``, independently (a hash of the pair).
    """
    m = a_index.shape[0]
    fraction = min(1.0, config.comparisons / max(m, 1))
    threshold = np.uint64(min(int(fraction * 2.0**64), 2**64 - 1))
    keep = np.empty(m, dtype=bool)
    salt = np.uint64(config.seed)
    for start in range(0, m, config.chunk):
        a = a_index[start:start + config.chunk].astype(np.uint64)
        b = b_index[start:start + config.chunk].astype(np.uint64)
        key = (np.minimum(a, b) << np.uint64(32)) | np.maximum(a, b)
        keep[start:start + config.chunk] = _mix(key ^ salt) < threshold
    return keep, fraction


def image_sample(n_images: int, config: SampleConfig) -> np.ndarray:
    """Ascending indices of a uniform random sample of ``config.images`` images (all when there are fewer)."""
    if n_images <= config.images:
        return np.arange(n_images)
    return np.sort(np.random.default_rng(config.seed).choice(n_images, config.images, replace=False))


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: uint64 to well-spread uint64 (numpy's uint64 arithmetic wraps, as it must)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))
