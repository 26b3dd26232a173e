"""A stored Bradley–Terry posterior brought up to date with the comparisons made since it was fitted.

When a refit of every comparison would take longer than a refill may (10^7 comparisons), the refill
selects from the stored posterior instead. Without the judgments made since, it would pick the same
pairs again and again until the next periodic fit; this folds them in, one comparison at a time, in
O(new comparisons), the way rating systems such as Glicko update two players after a game.

For one comparison of images a and b (outcome y: 1 a won, 0 b won, 0.5 a tie), with means m and
variances v, the score difference d = s_a - s_b is N(m_a - m_b, v_a + v_b) under the posterior. The
logistic likelihood, averaged over that (the probit approximation: kappa = 1 / sqrt(1 + pi v / 8)),
has slope g = kappa (y - p) and curvature h = kappa^2 p (1 - p) at the mean, p = sigmoid(kappa d).
One Gaussian step on d, shared out in proportion to each image's variance::

    m_a += v_a g / (1 + v h)        v_a -= v_a^2 h / (1 + v h)
    m_b -= v_b g / (1 + v h)        v_b -= v_b^2 h / (1 + v h)

It ignores the correlations a full refit would build, so it is an approximation for choosing the next
pairs, never a stored human score: the next periodic fit replaces it.
"""
from __future__ import annotations

import math

import numpy as np

from modeling.ml.bradley_terry import Posterior


def update_with_comparisons(posterior: Posterior, a_index: np.ndarray, b_index: np.ndarray,
                            outcome: np.ndarray) -> Posterior:
    """The posterior after the comparisons, in their order. a_index, b_index: [M] int; outcome: [M] float."""
    mean = np.array(posterior.mean, dtype=np.float64)  # [N]
    var = np.array(posterior.var, dtype=np.float64)  # [N]
    for a, b, y in zip(np.asarray(a_index).tolist(), np.asarray(b_index).tolist(), np.asarray(outcome).tolist()):
        spread = var[a] + var[b]
        kappa = 1.0 / math.sqrt(1.0 + math.pi * spread / 8.0)
        p = 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, kappa * (mean[a] - mean[b])))))
        slope, curvature = kappa * (y - p), kappa * kappa * p * (1.0 - p)
        shrink = 1.0 + spread * curvature
        mean[a] += var[a] * slope / shrink
        mean[b] -= var[b] * slope / shrink
        var[a] -= var[a] ** 2 * curvature / shrink
        var[b] -= var[b] ** 2 * curvature / shrink
    return Posterior(mean, var, posterior.newton_steps)
