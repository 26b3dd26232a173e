"""Human scores: a Bradley–Terry MAP posterior over image quality, fitted from pairwise comparisons.

Model. Image *i* has a latent score ``s_i``; a rater prefers *a* over *b* with probability
``sigmoid(s_a - s_b)``. Each score has a Gaussian prior ``N(prior_mean_i, prior_var_i)``: by default
``N(0, 1)``, a weak prior that keeps never-compared images (and images that won every comparison)
finite; when the ranker has scored the images, its prediction mapped onto this scale
(:func:`map_model_to_bt_scale`) takes its place, so that uncompared images are placed by content.
A tie counts as half a win each way (``outcome = 0.5``), and a per-comparison ``weight`` (rater
reliability) scales that comparison's log-likelihood.

Fit. The MAP estimate minimises the convex negative log posterior with damped Newton steps. The
Hessian is a weighted graph Laplacian plus the diagonal prior precision, so each Newton system is
solved by conjugate gradients with a Jacobi preconditioner; products with the Hessian need only
``np.bincount`` over the comparisons, never an N x N matrix. A warm start (``init``: the previous
means) makes the refit after a batch of new comparisons take a few Newton steps instead of six or so.

Variance. The Laplace approximation's marginal variance is approximated by the inverse of the
Hessian's diagonal, ``1 / (1/prior_var_i + sum_k w_k p_k (1 - p_k))``: O(M), right for an image
compared against well-placed partners, too small for images linked to the rest only through other
uncertain images (it ignores posterior correlations). The selection only needs it to rank
candidates; where the size matters (the model prior's scatter), :func:`mean_posterior_variance`
estimates the true mean variance of a set of images.

Model prior, per refit (see :func:`map_model_to_bt_scale`)::

    flat = fit_posterior(n, a, b, y)                                   # first time only
    prior_mean, prior_var = map_model_to_bt_scale(model_mean, model_std, previous, counts,
                                                  mean_posterior_variance(previous, compared, a, b, y, ...))
    posterior = fit_posterior(n, a, b, y, prior_mean=prior_mean, prior_var=prior_var, init=previous.mean)

where ``previous`` is the last posterior (fitted with the last prior; ``flat`` the first time).

Why not choix or crowd-kit: on adaptively collected data they fit less accurately, or as accurately
but much more slowly, than a MAP fit with a Gaussian prior (figures in ``docs/benchmarks.md``, "The
human-score fit against choix and crowd-kit"). Neither takes a per-image Gaussian prior (needed for
the model prior), per-comparison weights and a warm start together, and neither returns variances,
which the active selection needs. This module's fit time is in ``docs/benchmarks.md`` too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit, log_expit


@dataclass(frozen=True)
class Posterior:
    """Gaussian posterior over the images' Bradley–Terry scores (diagonal covariance)."""

    mean: np.ndarray  # [N]
    var: np.ndarray  # [N]
    newton_steps: int = 0  # how many Newton steps the fit took (diagnostics)

    @property
    def n_images(self) -> int:
        return int(self.mean.shape[0])

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.var)


@dataclass(frozen=True)
class FitConfig:
    default_prior_var: float = 1.0  # prior variance where the caller gives none
    tolerance: float = 1e-6  # stop once the largest Newton step is below this (score units)
    max_newton_steps: int = 100
    cg_rtol: float = 1e-3  # relative residual for the inner conjugate-gradient solve
    max_cg_steps: int = 300


def comparison_counts(n_images: int, a_index: np.ndarray, b_index: np.ndarray) -> np.ndarray:
    """Number of comparisons each image took part in, [N] int."""
    return np.bincount(a_index, minlength=n_images) + np.bincount(b_index, minlength=n_images)


def win_probability(posterior: Posterior, a_index: np.ndarray, b_index: np.ndarray) -> np.ndarray:
    """P(a preferred over b) under the posterior, averaging over the score uncertainty.

    Uses the probit approximation of the logistic-Gaussian integral.
    """
    diff_mean = posterior.mean[a_index] - posterior.mean[b_index]
    diff_var = posterior.var[a_index] + posterior.var[b_index]
    return expit(diff_mean / np.sqrt(1.0 + np.pi * diff_var / 8.0))



def _line_search(problem: _Problem, scores: np.ndarray, step: np.ndarray, gradient: np.ndarray,
                 current: float) -> tuple[np.ndarray, float, float]:
    """Backtracking (Armijo): the first of the whole step, half of it, a quarter... that lowers the objective
    enough; it keeps far-from-optimum steps from overshooting on the flat logistic tails.
    Returns (the new scores, their objective, the step size taken)."""
    slope = _dot(gradient, step)
    step_size = 1.0
    while True:
        candidate = scores + step_size * step
        value = problem.objective(candidate)
        if value <= current + 1e-4 * step_size * slope or step_size < 1e-6:
            return candidate, value, step_size
        step_size *= 0.5


def fit_posterior(
    n_images: int,
    a_index: np.ndarray,
    b_index: np.ndarray,
    outcome: np.ndarray,
    weight: np.ndarray | None = None,
    prior_mean: np.ndarray | float | None = None,
    prior_var: np.ndarray | float | None = None,
    init: np.ndarray | None = None,
    config: FitConfig = FitConfig(),
) -> Posterior:
    """MAP Bradley–Terry scores with a Gaussian prior, and their Laplace (diagonal) variances.

    a_index, b_index: [M] int, the two images of each comparison.
    outcome: [M] float, 1.0 if a won, 0.0 if b won, 0.5 for a tie.
    weight: [M] float >= 0, the comparison's reliability (default 1).
    prior_mean, prior_var: [N] or scalar (default 0 and ``config.default_prior_var``).
    init: [N] warm start, e.g. the previous fit's means (default: the prior mean).
    """
    problem = _Problem(n_images, a_index, b_index, outcome, weight, prior_mean, prior_var, config)
    scores = np.array(problem.prior_mean if init is None else init, dtype=np.float64)  # [N]
    if scores.shape != (n_images,):
        raise ValueError("init must have shape [n_images]")

    current = problem.objective(scores)
    newton_steps = 0
    for newton_steps in range(1, config.max_newton_steps + 1):
        gradient, pair_curvature = problem.curvature(scores)
        step = _preconditioned_cg(
            lambda x: problem.hessian_times(pair_curvature, x),
            -gradient,
            1.0 / problem.hessian_diagonal(pair_curvature),
            config.cg_rtol,
            config.max_cg_steps,
        )
        if np.max(np.abs(step), initial=0.0) < config.tolerance:
            # Converged: taken whole. Its change to the objective is below the sum's round-off, so the
            # backtracking below would only halve it 20 times (20 objective evaluations, the most costly
            # part of a warm refit), for an answer that differs by less than the tolerance.
            scores = scores + step
            break
        scores, current, step_size = _line_search(problem, scores, step, gradient, current)
        if step_size * np.max(np.abs(step), initial=0.0) < config.tolerance:
            break

    _, pair_curvature = problem.curvature(scores)
    return Posterior(mean=scores, var=1.0 / problem.hessian_diagonal(pair_curvature), newton_steps=newton_steps)


def mean_posterior_variance(
    posterior: Posterior,
    images: np.ndarray,
    a_index: np.ndarray,
    b_index: np.ndarray,
    outcome: np.ndarray,
    weight: np.ndarray | None = None,
    prior_var: np.ndarray | float | None = None,
    n_probes: int = 8,
    rng: np.random.Generator | None = None,
    config: FitConfig = FitConfig(),
) -> float:
    """The mean Laplace marginal variance over ``images``, without inverting the Hessian.

    ``Posterior.var`` (the inverse of the Hessian's diagonal) ignores correlations, and so it
    underestimates the variance of images that were compared mostly among themselves, such as
    neighbours in score order under active selection: a whole group of them can shift together
    almost freely. The mean of the true marginal variances is ``trace(P H^-1 P) / |images|``,
    estimated here with Hutchinson's estimator: random +-1 vectors ``z`` on ``images``, each
    ``z . H^-1 z`` by one conjugate-gradient solve (so about ``n_probes`` fits' worth of CG work).
    The comparisons and ``prior_var`` must be those the posterior was fitted with.
    """
    problem = _Problem(posterior.n_images, a_index, b_index, outcome, weight, None, prior_var, config)
    images = np.asarray(images, dtype=np.intp)
    if images.size == 0:
        return 0.0
    rng = np.random.default_rng(0) if rng is None else rng
    _, pair_curvature = problem.curvature(posterior.mean)
    inverse_diagonal = 1.0 / problem.hessian_diagonal(pair_curvature)
    estimates = []
    for _ in range(n_probes):
        probe = np.zeros(posterior.n_images)
        probe[images] = rng.choice([-1.0, 1.0], size=images.size)
        solution = _preconditioned_cg(
            lambda x: problem.hessian_times(pair_curvature, x), probe, inverse_diagonal, 1e-3, 10 * config.max_cg_steps
        )
        estimates.append(_dot(probe, solution) / images.size)
    return float(np.mean(estimates))


class _Problem:
    """Validated comparisons and prior, with the negative log posterior and its derivatives."""

    def __init__(self, n_images, a_index, b_index, outcome, weight, prior_mean, prior_var, config: FitConfig):
        a_index = np.asarray(a_index, dtype=np.intp)
        b_index = np.asarray(b_index, dtype=np.intp)
        outcome = np.asarray(outcome, dtype=np.float64)
        if not (a_index.shape == b_index.shape == outcome.shape) or a_index.ndim != 1:
            raise ValueError("a_index, b_index and outcome must be [M] arrays of the same shape")
        if a_index.size and (min(a_index.min(), b_index.min()) < 0 or max(a_index.max(), b_index.max()) >= n_images):
            raise ValueError("comparison index out of range")
        if np.any((outcome < 0) | (outcome > 1)):
            raise ValueError("outcome must lie in [0, 1]")
        if np.any(a_index == b_index):
            raise ValueError("an image cannot be compared with itself")
        weight = np.ones_like(outcome) if weight is None else np.asarray(weight, dtype=np.float64)
        if weight.shape != outcome.shape or np.any(weight < 0):
            raise ValueError("weight must be [M] and non-negative")
        prior_var = config.default_prior_var if prior_var is None else prior_var
        prior_var = np.broadcast_to(np.asarray(prior_var, dtype=np.float64), (n_images,))
        if np.any(prior_var <= 0):
            raise ValueError("prior_var must be positive")
        self.n_images = n_images
        self.a_index, self.b_index, self.outcome, self.weight = a_index, b_index, outcome, weight
        self.prior_mean = np.broadcast_to(np.asarray(0.0 if prior_mean is None else prior_mean, dtype=np.float64), (n_images,))
        self.prior_precision = 1.0 / prior_var  # [N]

    def objective(self, s: np.ndarray) -> float:
        # -log posterior up to a constant; y*log(sig(d)) + (1-y)*log(sig(-d)) == log(sig(-d)) + y*d
        diff = s[self.a_index] - s[self.b_index]
        log_lik = _dot(self.weight, log_expit(-diff) + self.outcome * diff)
        return 0.5 * _dot(self.prior_precision, (s - self.prior_mean) ** 2) - log_lik

    def curvature(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Gradient [N] and per-comparison Hessian weights [M] at s."""
        win_prob = expit(s[self.a_index] - s[self.b_index])  # [M]
        residual = self.weight * (self.outcome - win_prob)  # [M]
        gradient = (
            self.prior_precision * (s - self.prior_mean)
            - np.bincount(self.a_index, residual, self.n_images)
            + np.bincount(self.b_index, residual, self.n_images)
        )
        return gradient, self.weight * win_prob * (1.0 - win_prob)

    def hessian_diagonal(self, pair_curvature: np.ndarray) -> np.ndarray:
        return (
            self.prior_precision
            + np.bincount(self.a_index, pair_curvature, self.n_images)
            + np.bincount(self.b_index, pair_curvature, self.n_images)
        )

    def hessian_times(self, pair_curvature: np.ndarray, x: np.ndarray) -> np.ndarray:
        """H x for the Hessian: prior precision plus the comparisons' weighted graph Laplacian."""
        flow = pair_curvature * (x[self.a_index] - x[self.b_index])  # [M]
        return (
            self.prior_precision * x
            + np.bincount(self.a_index, flow, self.n_images)
            - np.bincount(self.b_index, flow, self.n_images)
        )


def _dot(x: np.ndarray, y: np.ndarray) -> float:
    # einsum, not BLAS: OpenBLAS's worker threads spin after each call, which on a small busy machine
    # (a Celery worker beside the web server) made this loop several times slower.
    return float(np.einsum("i,i->", x, y))


def _preconditioned_cg(matvec, rhs: np.ndarray, inverse_diagonal: np.ndarray, rtol: float, max_steps: int) -> np.ndarray:
    """Solve A x = rhs for symmetric positive-definite A given as a product, Jacobi-preconditioned."""
    x = np.zeros_like(rhs)
    residual = rhs.copy()
    target = rtol * np.sqrt(_dot(rhs, rhs))
    if target == 0.0:
        return x
    z = inverse_diagonal * residual
    direction = z.copy()
    rz = _dot(residual, z)
    for _ in range(max_steps):
        a_direction = matvec(direction)
        curvature = _dot(direction, a_direction)
        if curvature <= 0.0:  # converged to round-off
            break
        alpha = rz / curvature
        x += alpha * direction
        residual -= alpha * a_direction
        if np.sqrt(_dot(residual, residual)) < target:
            break
        z = inverse_diagonal * residual
        rz_next = _dot(residual, z)
        direction = z + (rz_next / rz) * direction
        rz = rz_next
    return x


def map_model_to_bt_scale(
    model_mean: np.ndarray,
    model_std: np.ndarray | float | None,
    posterior: Posterior,
    counts: np.ndarray,
    mean_posterior_var: float | None = None,
    min_images: int = 10,
    max_prior_weight: float = 8.0,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Map the model's scores onto the Bradley–Terry scale, as a prior for :func:`fit_posterior`.

    The prior says ``s_i ~ N(intercept + slope * model_mean_i, slope**2 * model_std_i**2 + scatter)``.
    Returns ``(prior_mean [N], prior_var [N])``, or None when fewer than ``min_images`` images have
    been compared (``counts > 0``; no fit yet: keep the flat prior).

    This is one EM step for the prior's three parameters, on the compared images:

    * ``intercept`` and ``slope``: a regression of the posterior means on the model's scores,
      iteratively reweighted least squares with Huber weights (robust to the few images the model
      gets badly wrong) times each image's posterior precision;
    * ``scatter``: how far true scores stray from the mapped model, the robust variance of the
      residuals plus the mean posterior variance (a true score differs from its posterior mean by
      that much again), less the part the model's own uncertainty ``model_std`` already covers.

    Call it with the posterior fitted with the previous prior (the first time, with the flat prior)
    and refit; repeated at each refit, the map climbs the marginal likelihood. A flat-prior posterior
    has means shrunk towards zero, so the first slope is too small and later steps correct it. When
    a new model version arrives, its first map is fitted on means that carry the old model's prior,
    which costs some slope once; that is why the map must not be refitted against a model that
    changes at every refit.

    ``mean_posterior_var``: the mean marginal variance of the compared images, best from
    :func:`mean_posterior_variance`. By default the mean of ``posterior.var``, which is too small
    when images were compared mostly with their neighbours: the EM steps then shrink ``scatter``
    towards zero, the prior takes over and the comparisons stop counting.
    """
    model_mean = np.asarray(model_mean, dtype=np.float64)
    compared = np.flatnonzero(np.asarray(counts) > 0)
    if compared.size < min_images:
        return None
    x = model_mean[compared]
    y = posterior.mean[compared]
    precision = 1.0 / posterior.var[compared]
    robust_weight = np.ones_like(x)
    for _ in range(20):
        intercept, slope = _weighted_line(x, y, precision * robust_weight)
        residual = y - (intercept + slope * x)
        scale = 1.4826 * np.median(np.abs(residual - np.median(residual))) + 1e-12  # robust std
        next_weight = np.minimum(1.0, 1.345 * scale / np.maximum(np.abs(residual), 1e-12))  # Huber
        if np.allclose(next_weight, robust_weight, atol=1e-4):
            break
        robust_weight = next_weight
    model_var = np.broadcast_to(0.0 if model_std is None else np.asarray(model_std, dtype=np.float64) ** 2, model_mean.shape)
    if mean_posterior_var is None:
        mean_posterior_var = float(np.mean(posterior.var[compared]))
    scatter = scale**2 + mean_posterior_var - slope**2 * float(np.mean(model_var[compared]))
    # The model never counts for more than max_prior_weight even comparisons (each worth a precision
    # of 1/4): the humans must be able to overrule it, and the EM steps alone can talk themselves
    # into an ever tighter prior when most pairs are neighbours that the prior already orders.
    scatter = max(scatter, 4.0 / max_prior_weight)

    prior_mean = intercept + slope * model_mean
    prior_var = np.broadcast_to(slope**2 * model_var + scatter, model_mean.shape).astype(np.float64)
    return prior_mean, prior_var


def _weighted_line(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Weighted least-squares intercept and slope of y on x."""
    total = np.sum(w)
    x_mean, y_mean = np.sum(w * x) / total, np.sum(w * y) / total
    x_spread = np.sum(w * (x - x_mean) ** 2)
    slope = np.sum(w * (x - x_mean) * (y - y_mean)) / x_spread if x_spread > 0 else 0.0
    return float(y_mean - slope * x_mean), float(slope)
