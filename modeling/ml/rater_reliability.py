"""Rater reliability fitted jointly with the Bradley–Terry scores (crowd-BT's "attentive" rater).

Model. Rater *r* is attentive with probability ``eta_r``: an attentive judgment of (a, b) follows the
Bradley–Terry model, P(a preferred) = sigmoid(s_a - s_b); a careless one is a coin flip whatever the
images, landing on the left image with the rater's own probability ``left_r`` (1/2 for a random
clicker, 1 for one who always clicks left). Pairs are shown in random order, so an attentive rater's
side is a fair coin and ``left_r`` catches a lopsided one. Each ``eta_r`` has a Beta prior
(``prior_attentive``, ``prior_strength``), each ``left_r`` a Beta(2, 2).

Fit (alternating MAP, in the manner of EM). The hidden variable is whether judgment *k* was attentive.

* ``A_k``: the judgment's probability if attentive, taken from the posterior *without* the judgment
  (``loo_likelihood``); ``C_k``: its probability if careless (``left_r`` or ``1 - left_r``), ``left_r``
  too taken *without* the judgment (``_loo_left``): fitted to the clicks it then explains, a fair coin
  out-scored the attentive branch's 1/2 wherever ``A_k`` said nothing, and ``eta`` collapsed to 0.
* ``eta_r``: the maximum of ``sum_k log(eta A_k + (1 - eta) C_k)`` plus its log prior, per rater
  (concave for the default prior; Newton steps kept in a bisection bracket). Plain EM moves ``eta``
  towards 0 too slowly for a random clicker, whose judgments are about as likely under either branch.
* ``w_k = eta A_k / (eta A_k + (1 - eta) C_k)``, the judgment's probability of being attentive (for a
  tie ``eta``: a coin flip has no tie probability to compare with); ``left_r`` from the careless shares.
  ``eta``, ``w`` and ``left_r`` need no score fit, so within a step they are iterated against each other to
  agreement (``_settle_raters``): a newcomer's eta and side share would otherwise swing from step to step.
* The scores: the weighted MAP fit ``bradley_terry.fit_posterior(..., weight=w)`` (the expected
  complete-data log posterior is that fit's objective), warm-started from the last scores.

It stops once no ``eta`` moves by more than ``tolerance``, leaving out raters whose judgments' weight moves
by less than ``settled_weight`` in all (a newcomer with three judgments): after the fit whose weights moved
no more, or, from the second step on, before a fit, when the last fit's own scores confirm its weights. The
first step scores the judgments with the unweighted fit (or with the carried ``eta``). Why this model rather than
weights from gold and agreement: ``docs/active-learning.md``, "Raters who click at random".
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.special import expit

from modeling.ml import bradley_terry as bt


ETA_FLOOR = 1e-4  # eta lies in [ETA_FLOOR, 1 - ETA_FLOOR]
ETA_PRECISION = 1e-12  # each eta is found to this (bisection's 40 halvings of the range gave 1e-12)
MAX_ETA_STEPS = 60  # evaluations per eta fit: bisection alone needs 40 where Newton steps cannot help
SETTLE_PRECISION = 1e-4  # a rater's eta and side shares agree once a round moves neither by more than this
CYCLE_PRECISION = 1e-3  # ... and one back within this of where it was two rounds ago is swinging between two
MAX_SETTLE_ROUNDS = 100  # rounds of a rater's eta and side share against each other within a step


@dataclass(frozen=True)
class ReliabilityConfig:
    # eta's Beta prior: uniform, Beta(1, 1). A prior leaning towards "attentive" (0.9 of 4 judgments) left
    # random clickers at eta ~ 0.9 at 2 judgments per image (docs/benchmarks.md, "Spam tolerance"); on
    # uninformative data (a fraction of a judgment per image) the leave-one-out side share, not the prior,
    # keeps an honest rater's eta from collapsing (docs/active-learning.md, "Raters who click at random").
    prior_attentive: float = 0.5  # the prior's mean
    prior_strength: float = 2.0  # the prior counts as this many judgments
    side_prior_strength: float = 4.0  # a careless rater's left share has a Beta(2, 2) prior (of this strength)
    max_steps: int = 30
    tolerance: float = 1e-2  # stop once no eta moves by more than this ...
    # ... or, for a rater with few judgments, once all their judgments' weight together moves by less than this
    # (|change of eta| x judgments): a newcomer's eta can wander for steps on three judgments, each step a fit of
    # every comparison (10^7: minutes), while it changes the scores by less than one more judgment would.
    settled_weight: float = 1.0


@dataclass(frozen=True)
class RaterWeights:
    """Each rater's attentive probability: what is kept of a fit, to start the next one from."""

    rater_ids: np.ndarray  # [R] ascending
    attentive: np.ndarray  # [R] eta_r
    comparisons: int = 0  # how many comparisons the fit they come from saw

    def per_comparison(self, rater_id: np.ndarray, default: float = 1.0) -> np.ndarray:
        """[M] each comparison's rater's ``eta`` (``default`` for a rater not among them)."""
        return _carried(self.rater_ids, self.attentive, np.asarray(rater_id), default)


@dataclass(frozen=True)
class RaterReliability:
    """Each rater's attentive probability, each comparison's weight, and the weighted posterior."""

    rater_ids: np.ndarray  # [R] ascending
    attentive: np.ndarray  # [R] eta_r, the rater's weight
    careless_left: np.ndarray  # [R] how often the rater's careless judgments chose the left image
    judgments: np.ndarray  # [R] comparisons by the rater that entered the fit
    weight: np.ndarray  # [M] w_k, the comparison's probability of being attentive
    posterior: bt.Posterior  # the scores fitted with ``weight`` (newton_steps: of all the fits together)
    steps: int
    first_fit: bt.Posterior  # the fit the EM began with: unweighted, or with the carried eta

    def rater_weights(self) -> RaterWeights:
        return RaterWeights(self.rater_ids, self.attentive, int(self.weight.shape[0]))

    def attentive_of(self, rater_id: int) -> float | None:
        index = np.searchsorted(self.rater_ids, rater_id)
        if index < self.rater_ids.shape[0] and self.rater_ids[index] == rater_id:
            return float(self.attentive[index])
        return None


def fit_rater_reliability(
    n_images: int,
    a_index: np.ndarray,
    b_index: np.ndarray,
    outcome: np.ndarray,
    rater_id: np.ndarray,
    prior_mean: np.ndarray | float | None = None,
    prior_var: np.ndarray | float | None = None,
    init: np.ndarray | None = None,
    previous: RaterWeights | None = None,
    config: ReliabilityConfig = ReliabilityConfig(),
    fit_config: bt.FitConfig = bt.FitConfig(),
) -> RaterReliability:
    """Alternating MAP fit of the scores and every rater's ``eta`` and ``left`` (see the module docstring).

    a_index, b_index, outcome: [M] as ``bradley_terry.fit_posterior`` takes them.
    rater_id: [M] int, who made each comparison.
    prior_mean, prior_var, init: passed on to every score fit.
    previous: the raters' ``eta`` of the last fit of (most of) these comparisons: the start, and they weigh
    their judgments' careless shares in the first side counts (a new rater starts as attentive), so a refit after
    a few new judgments takes a step or two. It ends within the stopping rule's ``tolerance`` of the fit from
    the prior's ``eta``, not at the same numbers.
    """
    outcome = np.asarray(outcome, dtype=np.float64)
    rater_ids, rater_of = np.unique(np.asarray(rater_id), return_inverse=True)  # [R], [M]
    n_raters = rater_ids.shape[0]
    decided = outcome != 0.5  # [M]
    eta = np.full(n_raters, config.prior_attentive)  # [R]
    weight = np.ones_like(outcome)  # [M]
    if previous is not None:
        eta = _carried(previous.rater_ids, previous.attentive, rater_ids, 1.0)
        weight = eta[rater_of]
    posterior = first_fit = bt.fit_posterior(n_images, a_index, b_index, outcome, weight=weight,
                                             prior_mean=prior_mean, prior_var=prior_var, init=init, config=fit_config)
    # Pairs are shown in random order, so an attentive rater chooses left half the time: a lopsided rater's
    # careless judgments start with their side share (every decided judgment counted as careless, or as much
    # as the last fit's ``eta`` says).
    share = np.where(decided, 1.0 - weight if previous is not None else 1.0, 0.0)  # [M] careless share
    newton_steps = posterior.newton_steps
    judgments = np.bincount(rater_of, minlength=n_raters)  # [R]
    eta_before = np.full(n_raters, np.nan)  # [R] eta two steps back
    steps = 0
    for steps in range(1, config.max_steps + 1):
        attentive_likelihood = loo_likelihood(posterior, a_index, b_index, outcome, weight)  # [M]
        next_eta, next_share = _settle_raters(attentive_likelihood, outcome, rater_of, eta, share, n_raters, config)
        moved = np.abs(next_eta - eta)  # [R]
        if steps > 1 and not np.any((moved >= config.tolerance) & (moved * judgments >= config.settled_weight)):
            break  # the last fit's weights are confirmed by its own scores: no fit to do (the first step's
            # start was the unweighted fit or the carried eta, not the judgments' own weights)
        # A rater with a few judgments can swing between two etas for ever (the scores follow eta, and eta the
        # scores): one back where it was two steps ago stays halfway, and is settled.
        cycling = np.abs(next_eta - eta_before) < config.tolerance
        next_eta = np.where(cycling, (eta + next_eta) / 2, next_eta)
        eta_before, eta = eta, next_eta
        careless_likelihood = _careless_likelihood(outcome, rater_of, next_share, n_raters, config)
        weight = _responsibility(attentive_likelihood, careless_likelihood, eta[rater_of], outcome)
        share = np.where(decided, 1.0 - weight, 0.0)
        posterior = bt.fit_posterior(n_images, a_index, b_index, outcome, weight=weight, prior_mean=prior_mean,
                                     prior_var=prior_var, init=posterior.mean, config=fit_config)
        newton_steps += posterior.newton_steps
        if not np.any((moved >= config.tolerance) & (moved * judgments >= config.settled_weight) & ~cycling):
            break
    left_count, total = _side_counts(outcome, rater_of, share, n_raters, config.side_prior_strength)
    left = left_count / total  # [R]
    posterior = replace(posterior, newton_steps=newton_steps)  # all the fits' steps: the cost of this fit
    return RaterReliability(rater_ids, eta, left, judgments, weight, posterior, steps, first_fit)


def _settle_raters(attentive: np.ndarray, outcome: np.ndarray, rater_of: np.ndarray, eta: np.ndarray,
                   share: np.ndarray, n_raters: int, config: ReliabilityConfig) -> tuple[np.ndarray, np.ndarray]:
    """Each rater's ``eta`` [R] and their judgments' careless shares [M], iterated to agreement with each
    other while the attentive likelihoods ``attentive`` [M] stay as the scores give them.

    A rater's careless side share follows their ``eta``, and ``eta`` the side share; neither needs a score
    fit. Left to the outer steps, a newcomer with a few judgments swung between the two for several steps,
    each a fit of every comparison (docs/benchmarks.md, "The raters' weights carried in the database"). Here
    only the judgments of the raters still moving are read again, so the rounds after the first cost little.
    """
    decided = outcome != 0.5  # [M]
    share = share.copy()
    eta = eta.copy()
    eta_before = np.full(n_raters, np.nan)  # [R] eta two rounds back
    rows = np.arange(outcome.shape[0])  # [M'] the judgments of the raters still moving
    for _ in range(MAX_SETTLE_ROUNDS):
        own, result, raters = decided[rows], outcome[rows], rater_of[rows]
        careless = _careless_likelihood(result, raters, share[rows], n_raters, config)  # [M']
        solved = _map_attentive(attentive[rows][own], careless[own], raters[own], n_raters, config, start=eta)
        read = np.zeros(n_raters, bool)
        read[raters] = True  # the raters read this round; the others keep their eta
        next_eta = np.where(read, solved, eta)
        # A newcomer's eta and side share can also swing for ever between two states (eta 1e-4 and 0.1 on five
        # judgments): one back where it was two rounds ago stays halfway, and is settled.
        cycling = (read & (np.abs(next_eta - eta_before) < CYCLE_PRECISION)
                   & (np.abs(next_eta - eta) >= CYCLE_PRECISION))
        next_eta = np.where(cycling, (eta + next_eta) / 2, next_eta)
        weight = _responsibility(attentive[rows], careless, next_eta[raters], result)
        next_share = np.where(own, 1.0 - weight, 0.0)
        shifted = np.bincount(raters, np.abs(next_share - share[rows]), minlength=n_raters)  # [R] in all
        share[rows] = next_share
        shifted /= np.maximum(np.bincount(raters, minlength=n_raters), 1)  # [R] per judgment
        moving = read & ~cycling & ((np.abs(next_eta - eta) >= SETTLE_PRECISION) | (shifted >= SETTLE_PRECISION))
        eta_before, eta = eta, next_eta
        if not moving.any():
            break
        rows = rows[moving[raters]]
    return eta, share


def _careless_likelihood(outcome: np.ndarray, rater_of: np.ndarray, share: np.ndarray, n_raters: int,
                         config: ReliabilityConfig) -> np.ndarray:
    """``C_k`` [M]: the judgment's probability if careless, from the rater's side share without it."""
    left_loo = _loo_left(outcome, rater_of, share, n_raters, config.side_prior_strength)
    return np.where(outcome == 1.0, left_loo, 1.0 - left_loo)


def _side_counts(outcome: np.ndarray, rater_of: np.ndarray, share: np.ndarray, n_raters: int,
                 strength: float) -> tuple[np.ndarray, np.ndarray]:
    """Each rater's careless left choices and careless judgments, [R] each, with the Beta side prior's counts."""
    left = strength / 2 + np.bincount(rater_of, share * (outcome == 1.0), minlength=n_raters)
    return left, strength + np.bincount(rater_of, share, minlength=n_raters)


def _loo_left(outcome: np.ndarray, rater_of: np.ndarray, share: np.ndarray, n_raters: int,
              strength: float) -> np.ndarray:
    """The rater's careless left share without judgment k, [M]: like ``A_k``, ``C_k`` is scored on held-out
    data. Fitted to the judgment itself, a fair clicker's side share bends towards their own coin flips and
    explains them better than an attentive rater's 1/2, which pulled an honest rater's ``eta`` to 0 whenever
    the ``A_k`` said little (a fraction of a judgment per image)."""
    left, total = _side_counts(outcome, rater_of, share, n_raters, strength)
    return (left[rater_of] - share * (outcome == 1.0)) / (total[rater_of] - share)


def _carried(old_ids: np.ndarray, old_values: np.ndarray, ids: np.ndarray, default: float) -> np.ndarray:
    """``old_values`` (given per ``old_ids``, ascending) placed on ``ids`` (any, repeated or not); ``default`` for
    ids not among them."""
    values = np.full(ids.shape[0], default, dtype=np.float64)
    if old_ids.shape[0]:
        index = np.minimum(np.searchsorted(old_ids, ids), old_ids.shape[0] - 1)
        known = old_ids[index] == ids
        values[known] = old_values[index[known]]
    return values


def loo_likelihood(posterior: bt.Posterior, a_index: np.ndarray, b_index: np.ndarray, outcome: np.ndarray,
                   fitted_weight: np.ndarray) -> np.ndarray:
    """P(judgment k | the other judgments) for an attentive rater, [M]; 1/2 for a tie's share.

    ``fitted_weight`` [M] are the weights ``posterior`` was fitted with. The judgment is scored against
    the posterior without itself (one leave-one-out Laplace step on the score difference): with few
    comparisons per image the fitted scores have bent towards every judgment, a random one included,
    and would make it look attentive.
    """
    diff = posterior.mean[a_index] - posterior.mean[b_index]  # [M]
    diff_var = posterior.var[a_index] + posterior.var[b_index]  # [M] (diagonal: ignores correlations)
    fitted_p = expit(diff)
    own_precision = fitted_weight * fitted_p * (1.0 - fitted_p)  # [M] the judgment's share of 1 / diff_var
    loo_var = 1.0 / np.maximum(1.0 / diff_var - own_precision, 1e-6)  # [M]
    loo_diff = diff - loo_var * fitted_weight * (outcome - fitted_p)  # [M] one Newton step without k
    win_prob = expit(loo_diff / np.sqrt(1.0 + np.pi * loo_var / 8.0))  # [M] predictive P(a preferred)
    return np.where(outcome == 1.0, win_prob, np.where(outcome == 0.0, 1.0 - win_prob, 0.5))


def _map_attentive(attentive: np.ndarray, careless: np.ndarray, rater_of: np.ndarray, n_raters: int,
                   config: ReliabilityConfig, start: np.ndarray | None = None) -> np.ndarray:
    """Each rater's MAP ``eta`` given their judgments' two likelihoods, [R].

    The log posterior ``sum_k log(eta A_k + (1 - eta) C_k) + log Beta(eta)`` is concave in ``eta``; its
    derivative (the slope) decreases, and ``eta`` is where it turns from positive to not, on
    [ETA_FLOOR, 1 - ETA_FLOOR]: found for all raters at once by ``_bracketed_newton`` from ``start``
    (the last ``eta``), in a handful of passes over the judgments where bisection took 40 (at 10^7
    judgments each pass costs about a second). Raters without judgments here have the prior's slope only.
    A prior with a parameter below 1 is not log-concave (its slope turns up again at an end): there the
    zero found depends on the path, and bisection's path from 1/2 is kept.
    """
    alpha = config.prior_strength * config.prior_attentive
    beta = config.prior_strength * (1.0 - config.prior_attentive)

    def prior(eta, solving=None):  # the log prior's slope and its derivative, [R] each
        return ((alpha - 1.0) / eta - (beta - 1.0) / (1.0 - eta),
                -(alpha - 1.0) / eta**2 - (beta - 1.0) / (1.0 - eta) ** 2)

    # The judgments a pass reads: most raters settle in a few passes, a few (a random clicker at the floor)
    # take many more, and their passes need not read everyone's judgments. Once fewer than half belong to
    # raters still being solved, the rest are left out; the order is kept, so each rater's sums are the
    # same to the last bit.
    excess, careless_of, raters_of = attentive - careless, careless, rater_of  # [M'] each; excess: A - C

    def posterior(eta, solving):
        nonlocal excess, careless_of, raters_of
        keep = solving[raters_of]
        if np.count_nonzero(keep) < keep.shape[0] / 2:
            excess, careless_of, raters_of = excess[keep], careless_of[keep], raters_of[keep]
        share = excess / (careless_of + eta[raters_of] * excess)  # d/d eta of log(eta A + (1 - eta) C)
        slope, bend = prior(eta)
        return (slope + np.bincount(raters_of, share, minlength=n_raters),
                bend - np.bincount(raters_of, share * share, minlength=n_raters))

    judged = np.bincount(rater_of, minlength=n_raters) > 0  # [R]
    concave = alpha >= 1.0 and beta >= 1.0
    if start is None or not concave:
        start = np.full(n_raters, 0.5)
    start = np.clip(start, ETA_FLOOR, 1.0 - ETA_FLOOR)
    eta = _bracketed_newton(posterior, start, judged, newton=concave)
    if not judged.all():  # the prior alone: no pass over the judgments, so bisection's steps cost nothing
        eta[~judged] = _bracketed_newton(prior, start, ~judged, newton=concave)[~judged]
    return eta


def _bracketed_newton(slope_and_bend, start: np.ndarray, solve: np.ndarray, newton: bool = True) -> np.ndarray:
    """Where each decreasing slope turns from positive to not on [ETA_FLOOR, 1 - ETA_FLOOR], [R].

    ``slope_and_bend(eta, solving)`` gives the slopes [R] at ``eta`` [R] and their derivatives (<= 0), right
    at least where ``solving`` [R] is set; only the ``solve`` entries are solved (the others are returned
    as started). Each evaluation narrows a bracket
    round the zero; the next point is the Newton step where it falls inside, else the bracket's middle, as
    bisection would take. A step beyond an end not yet evaluated lands on that end: where the zero lies
    outside the range (a random clicker's eta at the floor), one evaluation there closes the bracket.
    The answer is within ``ETA_PRECISION`` of bisection's.
    """
    low, high = np.full(start.shape, ETA_FLOOR), np.full(start.shape, 1.0 - ETA_FLOOR)
    low_seen, high_seen = np.zeros(start.shape, bool), np.zeros(start.shape, bool)
    eta, open_ = start.copy(), solve.copy()
    for _ in range(MAX_ETA_STEPS):
        slope, bend = slope_and_bend(eta, open_)
        rising = open_ & (slope > 0)
        falling = open_ & ~(slope > 0)
        low, low_seen = np.where(rising, eta, low), low_seen | rising
        high, high_seen = np.where(falling, eta, high), high_seen | falling
        with np.errstate(divide="ignore", invalid="ignore"):
            point = np.where(bend < 0, eta - slope / bend, np.nan) if newton else np.full(eta.shape, np.nan)
        following = np.where((point > low) & (point < high), point, (low + high) / 2)
        following = np.where((point <= low) & ~low_seen, low, following)
        following = np.where((point >= high) & ~high_seen, high, following)
        closed = high - low <= ETA_PRECISION
        following = np.where(closed, (low + high) / 2, following)
        settled = closed | (np.abs(following - eta) <= ETA_PRECISION)
        eta = np.where(open_, following, eta)
        open_ &= ~settled
        if not open_.any():
            break
    return eta


def _responsibility(attentive: np.ndarray, careless: np.ndarray, eta: np.ndarray, outcome: np.ndarray) -> np.ndarray:
    """P(judgment k was attentive | its outcome), [M]; a tie says nothing about attention here: ``eta``."""
    weight = eta * attentive / (eta * attentive + (1.0 - eta) * careless)
    return np.where(outcome == 0.5, eta, weight)
