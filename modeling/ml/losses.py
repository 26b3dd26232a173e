"""Training losses for the rankers.

Three losses, each on tensors so they can be mixed with weights in training:

- ``emd_loss``: earth mover's distance between 10-bin score distributions (NIMA).
- ``pairwise_loss``: Bradley-Terry / RankNet loss on human comparisons.
- ``ranking_target`` + ``ranking_outcomes``: the poster's ranking target, pairs of images
  ordered by their mean quality score + lambda * CLIP image-tag similarity, trained
  with the same pairwise loss.
- ``comparison_loss``: the same ranking key for rater comparisons, which have an outcome but
  no quality score: the rater's outcome judges quality, the key adds lambda * similarity, so
  the Bradley-Terry logit is (s_a - lam*sim_a) - (s_b - lam*sim_b) and the learned score s
  estimates quality + lam * sim (docs/ranker.md).

Comparison outcomes are encoded everywhere as a float: 1.0 = image a wins,
0.0 = image b wins, 0.5 = tie.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def _mean(loss: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    if weight is None:
        return loss.mean()
    return (loss * weight).sum() / weight.sum().clamp_min(1e-12)


def emd_loss(pred_dist: torch.Tensor, target_dist: torch.Tensor, r: int = 2, weight=None) -> torch.Tensor:
    """NIMA's normalised EMD between score distributions, averaged over the batch.

    pred_dist, target_dist: [..., n_bins], rows summing to 1; weight: [...] or None.
    EMD_r(p, t) = ( mean_k |CDF_p(k) - CDF_t(k)|^r )^(1/r)   (the mean over the bins is NIMA's 1/N)
    """
    cdf_diff = torch.cumsum(pred_dist, dim=-1) - torch.cumsum(target_dist, dim=-1)  # [..., n_bins]
    per_image = cdf_diff.abs().pow(r).mean(dim=-1).clamp_min(1e-12).pow(1.0 / r)  # [...]
    return _mean(per_image, weight)


def pairwise_loss(score_a: torch.Tensor, score_b: torch.Tensor, outcome: torch.Tensor, weight=None) -> torch.Tensor:
    """-log sigma(s_winner - s_loser), averaged over the comparisons.

    score_a, score_b, outcome (and weight): [P] or [P, E]. A tie (0.5) counts as half a win each
    way, which is exactly binary cross-entropy of sigma(s_a - s_b) against the soft label ``outcome``.
    """
    loss = F.binary_cross_entropy_with_logits(score_a - score_b, outcome.to(score_a.dtype), reduction="none")
    return _mean(loss, weight)


def comparison_loss(score_a, score_b, outcome, sim_a=None, sim_b=None, lam: float = 0.0, weight=None):
    """Bradley-Terry loss on rater comparisons with the poster's ranking key, score = quality + lam * sim.

    The rater's outcome is evidence about quality only, so the similarity is taken out of each
    score before the comparison: sigma((s_a - lam*sim_a) - (s_b - lam*sim_b)) is P(a beats b).
    The model then ranks by quality + lam * sim, exactly as ``ranking_target`` does for images
    with vote distributions. lam = 0 (or no similarity) is plain ``pairwise_loss``.
    score_*, outcome, sim_*: [P] or [P, E] (sim broadcasts).
    """
    if lam and sim_a is not None:
        score_a = score_a - lam * sim_a
        score_b = score_b - lam * sim_b
    return pairwise_loss(score_a, score_b, outcome, weight)


def ranking_target(mean_score: np.ndarray | torch.Tensor, similarity=None, lam: float = 0.0):
    """The poster's ranking key per image: mean quality score + lam * CLIP image-tag similarity.

    lam = 0 (or no similarity) gives the plain mean score.
    """
    if similarity is None or lam == 0.0:
        return mean_score
    return mean_score + lam * similarity


def ranking_outcomes(target_a: torch.Tensor, target_b: torch.Tensor) -> torch.Tensor:
    """Outcome of each pair under the ranking target: 1 if a ranks higher, 0 if b, 0.5 if equal."""
    return 0.5 * (torch.sign(target_a - target_b) + 1.0)


def ranking_loss(score_a, score_b, target_a, target_b, weight=None) -> torch.Tensor:
    """Pairwise loss on pairs ordered by the ranking target (see ``ranking_target``)."""
    return pairwise_loss(score_a, score_b, ranking_outcomes(target_a, target_b), weight)
