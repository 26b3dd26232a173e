"""Evaluation in the poster's terms, from one function.

``evaluate_scores`` returns a flat dict; a metric whose inputs are absent is None:

- error_mean, error_std: mean and std of |predicted mean - reference mean|   (needs reference means)
- lcc, srcc, kendall_tau: Pearson, Spearman and Kendall tau-b on mean scores (scipy.stats)
- kl: KL(reference || predicted) = sum_k r_k log(r_k / p_k), both distributions
  epsilon-smoothed and renormalised, averaged over images        (needs both distributions)
- emd: NIMA's EMD with r=2, averaged over images                (needs both distributions)
- binary_accuracy: agreement of (pred mean > threshold) with (ref mean > threshold), threshold 5
- pairwise_agreement: fraction of held-out comparisons whose winner the predicted means
  order the same way; tied outcomes are left out, a predicted tie counts half (needs comparisons)
"""
from __future__ import annotations

import numpy as np
from scipy import stats

BINS = np.arange(1, 11, dtype=np.float64)  # the scores 1..10


def dist_mean(dist: np.ndarray) -> np.ndarray:
    """Mean score of 10-bin distributions [N, 10] -> [N]."""
    dist = np.asarray(dist, dtype=np.float64)
    return (dist / dist.sum(axis=1, keepdims=True)) @ BINS


def kl_divergence(ref_dist: np.ndarray, pred_dist: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Per-image KL(reference || predicted) [N], after adding eps to every bin and renormalising."""
    r = np.asarray(ref_dist, dtype=np.float64) + eps
    p = np.asarray(pred_dist, dtype=np.float64) + eps
    r /= r.sum(axis=1, keepdims=True)
    p /= p.sum(axis=1, keepdims=True)
    return (r * np.log(r / p)).sum(axis=1)


def emd(ref_dist: np.ndarray, pred_dist: np.ndarray, r: int = 2) -> np.ndarray:
    """Per-image NIMA EMD [N]: (mean_k |CDF_ref - CDF_pred|^r)^(1/r)."""
    d = np.cumsum(np.asarray(ref_dist, np.float64), axis=1) - np.cumsum(np.asarray(pred_dist, np.float64), axis=1)
    return np.mean(np.abs(d) ** r, axis=1) ** (1.0 / r)


def pairwise_agreement(pred_mean: np.ndarray, a_index, b_index, outcome) -> float | None:
    """Share of decided comparisons (outcome != 0.5) whose winner has the higher predicted mean."""
    outcome = np.asarray(outcome, dtype=np.float64)
    decided = outcome != 0.5
    if not decided.any():
        return None
    diff = pred_mean[np.asarray(a_index)[decided]] - pred_mean[np.asarray(b_index)[decided]]
    a_wins = outcome[decided] > 0.5
    agree = np.where(diff == 0, 0.5, ((diff > 0) == a_wins).astype(np.float64))
    return float(agree.mean())


def evaluate_scores(
    pred_mean,
    ref_mean=None,
    pred_dist=None,
    ref_dist=None,
    comparisons=None,
    threshold: float = 5.0,
    eps: float = 1e-6,
) -> dict:
    """All metrics for one set of predictions.

    pred_mean [N]; ref_mean [N] (derived from ref_dist when omitted); pred_dist, ref_dist [N, 10];
    comparisons = (a_index [P], b_index [P], outcome [P]) indexing into the N images.
    """
    pred_mean = np.asarray(pred_mean, dtype=np.float64)
    if ref_mean is None and ref_dist is not None:
        ref_mean = dist_mean(ref_dist)
    out = dict.fromkeys(
        ["error_mean", "error_std", "lcc", "srcc", "kendall_tau", "kl", "emd",
         "binary_accuracy", "pairwise_agreement"]
    )
    out["n_images"] = int(len(pred_mean))
    out["n_comparisons"] = 0

    if ref_mean is not None and len(pred_mean) > 0:
        ref_mean = np.asarray(ref_mean, dtype=np.float64)
        err = np.abs(pred_mean - ref_mean)
        out["error_mean"], out["error_std"] = float(err.mean()), float(err.std())
        out["binary_accuracy"] = float(np.mean((pred_mean > threshold) == (ref_mean > threshold)))
        # Correlations are undefined on fewer than 2 points or a constant input.
        if len(pred_mean) > 1 and np.ptp(pred_mean) > 0 and np.ptp(ref_mean) > 0:
            out["lcc"] = float(stats.pearsonr(pred_mean, ref_mean)[0])
            out["srcc"] = float(stats.spearmanr(pred_mean, ref_mean)[0])
            out["kendall_tau"] = float(stats.kendalltau(pred_mean, ref_mean)[0])

    if ref_dist is not None and pred_dist is not None and len(pred_mean) > 0:
        out["kl"] = float(kl_divergence(ref_dist, pred_dist, eps).mean())
        out["emd"] = float(emd(ref_dist, pred_dist).mean())

    if comparisons is not None and len(comparisons[0]) > 0:
        a_index, b_index, outcome = comparisons
        out["n_comparisons"] = int(len(a_index))
        out["pairwise_agreement"] = pairwise_agreement(pred_mean, a_index, b_index, outcome)
    return out


def format_row(method: str, m: dict) -> str:
    """One line of the poster's table: Method | Error | LCC | SRCC | KL | EMD | Pairwise."""
    def f(x, nd=3):
        return "-" if x is None else f"{x:.{nd}f}"
    error = "-" if m.get("error_mean") is None else f"{m['error_mean']:.3f} ± {m['error_std']:.3f}"
    cells = [method, error, f(m.get("lcc")), f(m.get("srcc")), f(m.get("kl")), f(m.get("emd")),
             f(m.get("pairwise_agreement"))]
    return "| " + " | ".join(cells) + " |"


TABLE_HEADER = "| Method | Error | LCC | SRCC | KL | EMD | Pairwise |\n|---|---|---|---|---|---|---|"
