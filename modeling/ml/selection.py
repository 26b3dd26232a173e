"""Choosing which pairs of images to show raters next.

Strategies (a project setting, so that they can be A/B compared):

``random``       uniform random pairs.
``round_robin``  pairs among the images with the fewest comparisons so far.
``active``       Swiss rounds at cold start, then the pairs whose judgment is expected to teach the
                 most about the scores.

Active selection has two phases.

Cold start (while the ``swiss_pool`` x n_pairs least compared images have had fewer than
``SelectionConfig.swiss_below`` = 4 comparisons):
Swiss rounds. The pool is the least compared images (whole count levels), sorted by posterior mean;
each pool image is offered its next ``swiss_offsets`` neighbours in that order, and pairs are taken
fewest comparisons first, then by information (below), each image at most once per batch. So every
image gets one comparison per round, and each round after the first pairs images the posterior
cannot yet tell apart. Why: at 1-2 comparisons per image most of what random selection loses is
images left with zero or one comparison (the counts are Poisson); balancing them is worth about
a clear SRCC gain by itself (round-robin), and pairing equal-looking images on top adds at 2 per
image; pure EIG from the start concentrates comparisons instead. The cold start ends at 4
comparisons (2 per image); beyond that, Swiss pairing and the EIG selection measured the same.
Figures: ``docs/benchmarks.md``, "Active pair selection" (``benchmarks/active_learning.py``).

After the cold start, a candidate pair (i, j) is scored by the expected information gain (EIG) of
its outcome about the scores, the mutual information between the outcome and the score difference
``d = s_i - s_j ~ N(mean_i - mean_j, var_i + var_j)`` under the posterior (diagonal covariance).
For a logistic likelihood it has a closed form once the logistic is approximated by a probit
(Houlsby et al., 2011, "Bayesian active learning by disagreement")::

    EIG = h(Phi(mu / sqrt(1 + V))) - C / sqrt(V + C^2) * exp(-mu^2 / (2 (V + C^2)))

with ``mu, V`` the difference's mean and variance in probit units, ``h`` the binary entropy in bits
and ``C = sqrt(pi ln 2 / 2)``. It costs a few vectorised operations per candidate, like the cheaper
proxy ``p (1 - p) (var_i + var_j)`` (``SelectionConfig.score = "proxy"``). The two differ where it
matters: the proxy keeps rewarding a pair whose outcome is a coin flip because the two images are
already known to be equal (p = 1/2 with V small still scores V/4), while EIG goes to zero there, and
EIG also discounts a large V whose outcome is nevertheless predictable (|mu| large). Measured with
``benchmarks/active_learning.py``, the two are within the seeds' noise of each other, so the default
is the criterion with the stated meaning. Also measured and not kept (no gain beyond the seeds'
noise): the exact posterior covariance (dense inverse Hessian, ASAP's criterion with a Laplace
posterior), the expected reduction of the rank variance ``Var[Phi(s_i / spread)]`` (the quantity
SRCC penalises), a posterior variance inflated 2-5x for selection, a prior variance of 3 in the
fit, and one pair per image per batch outside the cold start.

Candidates after the cold start are generated in O(N log N) (one sort of the means), never O(N^2):

* focus images: the most uncertain images (largest posterior variance) and the cold-start images
  (fewest comparisons), ``focus_per_pair`` of them per requested pair;
* each focus image's partners: its two neighbours in the current score order, and others drawn at
  random among the images whose mean lies within ``window_z`` posterior standard deviations of its own;
* a random exploration share of the batch (``explore_share``), which keeps the comparison graph
  globally connected: pairs of close neighbours alone pin down local order but let distant
  parts of the scale drift.

A batch is assembled greedily from the best-scoring candidates, never repeating a pair, never
pairing an image with itself, skipping excluded pairs (already judged by this rater, or judged by
enough raters already), and showing no image in more than ``max_per_image`` pairs of the batch, so
that one batch, judged before the next refit, is not spent on a single uncertain image.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

import numpy as np
from scipy.special import expit, ndtr

from modeling.ml.bradley_terry import Posterior

STRATEGIES = ("active", "random", "round_robin")

# Excluded pairs: a collection of pairs (tuples, frozensets or an [K, 2] array), or a callable that
# takes two [K] index arrays and returns a [K] bool mask, True where the pair is excluded.
Exclusion = Collection | np.ndarray | Callable[[np.ndarray, np.ndarray], np.ndarray] | None


@dataclass(frozen=True)
class SelectionConfig:
    score: str = "eig"  # "eig" (expected information gain) or "proxy" (p (1 - p) (var_i + var_j))
    focus_per_pair: int = 4  # focus images considered per requested pair
    cold_share: float = 0.5  # share of the focus images taken from the fewest-compared
    partners_per_focus: int = 8  # candidate partners per focus image (2 neighbours + random in window)
    window_z: float = 2.0  # partner window: within this many posterior std of the focus image's mean
    # Swiss-style cold start (see the module docstring): used while the pool of the least compared
    # images (swiss_pool per requested pair) has had fewer than this many comparisons; 0 turns it off.
    swiss_below: int = 4
    swiss_offsets: int = 3  # partners: the next 1..k images of the pool in score order
    swiss_pool: float = 2.0  # the pool holds at least this many images per requested pair (whole count levels)


def select_pairs(
    posterior: Posterior | None,
    comparison_counts: np.ndarray,
    n_pairs: int,
    rng: np.random.Generator,
    strategy: str = "active",
    exclude: Exclusion = None,
    max_per_image: int = 2,
    explore_share: float = 0.1,
    config: SelectionConfig = SelectionConfig(),
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """Choose a batch of pairs to show next, [n_pairs, 2] int (fewer rows if fewer valid pairs exist).

    posterior: the current human-score posterior (needed by ``active`` only).
    comparison_counts: [N] comparisons each image has had so far.
    rng: the only source of randomness; the same seed gives the same batch.
    groups: [N] int, each image's comparison group (-1: none); when given, both images of every pair
        share a group (``_select_within_groups``).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
    counts = np.asarray(comparison_counts)
    n_images = counts.shape[0]
    if groups is not None:
        return _select_within_groups(posterior, counts, np.asarray(groups), n_pairs, rng, strategy, exclude,
                                     max_per_image, explore_share, config)
    batch = _Batch(n_images, n_pairs, max_per_image, _exclusion_test(exclude, n_images))
    if n_images < 2 or n_pairs <= 0:
        return batch.pairs()

    if strategy == "active":
        if posterior is None or posterior.n_images != n_images:
            raise ValueError("active selection needs a posterior over the same images as the counts")
    pool_level = _pool_level(counts, n_pairs, config) if strategy == "active" else 0
    if strategy == "active" and pool_level < config.swiss_below:
        # Cold start: Swiss rounds, each image in at most one pair of the batch (a round gives every
        # image one comparison before any gets a second). No exploration share: the first round's
        # pairs are random anyway, and adjacency changes from round to round, so the graph stays connected.
        first, second, score = _swiss_candidates(posterior, counts, pool_level, rng, config)
        batch.add_best(first, second, score, limit=n_pairs, per_image=1)
    elif strategy == "active":
        n_explore = int(round(explore_share * n_pairs))
        first, second, score = _active_candidates(posterior, counts, n_pairs - n_explore, rng, config)
        batch.add_best(first, second, score, limit=n_pairs - n_explore)
    elif strategy == "round_robin":
        first, second, score = _fewest_compared_candidates(counts, n_pairs, rng)
        batch.add_best(first, second, score, limit=n_pairs, per_image=1)
    _fill_at_random(batch, rng)  # random strategy, exploration share, and whatever the above left short
    return batch.pairs()


# --- Within comparison groups -----------------------------------------------------------------------
# A project may pair only images of the same group (e.g. generated from the same prompt). The candidates
# are then the pairs within each group: all of them for groups of up to ``MAX_GROUP_OFFSET`` + 1 images,
# neighbours within that many places of the group's order (score order for ``active``, random otherwise)
# beyond. The strategies keep their meaning within groups, and coverage across groups comes from a cap on
# the pairs one group may take from a batch (twice its fair share), besides the per-image cap.
MAX_GROUP_OFFSET = 24


def _select_within_groups(posterior: Posterior | None, counts: np.ndarray, groups: np.ndarray, n_pairs: int,
                          rng: np.random.Generator, strategy: str, exclude: Exclusion, max_per_image: int,
                          explore_share: float, config: SelectionConfig) -> np.ndarray:
    """``select_pairs`` restricted to pairs of images in the same group, [<= n_pairs, 2] int (its arguments).

    groups: [N] int group of each image, -1 for none (such images, and images alone in their group, are
    never paired)."""
    n_images = counts.shape[0]
    if groups.shape[0] != n_images:
        raise ValueError("groups must give one group per image")
    if strategy == "active" and (posterior is None or posterior.n_images != n_images):
        raise ValueError("active selection needs a posterior over the same images as the counts")
    group_sizes = np.bincount(groups[groups >= 0], minlength=1)
    servable = (groups >= 0) & (group_sizes[np.maximum(groups, 0)] > 1)  # [N]
    n_groups = int(np.count_nonzero(group_sizes > 1))
    per_group = max(1, int(np.ceil(2.0 * n_pairs / max(n_groups, 1))))
    batch = _Batch(n_images, n_pairs, max_per_image, _exclusion_test(exclude, n_images), groups, per_group)
    if n_groups == 0 or n_pairs <= 0:
        return batch.pairs()

    tie_break = rng.random(n_images)  # [N]
    order_key = posterior.mean + 1e-9 * tie_break if strategy == "active" else tie_break
    first, second = _within_group_candidates(groups, servable, order_key)  # [K], [K]
    if strategy == "active":
        k = min(int(np.count_nonzero(servable)), max(2, int(np.ceil(config.swiss_pool * n_pairs))))
        level = int(np.partition(counts[servable], k - 1)[k - 1])
        information = np.maximum(pair_information(posterior, first, second, config.score), 0.0)
        if level < config.swiss_below:  # cold start: fewest comparisons first, then information (Swiss)
            information = information / max(float(information.max(initial=0.0)), 1e-12)
            score = -2.0 * np.maximum(counts[first], counts[second]) + information
            batch.add_best(first, second, score, limit=n_pairs, per_image=1)
        else:
            n_explore = int(round(explore_share * n_pairs))
            batch.add_best(first, second, information, limit=n_pairs - n_explore)
    elif strategy == "round_robin":
        score = -(counts[first] + counts[second]) + rng.random(first.size)
        batch.add_best(first, second, score, limit=n_pairs, per_image=1)
    shuffled = rng.permutation(first.size)  # random strategy, exploration share, and whatever is left short
    batch.add_best(first[shuffled], second[shuffled], score=None, limit=n_pairs)
    return batch.pairs()


def _within_group_candidates(groups: np.ndarray, servable: np.ndarray, order_key: np.ndarray
                             ) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of servable images in the same group within ``MAX_GROUP_OFFSET`` places of each other in
    ``order_key`` order, [K] and [K]; O(N log N + K)."""
    members = np.flatnonzero(servable)
    members = members[np.lexsort((order_key[members], groups[members]))]  # by group, then order_key
    return same_group_pairs(members, groups[members], MAX_GROUP_OFFSET)


def same_group_pairs(members: np.ndarray, member_groups: np.ndarray, max_offset: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of ``members`` [M] (sorted by their groups ``member_groups`` [M]) in the same group and at most
    ``max_offset`` places apart, [K] and [K]."""
    first, second = [], []
    for offset in range(1, max_offset + 1):
        same = member_groups[:-offset] == member_groups[offset:]
        if not same.any():
            break
        first.append(members[:-offset][same])
        second.append(members[offset:][same])
    if not first:
        return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp)
    return np.concatenate(first), np.concatenate(second)


def pair_information(posterior: Posterior, first: np.ndarray, second: np.ndarray, score: str = "eig") -> np.ndarray:
    """How much judging each pair is expected to teach, [K] (see the module docstring)."""
    diff_mean = posterior.mean[first] - posterior.mean[second]
    diff_var = posterior.var[first] + posterior.var[second]
    if score == "proxy":
        win_prob = expit(diff_mean / np.sqrt(1.0 + np.pi * diff_var / 8.0))
        return win_prob * (1.0 - win_prob) * diff_var
    if score != "eig":
        raise ValueError(f"unknown score {score!r}")
    probit_scale = np.pi / 8.0  # sigmoid(x) ~ Phi(x * sqrt(pi / 8))
    mu2 = diff_mean**2 * probit_scale
    v = diff_var * probit_scale
    c2 = np.pi * np.log(2.0) / 2.0
    predictive = ndtr(np.sqrt(mu2 / (1.0 + v)))  # P(the likelier winner wins); entropy is symmetric
    return _binary_entropy_bits(predictive) - np.sqrt(c2 / (v + c2)) * np.exp(-mu2 / (2.0 * (v + c2)))


def _binary_entropy_bits(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1.0 - 1e-12)
    return -(p * np.log2(p) + (1.0 - p) * np.log2(1.0 - p))


def _active_candidates(
    posterior: Posterior, counts: np.ndarray, n_pairs: int, rng: np.random.Generator, config: SelectionConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_images = counts.shape[0]
    order = np.argsort(posterior.mean, kind="stable")  # [N] image ids by score: the O(N log N) step
    sorted_mean = posterior.mean[order]
    rank = np.empty(n_images, dtype=np.intp)
    rank[order] = np.arange(n_images)

    n_focus = min(n_images, max(1, config.focus_per_pair * n_pairs))
    n_cold = int(round(config.cold_share * n_focus))
    tie_break = rng.random(n_images)  # [N] random order among equals
    uncertain = _smallest(-posterior.var * (1.0 + 1e-9 * tie_break), n_focus - n_cold)
    cold = _smallest(counts + tie_break, n_cold)
    focus = np.unique(np.concatenate([uncertain, cold]))  # [F]

    # Partners: the focus image's two neighbours in score order, plus random ranks within its window.
    half_width = config.window_z * np.sqrt(posterior.var[focus])
    low = np.searchsorted(sorted_mean, posterior.mean[focus] - half_width, side="left")
    high = np.searchsorted(sorted_mean, posterior.mean[focus] + half_width, side="right")  # exclusive
    n_random = max(0, config.partners_per_focus - 2)
    random_ranks = low[:, None] + (rng.random((focus.size, n_random)) * (high - low)[:, None]).astype(np.intp)
    neighbour_ranks = rank[focus][:, None] + np.array([-1, 1])
    partner_ranks = np.clip(np.concatenate([neighbour_ranks, random_ranks], axis=1), 0, n_images - 1)  # [F, K]

    first = np.repeat(focus, partner_ranks.shape[1])
    second = order[partner_ranks.ravel()]
    keep = first != second
    first, second = first[keep], second[keep]
    return first, second, pair_information(posterior, first, second, config.score)


def _pool_level(counts: np.ndarray, n_pairs: int, config: SelectionConfig) -> int:
    """The count of the k-th least compared image, k = ``swiss_pool`` per requested pair. The cold start
    lasts while it is below ``swiss_below``: a few new images in a mature project do not bring it back
    (the focus images of the information-driven selection serve them)."""
    k = min(counts.shape[0], max(2, int(np.ceil(config.swiss_pool * n_pairs))))
    return int(np.partition(counts, k - 1)[k - 1])  # O(N)


def _swiss_candidates(
    posterior: Posterior, counts: np.ndarray, level: int, rng: np.random.Generator, config: SelectionConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Swiss pairing: the least compared images (whole count levels up to ``level``), each offered its
    next ``swiss_offsets`` neighbours in posterior-mean order within that pool. Scored fewest
    comparisons first, then by information, so a round is completed before the next starts."""
    n_images = counts.shape[0]
    tie_break = rng.random(n_images)  # [N] random order among equals (all of round one)
    pool = np.flatnonzero(counts <= level)  # [P]
    pool = pool[np.lexsort((tie_break[pool], posterior.mean[pool]))]  # by mean; O(P log P)
    offsets = range(1, min(config.swiss_offsets, pool.size - 1) + 1)
    first = np.concatenate([pool[:-offset] for offset in offsets] or [np.empty(0, dtype=np.intp)])
    second = np.concatenate([pool[offset:] for offset in offsets] or [np.empty(0, dtype=np.intp)])
    information = np.maximum(pair_information(posterior, first, second, config.score), 0.0)  # EIG: round-off
    information = information / max(float(information.max(initial=0.0)), 1e-12)  # in [0, 1]
    # Fewest comparisons first (a whole count level outranks any information difference).
    return first, second, -2.0 * np.maximum(counts[first], counts[second]) + information


def _fewest_compared_candidates(
    counts: np.ndarray, n_pairs: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # A pool of the least compared images, each offered a few random partners from the same pool.
    tie_break = rng.random(counts.shape[0])
    pool = _smallest(counts + tie_break, min(counts.shape[0], 2 * n_pairs + 8))  # [P]
    partners_per_image = 4
    first = np.repeat(pool, partners_per_image)
    second = pool[rng.integers(0, pool.size, size=first.size)]
    keep = first != second
    first, second = first[keep], second[keep]
    # Fewest comparisons first; the random part orders equal counts.
    score = -(counts[first] + counts[second]) + rng.random(first.size)
    return first, second, score


def _fill_at_random(batch: _Batch, rng: np.random.Generator, max_rounds: int = 20) -> None:
    n_images = batch.n_images
    for _ in range(max_rounds):
        missing = batch.n_pairs - batch.size
        if missing <= 0:
            return
        size = 2 * missing + 16
        first = rng.integers(0, n_images, size=size)
        second = rng.integers(0, n_images, size=size)
        batch.add_best(first, second, score=None, limit=batch.n_pairs)


def _smallest(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k smallest values (unordered), O(N)."""
    if k <= 0:
        return np.empty(0, dtype=np.intp)
    if k >= values.shape[0]:
        return np.arange(values.shape[0])
    return np.argpartition(values, k - 1)[:k]


def _pair_keys(first: np.ndarray, second: np.ndarray, n_images: int) -> np.ndarray:
    """One int64 per unordered pair."""
    low = np.minimum(first, second).astype(np.int64)
    high = np.maximum(first, second).astype(np.int64)
    return low * n_images + high


def _exclusion_test(exclude: Exclusion, n_images: int) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    if exclude is None:
        return lambda first, second: np.zeros(first.shape[0], dtype=bool)
    if callable(exclude):
        return lambda first, second: np.asarray(exclude(first, second), dtype=bool)
    pairs = [tuple(pair) for pair in exclude]
    pairs = np.array([pair for pair in pairs if len(pair) == 2], dtype=np.int64).reshape(-1, 2)
    excluded_keys = np.unique(_pair_keys(pairs[:, 0], pairs[:, 1], n_images))
    return lambda first, second: np.isin(_pair_keys(first, second, n_images), excluded_keys)


class _Batch:
    """The pairs chosen so far, with the batch's rules: no self-pair, no repeat, no excluded pair,
    at most ``max_per_image`` pairs per image."""

    def __init__(self, n_images: int, n_pairs: int, max_per_image: int, is_excluded,
                 groups: np.ndarray | None = None, per_group: int | None = None) -> None:
        self.n_images = n_images
        self.n_pairs = n_pairs
        self.max_per_image = max_per_image
        self.is_excluded = is_excluded
        self.groups = groups  # [N] or None: with ``per_group``, at most that many pairs of one group
        self.per_group = per_group
        self.group_uses: dict[int, int] = {}
        self.chosen: list[tuple[int, int]] = []
        self.chosen_keys: set[int] = set()
        self.uses: dict[int, int] = {}

    @property
    def size(self) -> int:
        return len(self.chosen)

    def add_best(
        self, first: np.ndarray, second: np.ndarray, score: np.ndarray | None, limit: int, per_image: int | None = None
    ) -> None:
        """Accept candidates best score first (in the given order if score is None) until ``limit``."""
        cap = self.max_per_image if per_image is None else min(per_image, self.max_per_image)
        valid = first != second
        first, second = first[valid], second[valid]
        if score is not None:
            score = score[valid]
        keys = _pair_keys(first, second, self.n_images)
        # Keep each pair's first occurrence in priority order.
        priority = np.arange(first.size) if score is None else np.argsort(-score, kind="stable")
        _, first_seen = np.unique(keys[priority], return_index=True)
        priority = priority[np.sort(first_seen)]
        priority = priority[~self.is_excluded(first[priority], second[priority])]
        for index in priority.tolist():
            if self.size >= limit:
                break
            key = int(keys[index])
            i, j = int(first[index]), int(second[index])
            if key in self.chosen_keys or self.uses.get(i, 0) >= cap or self.uses.get(j, 0) >= cap:
                continue
            if self.per_group is not None:
                group = int(self.groups[i])
                if self.group_uses.get(group, 0) >= self.per_group:
                    continue
                self.group_uses[group] = self.group_uses.get(group, 0) + 1
            self.chosen.append((i, j))
            self.chosen_keys.add(key)
            self.uses[i] = self.uses.get(i, 0) + 1
            self.uses[j] = self.uses.get(j, 0) + 1

    def pairs(self) -> np.ndarray:
        return np.array(self.chosen, dtype=np.intp).reshape(-1, 2)
