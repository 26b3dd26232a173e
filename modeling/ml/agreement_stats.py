"""The agreement statistics behind the dashboards, on numpy arrays: Krippendorff's coincidences, agreement with the majority, the human ceiling, weighted ranks and correlations. Their
intervals (bootstrap over units, exact intervals of shares) are ``modeling/ml/intervals.py``'s.

Plain numpy/scipy (no Django): ``modeling/services/agreement.py`` reads the data and assembles the
stored report from these. Definitions of the numbers are in that module's docstring. Shapes: J
judgments (comparisons), P unordered pairs, U bootstrap units, B resamples, K numbers per resample.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import krippendorff
import numpy as np
from scipy import stats

from modeling.ml.intervals import (
    N_RESAMPLES,
    SEED,
    estimates,
    no_estimate,
    proportions,
    ratio_statistic,
)
from modeling.ml.json_values import finite

GALLERY_SIZE = 12
HISTOGRAM_BINS = 36


# Judgment categories of an unordered pair (lo = the image with the lower id).
LO_WINS, TIE, HI_WINS = 0, 1, 2
N_CATEGORIES = 3


# --- Inter-rater agreement (Krippendorff coincidences) ----------------------------------------


@dataclass(frozen=True)
class PairJudgments:
    """Judgments grouped by unordered pair."""

    pair_index: np.ndarray  # [J] which pair each judgment is of
    category: np.ndarray  # [J] LO_WINS, TIE or HI_WINS
    lo_share: np.ndarray  # [J] the lower-id image's share of the win: 1, 0.5 or 0
    pair_lo: np.ndarray  # [P] image index of each pair's lower-id image
    pair_hi: np.ndarray  # [P]

    @property
    def n_pairs(self) -> int:
        return int(self.pair_lo.shape[0])


def group_pairs(a_index: np.ndarray, b_index: np.ndarray, outcome: np.ndarray) -> PairJudgments:
    """Orient each comparison to its unordered pair (``image_a`` is the left image, not the lower id)."""
    a_index, b_index = np.asarray(a_index, np.int64), np.asarray(b_index, np.int64)
    lo, hi = np.minimum(a_index, b_index), np.maximum(a_index, b_index)
    lo_share = np.where(a_index <= b_index, outcome, 1.0 - np.asarray(outcome, np.float64))
    category = np.where(lo_share == 1.0, LO_WINS, np.where(lo_share == 0.0, HI_WINS, TIE))
    keys = lo * (int(hi.max(initial=0)) + 1) + hi
    unique_keys, pair_index = np.unique(keys, return_inverse=True)
    first = np.zeros(unique_keys.shape[0], dtype=np.int64)
    first[pair_index[::-1]] = np.arange(pair_index.shape[0])[::-1]  # any judgment of each pair
    return PairJudgments(pair_index.astype(np.int64), category.astype(np.int64), lo_share, lo[first], hi[first])


def latest_per_rater(pair_index: np.ndarray, rater_id: np.ndarray) -> np.ndarray:
    """Mask keeping each rater's last judgment of each pair (inputs in comparison-id order)."""
    keys = pair_index.astype(np.int64) * (int(rater_id.max(initial=0)) + 1) + rater_id
    _, last_from_end = np.unique(keys[::-1], return_index=True)
    keep = np.zeros(keys.shape[0], dtype=bool)
    keep[keys.shape[0] - 1 - last_from_end] = True
    return keep


def value_counts(pair_index: np.ndarray, category: np.ndarray, n_pairs: int) -> np.ndarray:
    """[P, 3]: how many judgments of each pair fell in each category."""
    flat = np.bincount(pair_index * N_CATEGORIES + category, minlength=n_pairs * N_CATEGORIES)
    return flat.reshape(n_pairs, N_CATEGORIES)


def unit_coincidences(counts: np.ndarray) -> np.ndarray:
    """Krippendorff's coincidences contributed by each unit, [U, 3, 3]; units need >= 2 values.

    o_ck(u) = n_uc (n_uk - [c == k]) / (m_u - 1). They add up over units, which is what lets the
    bootstrap resample units with a weighted sum instead of recomputing from scratch.
    """
    counts = np.asarray(counts, dtype=np.float64)
    pairable = counts.sum(axis=1)
    outer = counts[:, :, None] * counts[:, None, :] - counts[:, :, None] * np.eye(counts.shape[1])[None]
    return outer / (pairable - 1.0)[:, None, None]


def alpha_and_agreement(coincidences: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nominal Krippendorff's alpha and the observed agreement from summed coincidence matrices [..., 3, 3].

    NaN where undefined: fewer than two pairable values, or (alpha) every value in one category.
    """
    coincidences = np.asarray(coincidences, dtype=np.float64)
    total = coincidences.sum(axis=(-2, -1))
    marginals = coincidences.sum(axis=-1)
    matching = np.trace(coincidences, axis1=-2, axis2=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        agreement = np.where(total > 1, matching / total, np.nan)
        expected_disagreement = (total**2 - (marginals**2).sum(axis=-1)) / (total - 1.0)
        alpha = np.where((total > 1) & (expected_disagreement > 0),
                         1.0 - (total - matching) / expected_disagreement, np.nan)
    return alpha, agreement


def inter_rater_agreement(counts: np.ndarray, *, n_resamples: int = N_RESAMPLES, seed: int = SEED) -> dict:
    """Raw agreement and Krippendorff's alpha over the pairs with at least two judgments, with intervals."""
    counts = np.asarray(counts)
    multi = counts[counts.sum(axis=1) >= 2]
    result = {"pairs": int(multi.shape[0]), "judgments": int(multi.sum())}
    if multi.shape[0] == 0:
        empty = {"value": None, "low": None, "high": None, "n": 0}
        return {**result, "raw_agreement": dict(empty), "alpha": dict(empty)}
    per_unit = unit_coincidences(multi).reshape(multi.shape[0], -1)  # [U, 9]

    def alpha_and_raw(weights):
        alpha, raw = alpha_and_agreement((weights @ per_unit).reshape(-1, N_CATEGORIES, N_CATEGORIES))
        return np.stack([alpha, raw], axis=-1)

    numbers = estimates(alpha_and_raw, multi.shape[0], ["alpha", "raw_agreement"], n_resamples=n_resamples, seed=seed)
    used_categories = np.count_nonzero(multi.sum(axis=0))
    # The point estimate from the maintained implementation; the interval from the same coincidences.
    numbers["alpha"]["value"] = (
        finite(krippendorff.alpha(value_counts=multi, level_of_measurement="nominal")) if used_categories > 1 else None
    )
    return {**result, **numbers}


def leave_one_out_majority(pair_index: np.ndarray, category: np.ndarray, counts: np.ndarray,
                           counted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each judgment, the strict majority category of the other judgments of its pair (-1 if none).

    ``counts`` [P, 3] are the judgments that form majorities; ``counted`` [J] says which of these
    judgments are among them (and so must be taken out of their own pair's counts). Also returns how
    many other judgments there were.
    """
    others = counts[pair_index].astype(np.int64)  # [J, 3]
    rows = np.flatnonzero(counted)
    others[rows, category[rows]] -= 1
    top = others.max(axis=1)
    strict = ((others == top[:, None]).sum(axis=1) == 1) & (top > 0)
    return np.where(strict, others.argmax(axis=1), -1), others.sum(axis=1)


# --- Shares and per-rater numbers -------------------------------------------------------------


def side_p_values(left, decided) -> np.ndarray:
    """Two-sided binomial test of each left count against a fair coin (NaN where nothing was decided)."""
    left, decided = np.asarray(left), np.asarray(decided)
    tails = np.minimum(stats.binom.cdf(left, decided, 0.5), stats.binom.sf(left - 1, decided, 0.5))
    return np.where(decided > 0, np.minimum(1.0, 2.0 * tails), np.nan)


def grouped_nanmedian(group: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Median of the non-NaN values of each group (NaN where a group has none), sorting once."""
    keep = ~np.isnan(values)
    group, values = group[keep], values[keep]
    order = np.lexsort((values, group))
    group, values = group[order], values[order]
    sizes = np.bincount(group, minlength=n_groups)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    medians = np.full(n_groups, np.nan)
    has = sizes > 0
    low = starts[has] + (sizes[has] - 1) // 2
    high = starts[has] + sizes[has] // 2
    medians[has] = (values[low] + values[high]) / 2.0
    return medians


@dataclass(frozen=True)
class FlagThresholds:
    """When a rater is flagged. Override any of them with ``settings.TAGRANK_RATER_FLAGS`` (a dict)."""

    too_fast_median_ms: float = 800.0  # median response time below this...
    too_fast_min_timed: int = 20  # ...over at least this many timed judgments
    one_side_share: float = 0.9  # left (or right) share of decided judgments at or above this...
    one_side_min_decided: int = 20  # ...over at least this many decided judgments
    gold_min_accuracy: float = 0.7  # gold accuracy below this...
    gold_min_judgments: int = 5  # ...over at least this many gold judgments


def rater_rows(comparisons, pairs: PairJudgments, included: np.ndarray,
               latest: np.ndarray, thresholds: FlagThresholds, by_rater: dict[int, dict]) -> list[dict]:
    """One row per rater: volume, gold accuracy, agreement with the majority, speed, position bias, flags.

    ``comparisons``: the project's comparisons as arrays (``modeling.services.human_scores.ComparisonArrays``).
    ``included`` [M]: the comparison's rater is not excluded from training. ``latest`` [M]: the
    rater's last judgment of that pair. Majorities are formed from included raters' latest judgments.
    ``by_rater``: each rater's judgments, sides and gold, as ``labeling.services.comparisons.rater_counts``
    defines them (the progress page shows the same numbers).
    """
    counted = included & latest
    counts = value_counts(pairs.pair_index[counted], pairs.category[counted], pairs.n_pairs)
    majority, n_others = leave_one_out_majority(pairs.pair_index, pairs.category, counts, counted)
    with_majority = latest & (majority >= 0)
    agrees = with_majority & (majority == pairs.category)

    rater_ids, rater_of = np.unique(comparisons.rater_id, return_inverse=True)
    n_raters = rater_ids.shape[0]

    def per_rater(mask):
        return np.bincount(rater_of[mask], minlength=n_raters)

    def counted(name):
        return np.array([by_rater.get(int(rater_id), {}).get(name, 0) for rater_id in rater_ids], dtype=np.int64)

    totals, left, right = counted("n"), counted("left"), counted("right")
    gold_graded, gold_right = counted("gold_judged"), counted("gold_correct")
    majority_n, majority_agree = per_rater(with_majority), per_rater(agrees)
    multi_rated = per_rater(latest & (n_others > 0))
    medians = grouped_nanmedian(rater_of, comparisons.response_ms, n_raters)
    timed = per_rater(~np.isnan(comparisons.response_ms))

    decided = left + right
    gold = proportions(gold_right, gold_graded)
    majority = proportions(majority_agree, majority_n)
    left_of_decided = proportions(left, decided)
    # How surprising each rater's left/right split is for a rater without a side preference.
    side_p = side_p_values(left, decided)
    rows = []
    for index, rater_id in enumerate(rater_ids):
        row = {
            "user_id": int(rater_id),
            "comparisons": int(totals[index]),
            "on_shared_pairs": int(multi_rated[index]),
            "gold": gold[index],
            "majority_agreement": majority[index],
            "median_response_ms": finite(medians[index]),
            "timed": int(timed[index]),
            "left_share": left[index] / totals[index],
            "right_share": right[index] / totals[index],
            "tie_share": (totals[index] - decided[index]) / totals[index],
            "left_share_decided": left_of_decided[index],
            "side_p_value": finite(side_p[index]),
        }
        row["flags"] = rater_flags(row, thresholds)
        rows.append(row)
    return rows


def rater_flags(row: dict, thresholds: FlagThresholds) -> list[str]:
    """The reasons to look at a rater: 'too_fast', 'one_side', 'gold'."""
    flags = []
    median = row["median_response_ms"]
    if median is not None and row["timed"] >= thresholds.too_fast_min_timed and median < thresholds.too_fast_median_ms:
        flags.append("too_fast")
    left = row["left_share_decided"]
    if left["n"] >= thresholds.one_side_min_decided and max(left["value"], 1.0 - left["value"]) >= thresholds.one_side_share:
        flags.append("one_side")
    gold = row["gold"]
    if gold["n"] >= thresholds.gold_min_judgments and gold["value"] < thresholds.gold_min_accuracy:
        flags.append("gold")
    return flags


# --- Model against humans: the ceiling, weighted ranks and correlations -----------------------


def judgment_agreement(model_mean: np.ndarray, first: np.ndarray, second: np.ndarray,
                       first_share: np.ndarray) -> np.ndarray:
    """Per judgment: 1 if the model scores its winner higher, 0 if lower, 0.5 if it scores them equal.

    NaN where the judgment is a tie or the model scored either image not at all (left out).
    """
    diff = model_mean[first] - model_mean[second]
    agree = np.where(diff == 0, 0.5, ((diff > 0) == (first_share > 0.5)).astype(np.float64))
    return np.where((first_share == 0.5) | np.isnan(diff), np.nan, agree)


def human_ceiling_judgments(pairs: PairJudgments, use: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Judgments (among ``use``: held out, included, latest per rater) that have others of their pair.

    Returns (judgment indices, agreement with the majority of the other judgments: 1, 0.5 or 0).
    """
    rows = np.flatnonzero(use)
    pair_of = pairs.pair_index[rows]
    share = pairs.lo_share[rows]
    share_sum = np.bincount(pair_of, share, minlength=pairs.n_pairs)
    count = np.bincount(pair_of, minlength=pairs.n_pairs)
    others = count[pair_of] - 1
    decided = share != 0.5
    keep = (others > 0) & decided
    others_share = (share_sum[pair_of] - share)[keep] / others[keep]
    winner_lo = share[keep] == 1.0
    agree = np.where(others_share == 0.5, 0.5, ((others_share > 0.5) == winner_lo).astype(np.float64))
    return rows[keep], agree


def weighted_pearson(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Pearson correlation of x and y [..., n] under weights [..., n] (a weight is a repeat count)."""
    total = weights.sum(axis=-1, keepdims=True)
    dx = x - (weights * x).sum(axis=-1, keepdims=True) / total
    dy = y - (weights * y).sum(axis=-1, keepdims=True) / total
    with np.errstate(invalid="ignore", divide="ignore"):
        return (weights * dx * dy).sum(axis=-1) / np.sqrt((weights * dx * dx).sum(axis=-1)
                                                          * (weights * dy * dy).sum(axis=-1))


def _dense_ranks(x: np.ndarray) -> tuple[np.ndarray, int]:
    unique, inverse = np.unique(x, return_inverse=True)
    return inverse, unique.shape[0]


def weighted_average_ranks(dense: np.ndarray, n_levels: int, weights: np.ndarray) -> np.ndarray:
    """Average ranks in the samples where unit i appears ``weights[r, i]`` times: [B, n] from [B, n].

    ``dense`` [n] is each unit's level (its value's rank among the distinct values), computed once.
    """
    weights = np.atleast_2d(weights)
    batch = weights.shape[0]
    offsets = (np.arange(batch) * n_levels)[:, None]
    level_weight = np.bincount((dense[None, :] + offsets).ravel(), weights.ravel(),
                               minlength=batch * n_levels).reshape(batch, n_levels)
    before = np.cumsum(level_weight, axis=1) - level_weight
    return before[:, dense] + (level_weight[:, dense] + 1.0) / 2.0


def correlation_statistic(x: np.ndarray, y: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """SRCC and LCC of weighted (bootstrap) samples: weights [B, n] -> [B, 2].

    Spearman's rank correlation of a resample is the Pearson correlation of its average ranks, and
    those follow from cumulative weights over the distinct values sorted once: no sort per resample.
    """
    x_dense, x_levels = _dense_ranks(x)
    y_dense, y_levels = _dense_ranks(y)

    def statistic(weights):
        weights = np.atleast_2d(weights)
        spearman = weighted_pearson(weighted_average_ranks(x_dense, x_levels, weights),
                                    weighted_average_ranks(y_dense, y_levels, weights), weights)
        return np.stack([spearman, weighted_pearson(x, y, weights)], axis=-1)

    return statistic


def model_agreement_panels(model_means: dict[int, np.ndarray], comparisons, heldout: np.ndarray,
                           pairs: PairJudgments, ceiling_rows: np.ndarray, ceiling_agree: np.ndarray, *,
                           n_resamples: int, seed: int) -> dict[int, dict]:
    """Per version: held-out agreement, and the model against the human ceiling on the same judgments.

    Every number is a ratio of sums over the held-out pairs, so all versions share one set of
    bootstrap resamples of those pairs (and so their intervals are comparable).
    """
    held_rows = np.flatnonzero(heldout)
    units, unit_of = np.unique(pairs.pair_index[held_rows], return_inverse=True)
    ceiling_unit = np.searchsorted(units, pairs.pair_index[ceiling_rows])  # ceiling judgments are held out too
    n_units = units.shape[0]
    numerators, denominators, names = [], [], []
    counts = {}
    a, b, outcome = comparisons.a_index, comparisons.b_index, comparisons.outcome
    for version_id, model_mean in model_means.items():
        agree = judgment_agreement(model_mean, a[held_rows], b[held_rows], outcome[held_rows])
        judged = ~np.isnan(agree)
        held_count = np.bincount(unit_of[judged], minlength=n_units).astype(np.float64)
        # The same judgments the ceiling is measured on, so that the two are comparable.
        on_ceiling = judgment_agreement(model_mean, a[ceiling_rows], b[ceiling_rows], outcome[ceiling_rows])
        scored = ~np.isnan(on_ceiling)
        ceiling_count = np.bincount(ceiling_unit[scored], minlength=n_units).astype(np.float64)
        model_sum = np.bincount(ceiling_unit[scored], on_ceiling[scored], minlength=n_units)
        human_sum = np.bincount(ceiling_unit[scored], ceiling_agree[scored], minlength=n_units)
        numerators += [np.bincount(unit_of[judged], agree[judged], minlength=n_units), model_sum, human_sum,
                       human_sum - model_sum]
        denominators += [held_count, ceiling_count, ceiling_count, ceiling_count]
        names += [f"{version_id}:{name}" for name in ("heldout", "model", "human", "gap")]
        counts[version_id] = (int(held_count.sum()), int(ceiling_count.sum()), int(np.count_nonzero(ceiling_count)))
    if not names:
        return {}
    statistic = ratio_statistic(np.stack(numerators, axis=1), np.stack(denominators, axis=1))
    numbers = estimates(statistic, n_units, names, n_resamples=n_resamples, seed=seed)
    panels = {}
    for version_id, (held_judgments, ceiling_judgments, ceiling_pairs) in counts.items():
        heldout_agreement = {**numbers[f"{version_id}:heldout"], "n": held_judgments}  # judgments, not pairs
        ceiling = {name: {**numbers[f"{version_id}:{name}"], "n": ceiling_judgments}
                   for name in ("model", "human", "gap")}
        panels[version_id] = {"heldout_agreement": heldout_agreement,
                              "ceiling": {**ceiling, "judgments": ceiling_judgments, "pairs": ceiling_pairs}}
    return panels


def human_correlation(model_mean: np.ndarray, human_mean: np.ndarray, human_counts: np.ndarray, *,
                      with_interval: bool, n_resamples: int, seed: int) -> dict:
    """SRCC and LCC between the model's scores and the human scores, over images with comparisons."""
    compared = (human_counts > 0) & ~np.isnan(model_mean)
    x, y = model_mean[compared], human_mean[compared]
    if x.shape[0] < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"srcc": no_estimate(x.shape[0]), "lcc": no_estimate(x.shape[0]), "images": int(x.shape[0])}
    numbers = estimates(correlation_statistic(x, y), x.shape[0], ["srcc", "lcc"], with_interval=with_interval,
                        n_resamples=n_resamples, seed=seed)
    return {**numbers, "images": int(x.shape[0])}


# --- Charts' data -----------------------------------------------------------------------------


def histogram(values: np.ndarray, low: float, high: float, bins: int = HISTOGRAM_BINS) -> dict:
    values = values[np.isfinite(values)]
    counts, edges = np.histogram(values, bins=bins, range=(low, high))
    return {"edges": [float(edge) for edge in edges], "counts": [int(count) for count in counts]}


def disagreeing_pairs(model_mean: np.ndarray, pairs: PairJudgments, limit: int = GALLERY_SIZE) -> list[dict]:
    """The pairs whose human votes most contradict the model: net votes against its pick, then its margin."""
    votes = value_counts(pairs.pair_index, pairs.category, pairs.n_pairs)
    diff = model_mean[pairs.pair_lo] - model_mean[pairs.pair_hi]
    model_picks_lo = diff > 0
    against = np.where(model_picks_lo, votes[:, HI_WINS], votes[:, LO_WINS]).astype(np.float64)
    support = np.where(model_picks_lo, votes[:, LO_WINS], votes[:, HI_WINS])
    net_against = against - support
    candidates = np.flatnonzero((net_against > 0) & np.isfinite(diff) & (diff != 0))
    order = np.lexsort((-np.abs(diff[candidates]), -net_against[candidates]))[:limit]
    rows = []
    for pair in candidates[order]:
        rows.append({
            "lo": int(pairs.pair_lo[pair]), "hi": int(pairs.pair_hi[pair]),
            "votes_lo": int(votes[pair, LO_WINS]), "votes_hi": int(votes[pair, HI_WINS]),
            "ties": int(votes[pair, TIE]), "net_against_model": float(net_against[pair]),
        })  # fmt: skip
    return rows


def uncertain_images(variance: np.ndarray, counts: np.ndarray, limit: int = GALLERY_SIZE) -> np.ndarray:
    """Indices of the images with the widest human-score posterior (fewest comparisons first on ties)."""
    order = np.lexsort((counts, -variance))
    return order[:limit]
