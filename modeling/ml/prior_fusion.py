"""A model's scores as the prior of the Bradley–Terry fit, weighed by empirical Bayes.

    prior = ModelPrior(score, out_of_fold)                      # [N] model scale (NaN: none), [N] bool
    fused = fuse(n, a, b, outcome, prior)                       # fused.posterior, fused.strength

Model. With ``m_i`` the model's score standardised over the images that have one, the true
Bradley–Terry score is ``s_i = slope * m_i + e_i``, ``e_i ~ N(0, scatter)``: the prior of
``bradley_terry.fit_posterior``. Images without a score get ``N(0, slope**2 + scatter)``.

Strength, by empirical Bayes on comparisons the model did not see. A comparison whose two images are
out of fold (``ModelPrior.out_of_fold``: scored by a model that never saw that image's comparisons:
a head without the image's comparisons, another project's model) is a held-out test of the model. Under the prior,
``P(a preferred) = E sigmoid(s_a - s_b) ~ sigmoid(gamma * (m_a - m_b))`` with
``gamma = slope / sqrt(1 + pi * scatter / 4)`` (the probit approximation); so:

1. ``gamma``: a one-parameter logistic regression of the held-out outcomes on ``m_a - m_b`` (MAP under
   a wide N(0, 4), finite on separable data), with its standard error: a model that orders the held-out
   comparisons the wrong way round gets no weight. (The ``"cv"`` strength also shrinks it by its error.)
2. ``scatter`` and ``slope``: by default (``strength_by="evidence"``) by the Laplace evidence,
   log p(all outcomes | prior) (``log_evidence``), type-II maximum likelihood, valid although the pairs
   were chosen adaptively: over the grid ``FusionConfig.scatters`` x ``slopes`` and against the flat
   prior, which wins when the model predicts nothing (so a bad transfer fades as comparisons arrive).
   Of the grid points within ``evidence_slack`` nats of the best, the widest scatter: while images are
   compared about once the outcomes tell little of scatter against slope, and the Laplace evidence then
   favours narrow scatters that trust the model too much. Slopes are absolute, not tied to ``gamma``:
   estimated on actively chosen pairs (near ties under the current posterior) ``gamma`` fell towards 0
   as campaigns went on, and a grid tied to it lost the prior. ``strength_by="cv"`` instead scores each
   scatter (and the flat fit) by how well its posterior predicts held-out comparison folds; on served
   campaigns it chose the widest scatter, because active selection serves the pairs where prior and
   comparisons disagree.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import splu
from scipy.special import expit, log_expit

from . import bradley_terry as bt


@dataclass(frozen=True)
class FusionConfig:
    scatters: tuple[float, ...] = (0.02, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2)  # variances about the model (at most about the scores' spread)
    flat_prior_var: float = 1.0  # the comparisons-only fit's prior variance (``bt.FitConfig`` default)
    cv_folds: int = 4  # comparison folds that choose the scatter
    strength_by: str = "evidence"  # "evidence" (Laplace marginal likelihood) or "cv" (held-out folds; see docs)
    slopes: tuple[float, ...] = (0.1, 0.2, 0.35, 0.5, 0.7, 1.0, 1.4, 2.0, 2.8)  # evidence: slopes tried (absolute)
    evidence_slack: float = 6.0  # nats: of the grid points this close to the best, the widest scatter is taken
    # The evidence's log-determinant is a sparse LU whose fill-in grows with the comparison graph's density: at
    # 10 comparisons per image it is minutes for 5,000 images, never done for 10^6. Past this many comparisons
    # the strength is weighed on a random sample of them (a campaign of 1,000 images at 2 per image is below).
    evidence_max_comparisons: int = 4_000
    gamma_prior_var: float = 4.0  # N(0, 4) on gamma: finite when the model orders every held-out comparison
    min_heldout: int = 5  # fewer out-of-fold comparisons: too few to weigh the prior, ``no_data_slope`` instead
    no_data_slope: float = 0.1  # before that, the model only orders the images (a weak prior, flat scatter)
    fit: bt.FitConfig = bt.FitConfig(tolerance=1e-4)


@dataclass(frozen=True)
class ModelPrior:
    """A model's scores as a prior: the interface between where a prior comes from and the fusion."""

    score: np.ndarray  # [N] the model's score (any monotone scale), NaN where it scored no image
    out_of_fold: np.ndarray  # [N] bool: scored by a model that never trained on this image's comparisons
    source: str = ""  # what made it, for the fit's summary ("linear_bt, each image left out", "version 12", ...)
    version_id: int | None = None  # the model version behind it, if any


@dataclass(frozen=True)
class PriorStrength:
    slope: float  # prior mean = slope * standardised model score
    scatter: float  # prior variance about it
    gamma: float  # held-out logistic slope (after shrinkage)
    gamma_raw: float
    gamma_se: float
    n_heldout: int  # out-of-fold comparisons it was estimated on
    cv_log_likelihood: dict  # scatter -> mean held-out log-likelihood (and "flat")

    @property
    def share(self) -> float:
        """The share of the true scores' variance the model explains (0: no weight)."""
        total = self.slope**2 + self.scatter
        return float(self.slope**2 / total) if total > 0 else 0.0

    def summary(self) -> dict:
        return {"slope": round(self.slope, 4), "scatter": round(self.scatter, 4), "gamma": round(self.gamma, 4),
                "gamma_se": round(self.gamma_se, 4), "share": round(self.share, 4), "n_heldout": self.n_heldout}


@dataclass(frozen=True)
class FusedPosterior:
    posterior: bt.Posterior
    strength: PriorStrength | None  # None: the prior was not used (too few out-of-fold comparisons)
    prior_mean: np.ndarray | None = None  # [N]
    prior_var: np.ndarray | None = None  # [N]


def standardised_scores(score: np.ndarray) -> np.ndarray:
    """[N] -> [N]: mean 0, standard deviation 1 over the images that have a score; 0 elsewhere (NaN in)."""
    score = np.asarray(score, dtype=np.float64)
    known = np.isfinite(score)
    out = np.zeros_like(score)
    if known.sum() >= 2 and np.std(score[known]) > 0:
        out[known] = (score[known] - score[known].mean()) / score[known].std()
    return out


def heldout_gamma(x: np.ndarray, outcome: np.ndarray, weight: np.ndarray, prior_var: float) -> tuple[float, float]:
    """MAP of gamma in P(a) = sigmoid(gamma x) under N(0, prior_var), and its posterior standard deviation
    (Newton on one parameter; the prior keeps it finite when the model orders every comparison right)."""
    gamma = 0.0
    for _ in range(50):
        p = expit(gamma * x)
        gradient = np.sum(weight * (outcome - p) * x) - gamma / prior_var
        curvature = np.sum(weight * p * (1 - p) * x * x) + 1.0 / prior_var
        step = gradient / curvature
        gamma += step
        if abs(step) < 1e-8:
            break
    p = expit(gamma * x)
    return float(gamma), float(1.0 / np.sqrt(np.sum(weight * p * (1 - p) * x * x) + 1.0 / prior_var))


def estimate_strength(n_images: int, a: np.ndarray, b: np.ndarray, outcome: np.ndarray, m: np.ndarray,
                      has_score: np.ndarray, out_of_fold: np.ndarray, weight: np.ndarray,
                      config: FusionConfig = FusionConfig(), seed: int = 0) -> PriorStrength | None:
    """Slope and scatter of the prior (module docstring); None with too few out-of-fold comparisons."""
    # Relative weights: the raters' reliability fit can scale every weight down at small budgets (it trusts
    # nobody yet); how well the model predicts is a question about the comparisons, whoever judged them.
    weight = weight / weight.mean() if weight.size and weight.mean() > 0 else weight
    usable = has_score & out_of_fold
    heldout = usable[a] & usable[b]
    if heldout.sum() < config.min_heldout:
        return None
    raw, se = heldout_gamma(m[a[heldout]] - m[b[heldout]], outcome[heldout], weight[heldout], config.gamma_prior_var)
    gamma = raw * max(0.0, 1.0 - se**2 / raw**2) if raw > 0 else 0.0
    if config.strength_by == "evidence":
        if raw <= 0:  # the model orders the held-out comparisons the wrong way round: the flat prior
            return PriorStrength(0.0, config.flat_prior_var, 0.0, raw, se, int(heldout.sum()), {})
        return evidence_strength(n_images, a, b, outcome, m, has_score, weight, gamma, raw, se, int(heldout.sum()),
                                 config)
    if gamma == 0.0:  # the model predicts nothing the comparisons confirm: the flat prior
        return PriorStrength(0.0, config.flat_prior_var, 0.0, raw, se, int(heldout.sum()), {})
    fold = np.random.default_rng(seed).permutation(a.size) % config.cv_folds
    scores = {}
    candidates = [("flat", 0.0, config.flat_prior_var)]
    candidates += [(scatter, gamma * np.sqrt(1 + np.pi * scatter / 4), scatter) for scatter in config.scatters]
    for key, slope, scatter in candidates:
        mean, var = prior_arrays(m, has_score, slope, scatter)
        total = 0.0
        for k in range(config.cv_folds):
            train, test = fold != k, fold == k
            fit = bt.fit_posterior(n_images, a[train], b[train], outcome[train], weight[train], prior_mean=mean,
                                   prior_var=var, config=config.fit)
            p = np.clip(bt.win_probability(fit, a[test], b[test]), 1e-9, 1 - 1e-9)
            total += float(np.sum(weight[test] * (outcome[test] * np.log(p) + (1 - outcome[test]) * np.log1p(-p))))
        scores[key] = total / max(float(weight.sum()), 1e-9)
    best = max(scores, key=scores.get)
    scatter = config.flat_prior_var if best == "flat" else float(best)
    slope = 0.0 if best == "flat" else float(gamma * np.sqrt(1 + np.pi * scatter / 4))
    return PriorStrength(slope, scatter, float(gamma), raw, se, int(heldout.sum()),
                         {str(k): round(v, 5) for k, v in scores.items()})


def log_evidence(n_images: int, a: np.ndarray, b: np.ndarray, outcome: np.ndarray, weight: np.ndarray,
                 mean: np.ndarray, var: np.ndarray, init: np.ndarray | None, config: FusionConfig
                 ) -> tuple[float, bt.Posterior]:
    """Laplace approximation of log p(outcomes | prior N(mean, var)), and the posterior it was taken at.

    Over the compared images C (the others integrate out exactly): ``log-likelihood(s) - 1/2 sum_C (s - mean)^2
    / var - 1/2 sum_C log var - 1/2 log det H_C``, H_C the posterior precision on C (sparse LU)."""
    posterior = bt.fit_posterior(n_images, a, b, outcome, weight, prior_mean=mean, prior_var=var, init=init,
                                 config=config.fit)
    s = posterior.mean
    d = s[a] - s[b]
    value = float(np.sum(weight * (log_expit(-d) + outcome * d)))
    compared, inverse = np.unique(np.concatenate([a, b]), return_inverse=True)
    if compared.size == 0:
        return value, posterior
    value -= 0.5 * float(np.sum((s[compared] - mean[compared]) ** 2 / var[compared] + np.log(var[compared])))
    ia, ib = inverse[: a.size], inverse[a.size:]
    c = weight * expit(d) * expit(-d)
    k = compared.size
    rows = np.concatenate([np.arange(k), ia, ib, ia, ib])
    cols = np.concatenate([np.arange(k), ia, ib, ib, ia])
    values = np.concatenate([1.0 / var[compared], c, c, -c, -c])
    hessian = sparse.csc_matrix((values, (rows, cols)), shape=(k, k))
    factor = splu(hessian, permc_spec="MMD_AT_PLUS_A")
    value -= 0.5 * float(np.sum(np.log(np.abs(factor.U.diagonal()))))
    return value, posterior


def evidence_strength(n_images: int, a: np.ndarray, b: np.ndarray, outcome: np.ndarray, m: np.ndarray,
                      has_score: np.ndarray, weight: np.ndarray, gamma: float, raw: float, se: float, n_heldout: int,
                      config: FusionConfig) -> PriorStrength:
    """Slope and scatter by the Laplace evidence over a grid (scatters x slopes), against the flat prior.

    The flat prior (slope 0) wins when its evidence is the best: a model that predicts nothing fades. Otherwise,
    of the grid points within ``evidence_slack`` of the best, the widest scatter (at its best slope): where
    each image is compared about once the outcomes barely tell scatter from slope, and the Laplace evidence
    then leans to narrow scatters, which trusts the model too much. 6 nats, measured in the simulated campaign
    (``benchmarks/campaign_cost.py --simulate``, 2 seeds, 0.25-1 judgments per image): against 2 nats it ranked
    0.005-0.02 better and its expected SRCC erred by 0.00-0.09 instead of 0.00-0.22 (``docs/benchmarks.md``)."""
    if a.size > config.evidence_max_comparisons:  # the same sample for the same comparisons: refits agree
        sample = np.sort(np.random.default_rng(0).choice(a.size, config.evidence_max_comparisons, replace=False))
        a, b, outcome, weight = a[sample], b[sample], outcome[sample], weight[sample]
    # Only the compared images: the others' prior integrates out exactly and adds nothing to the evidence.
    compared, inverse = np.unique(np.concatenate([a, b]), return_inverse=True)
    a, b, m, has_score, n_images = inverse[: a.size], inverse[a.size:], m[compared], has_score[compared], compared.size
    flat_mean, flat_var = prior_arrays(m, has_score, 0.0, config.flat_prior_var)
    flat, posterior = log_evidence(n_images, a, b, outcome, weight, flat_mean, flat_var, None, config)
    results, init = {}, posterior.mean
    for scatter in config.scatters:
        for slope in config.slopes:
            mean, var = prior_arrays(m, has_score, slope, scatter)
            results[(scatter, slope)], posterior = log_evidence(n_images, a, b, outcome, weight, mean, var, init,
                                                                config)
            init = posterior.mean
    table = {f"{k[0]:g}/{k[1]:g}": round(v, 3) for k, v in results.items()} | {"flat": round(flat, 3)}
    best = max(results, key=results.get)
    if results[best] <= flat:
        return PriorStrength(0.0, config.flat_prior_var, float(gamma), raw, se, n_heldout, table)
    near = [k for k in results if results[k] >= results[best] - config.evidence_slack]
    widest = max(k[0] for k in near)
    scatter, slope = max((k for k in near if k[0] == widest), key=results.get)
    return PriorStrength(float(slope), float(scatter), float(gamma), raw, se, n_heldout, table)


def prior_arrays(m: np.ndarray, has_score: np.ndarray, slope: float, scatter: float) -> tuple[np.ndarray, np.ndarray]:
    """[N] prior means and variances: slope * m with scatter where scored, 0 with the total variance elsewhere."""
    mean = np.where(has_score, slope * m, 0.0)
    var = np.where(has_score, scatter, slope**2 + scatter)
    return mean, var


def weighed_prior(n_images: int, a: np.ndarray, b: np.ndarray, outcome: np.ndarray, prior: ModelPrior,
                  weight: np.ndarray | None = None, config: FusionConfig = FusionConfig()
                  ) -> tuple[np.ndarray, np.ndarray, PriorStrength | None]:
    """The prior's means and variances [N] each at its empirical-Bayes strength, and that strength.

    With fewer than ``config.min_heldout`` out-of-fold comparisons (strength None) the prior's slope is
    ``config.no_data_slope``: the model orders images nobody compared yet, any comparison overrules it.
    """
    a, b = np.asarray(a, dtype=np.intp), np.asarray(b, dtype=np.intp)
    outcome = np.asarray(outcome, dtype=np.float64)
    weight = np.ones_like(outcome) if weight is None else np.asarray(weight, dtype=np.float64)
    has_score = np.isfinite(np.asarray(prior.score, dtype=np.float64))
    m = standardised_scores(prior.score)
    strength = estimate_strength(n_images, a, b, outcome, m, has_score, np.asarray(prior.out_of_fold, dtype=bool),
                                 weight, config)
    if strength is None:  # too few comparisons to weigh it: the model orders, the comparisons decide
        return *prior_arrays(m, has_score, config.no_data_slope, config.flat_prior_var), None
    return *prior_arrays(m, has_score, strength.slope, strength.scatter), strength


def fuse(n_images: int, a: np.ndarray, b: np.ndarray, outcome: np.ndarray, prior: ModelPrior,
         weight: np.ndarray | None = None, init: np.ndarray | None = None,
         config: FusionConfig = FusionConfig()) -> FusedPosterior:
    """The Bradley–Terry posterior with the model's prior at its empirical-Bayes strength (``weighed_prior``)."""
    mean, var, strength = weighed_prior(n_images, a, b, outcome, prior, weight, config)
    posterior = bt.fit_posterior(n_images, a, b, outcome, weight, prior_mean=mean, prior_var=var, init=init,
                                 config=config.fit)
    return FusedPosterior(posterior, strength, mean, var)


def heldout_log_likelihood(prior: ModelPrior, a: np.ndarray, b: np.ndarray, outcome: np.ndarray,
                           weight: np.ndarray, usable: np.ndarray, config: FusionConfig = FusionConfig()) -> float:
    """Mean log-likelihood of the ``usable`` comparisons under sigmoid(gamma (m_a - m_b)), gamma at its MAP."""
    if not usable.any():
        return float("-inf")
    m = standardised_scores(prior.score)
    x = m[a[usable]] - m[b[usable]]
    gamma, _ = heldout_gamma(x, outcome[usable], weight[usable], config.gamma_prior_var)
    p = np.clip(expit(gamma * x), 1e-9, 1 - 1e-9)
    y = outcome[usable]
    return float(np.sum(weight[usable] * (y * np.log(p) + (1 - y) * np.log1p(-p))) / np.sum(weight[usable]))


def better_prior(priors: list[ModelPrior], a: np.ndarray, b: np.ndarray, outcome: np.ndarray,
                 weight: np.ndarray | None = None, config: FusionConfig = FusionConfig()) -> ModelPrior | None:
    """Of several priors (a warm start and the project's own model), the one that predicts best the
    comparisons that are out of fold for all of them; the first while there are fewer than
    ``config.min_heldout`` such comparisons."""
    priors = [p for p in priors if p is not None]
    if len(priors) <= 1:
        return priors[0] if priors else None
    a, b = np.asarray(a, dtype=np.intp), np.asarray(b, dtype=np.intp)
    outcome = np.asarray(outcome, dtype=np.float64)
    weight = np.ones_like(outcome) if weight is None else np.asarray(weight, dtype=np.float64)
    usable_image = np.logical_and.reduce([np.asarray(p.out_of_fold, dtype=bool) & np.isfinite(p.score)
                                          for p in priors])
    usable = usable_image[a] & usable_image[b]
    if usable.sum() < config.min_heldout:
        return priors[0]
    scores = [heldout_log_likelihood(p, a, b, outcome, weight, usable, config) for p in priors]
    return priors[int(np.argmax(scores))]

