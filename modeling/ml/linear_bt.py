"""A linear Bradley–Terry head over pooled image and tag features: the model that learns from few judgments.

    x = pooled_features(image_tokens, tag_tokens, tag_mask)     # [N,F]
    head = fit_linear_bt(x, a, b, outcome)                       # ridge chosen by cross-validation
    score = head.score(x)                                        # [N]
    prior = leave_one_image_out_scores(x, a, b, outcome)         # [N], each image without its own comparisons

Model. Image *i* scores ``s_i = w . z_i`` where ``z_i`` are its pooled features standardised over the
images; P(a preferred over b) = sigmoid(s_a - s_b); ties count half each way. The weights have a
Gaussian (ridge) prior ``w ~ N(0, I / ridge)``. With F pooled features (about 130 for ``quality-stats``,
about 1,500 for CLIP) and a few hundred comparisons, this learns where the cross-attention ranker
(``ranker.py``) still overfits; the ranker takes over as the data grow (the retrain picks by held-out
agreement, ``modeling/services/training_runs.py``).

Fit. The negative log posterior is convex; Newton's method on the F weights::

    s = Z w                                   # [N]
    r = w_k (y - sigmoid(s_a - s_b))          # [M]
    gradient = ridge w - Z^T (B^T r)          # B: [M,N] incidence, +1 at a, -1 at b
    Hessian  = ridge I + Z^T L Z              # L = B^T diag(c) B, c = w_k p (1 - p): a graph Laplacian

``L Z`` is one sparse product, so a step costs O(M F + N F^2 + F^3), never an M x F matrix.

Ridge. Chosen from ``LinearBTConfig.ridges`` by the evidence (MacKay): the Laplace approximation of
``log p(outcomes | ridge) = log-likelihood - ridge/2 |w|^2 + F/2 log ridge - 1/2 log det(Hessian)``, one fit
per candidate, each warm-started from the stronger ridge before it.

Leaving each image out. ``leave_one_image_out_scores`` scores image i with the head fitted on every
comparison except i's own, by one Newton step from the full fit (the influence of i's comparisons)::

    w_-i = w - H^-1 G_i,  G_i = sum over i's comparisons k of r_k (z_a - z_b)     # [F]
    s_-i = z_i . w_-i = s_i - u_i . G_i,  u_i = H^-1 z_i                           # one [N,F] solve for all

(with H_-i, the Hessian less i's own comparisons, by Woodbury: one small solve per image; one Newton
step from the full fit, so exact to second order in i's influence.) A comparison
(a, b) enters neither ``s_-a`` nor ``s_-b``, so it is held out from the prior of both its images, as with
cross-fitting; but each image's prior comes from a head that saw all the other comparisons, not about 81 %
of them, and it costs one fit instead of one per fold. Under active pair selection the difference is
large: the selected pairs are the ones the prior cannot tell apart, and a head that lost a fifth of them
ranks far worse (``docs/benchmarks.md``, "Campaign cost").

Cross-fitting. ``cross_fitted_scores`` splits the images into folds (a fixed function of the image, so
an image keeps its fold as data arrive); the images of fold k are scored by a head fitted on the
comparisons that touch no image of fold k. So an image's score never depends on its own comparisons,
and every comparison is held out from the heads that score its two images: the human-score fit may
weigh the prior by how well it predicts them (``prior_fusion.py``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import sparse
from scipy.special import expit, log_expit


@dataclass(frozen=True)
class LinearBTConfig:
    ridges: tuple[float, ...] = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0)  # candidate precisions of the weights
    cross_folds: int = 10  # image folds of the cross-fitted scores (a head sees about 81 % of the comparisons)
    max_newton_steps: int = 25
    tolerance: float = 1e-6  # largest weight change that ends the fit
    min_comparisons: int = 10  # fewer: no head (scores all zero)
    max_comparisons: int = 20_000  # more: a fixed random subset (the head saturates long before; bounds the time)


@dataclass
class LinearBT:
    """A fitted head: standardisation of the pooled features, the weights, the ridge it was fitted with."""

    center: np.ndarray  # [F]
    scale: np.ndarray  # [F], 0 where a feature is constant (its weight is 0)
    weight: np.ndarray  # [F], on the standardised features
    ridge: float
    n_comparisons: int = 0
    extra: dict = field(default_factory=dict)  # diagnostics (cross-validation log-likelihoods)

    def score(self, features: np.ndarray) -> np.ndarray:
        """[N,F] pooled features -> [N] scores on the Bradley–Terry scale."""
        return self.standardise(features) @ self.weight

    def standardise(self, features: np.ndarray) -> np.ndarray:
        safe = np.where(self.scale > 0, self.scale, 1.0)
        return np.where(self.scale > 0, (np.asarray(features, dtype=np.float64) - self.center) / safe, 0.0)

    def state(self) -> dict:
        """Plain lists and numbers, for a checkpoint."""
        return {"center": self.center.tolist(), "scale": self.scale.tolist(), "weight": self.weight.tolist(),
                "ridge": self.ridge, "n_comparisons": self.n_comparisons}

    @classmethod
    def from_state(cls, state: dict) -> "LinearBT":
        return cls(np.asarray(state["center"], dtype=np.float64), np.asarray(state["scale"], dtype=np.float64),
                   np.asarray(state["weight"], dtype=np.float64), float(state["ridge"]),
                   int(state.get("n_comparisons", 0)))


def pooled_features(image_tokens: np.ndarray, tag_tokens: np.ndarray, tag_mask: np.ndarray) -> np.ndarray:
    """[N,T,D] image tokens, [N,K,D] tag tokens, [N,K] mask -> [N,3D] float64: the whole-image token, the
    mean of the other tokens (the whole-image token again when T = 1) and the mean of the image's tags
    (zeros when it has none). ``linear_scorer.LinearScorer.pooled`` is the same in torch."""
    tokens = np.asarray(image_tokens, dtype=np.float32)
    first = tokens[:, 0]  # [N,D]
    rest = tokens[:, 1:].mean(axis=1) if tokens.shape[1] > 1 else first  # [N,D]
    tags = np.zeros_like(first)
    if tag_tokens.shape[1]:
        mask = np.asarray(tag_mask, dtype=np.float32)[..., None]  # [N,K,1]
        tags = (np.asarray(tag_tokens, dtype=np.float32) * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1.0)
    return np.concatenate([first, rest, tags], axis=1).astype(np.float64)


def standardisation(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    center = features.mean(axis=0)
    scale = features.std(axis=0)
    scale[scale < 1e-8] = 0.0
    return center, scale


def _laplacian(n: int, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> sparse.csr_matrix:
    """L = B^T diag(c) B for the comparisons (a, b) with weights c: [N,N] sparse."""
    rows = np.concatenate([a, b, a, b])
    cols = np.concatenate([a, b, b, a])
    values = np.concatenate([c, c, -c, -c])
    return sparse.csr_matrix((values, (rows, cols)), shape=(n, n))


def _fit_weights(z: np.ndarray, a: np.ndarray, b: np.ndarray, outcome: np.ndarray, weight: np.ndarray,
                 ridge: float, config: LinearBTConfig, init: np.ndarray | None = None
                 ) -> tuple[np.ndarray, float, np.ndarray]:
    """Newton's method for the MAP weights on standardised features z [N,F]; (weights [F], log evidence,
    Hessian [F,F] at the weights).

    The log evidence is the Laplace approximation of log p(outcomes | ridge), what the ridge is chosen by."""
    used, inverse = np.unique(np.concatenate([a, b]), return_inverse=True)  # only compared images matter
    z, a, b = z[used], inverse[: a.size], inverse[a.size:]
    n, f = z.shape
    w = np.zeros(f) if init is None else init.copy()
    for _ in range(config.max_newton_steps):
        s = z @ w  # [n]
        p = expit(s[a] - s[b])  # [M]
        r = weight * (outcome - p)
        node = np.bincount(a, r, n) - np.bincount(b, r, n)  # B^T r, [n]
        gradient = ridge * w - z.T @ node
        hessian = ridge * np.eye(f) + z.T @ (_laplacian(n, a, b, weight * p * (1 - p)) @ z)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.max(np.abs(step), initial=0.0) < config.tolerance:
            break
    s = z @ w
    d = s[a] - s[b]
    log_lik = float(np.sum(weight * (log_expit(-d) + outcome * d)))
    p = expit(d)
    hessian = ridge * np.eye(f) + z.T @ (_laplacian(n, a, b, weight * p * (1 - p)) @ z)
    log_det = np.linalg.slogdet(hessian)[1]
    evidence = log_lik - 0.5 * ridge * float(w @ w) + 0.5 * f * np.log(ridge) - 0.5 * log_det
    return w, float(evidence), hessian


def fit_linear_bt(features: np.ndarray, a: np.ndarray, b: np.ndarray, outcome: np.ndarray,
                  weight: np.ndarray | None = None, config: LinearBTConfig = LinearBTConfig(),
                  ridge: float | None = None) -> LinearBT:
    """The head fitted on all the comparisons; the ridge with the largest evidence unless given.

    features: [N,F]; a, b: [M] image indices; outcome: [M] 1 a won, 0 b won, 0.5 tie; weight: [M] >= 0.
    """
    return _fit_head(*_fit_inputs(features, a, b, outcome, weight, config), config, ridge)[0]


def _fit_inputs(features, a, b, outcome, weight, config: LinearBTConfig) -> tuple[np.ndarray, ...]:
    """The arrays as the fit takes them, the comparisons cut to ``config.max_comparisons`` (a fixed subset)."""
    features = np.asarray(features, dtype=np.float64)
    a, b = np.asarray(a, dtype=np.intp), np.asarray(b, dtype=np.intp)
    outcome = np.asarray(outcome, dtype=np.float64)
    weight = np.ones_like(outcome) if weight is None else np.asarray(weight, dtype=np.float64)
    if a.size > config.max_comparisons:
        keep = np.sort(np.random.default_rng(a.size).choice(a.size, config.max_comparisons, replace=False))
        a, b, outcome, weight = a[keep], b[keep], outcome[keep], weight[keep]
    return features, a, b, outcome, weight


def _fit_head(features: np.ndarray, a: np.ndarray, b: np.ndarray, outcome: np.ndarray, weight: np.ndarray,
              config: LinearBTConfig, ridge: float | None) -> tuple[LinearBT, np.ndarray | None]:
    """(the head, the Hessian [F',F'] over its live features at its weights; None with too few comparisons)."""
    center, scale = standardisation(features)
    head = LinearBT(center, scale, np.zeros(features.shape[1]), float(ridge or config.ridges[-1]), int(a.size))
    if a.size < config.min_comparisons:
        return head, None
    live = np.flatnonzero(scale > 0)  # constant features carry nothing: left out of the solve
    z = head.standardise(features)[:, live]
    ridges = (ridge,) if ridge is not None else tuple(sorted(config.ridges, reverse=True))
    best, w = None, None
    evidence = {}
    for candidate in ridges:  # strongest first, each warm-started from the previous
        w, evidence[candidate], hessian = _fit_weights(z, a, b, outcome, weight, candidate, config, init=w)
        if best is None or evidence[candidate] > evidence[best[0]]:
            best = (candidate, w, hessian)
    head.ridge = float(best[0])
    head.weight[live] = best[1]
    weight_var = np.zeros_like(head.weight)
    weight_var[live] = np.diag(np.linalg.inv(best[2]))
    head.extra["weight_var"] = weight_var
    head.extra["log_evidence"] = {str(k): round(v, 3) for k, v in evidence.items()}
    return head, best[2]


def image_folds(keys: np.ndarray, n_folds: int) -> np.ndarray:
    """[N] fold of each image from a stable integer key (its database id): the same fold at every refit."""
    keys = np.asarray(keys, dtype=np.uint64)
    mixed = (keys * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(33)  # Fibonacci hashing: ids spread evenly
    return (mixed % np.uint64(n_folds)).astype(np.int64)


def cross_fitted_scores(features: np.ndarray, a: np.ndarray, b: np.ndarray, outcome: np.ndarray, fold: np.ndarray,
                        weight: np.ndarray | None = None, config: LinearBTConfig = LinearBTConfig()) -> np.ndarray:
    """[N] out-of-fold scores: image i scored by a head fitted without any comparison that touches its fold.

    ``fold``: [N] the fold of each image (``image_folds``). Each head chooses its own ridge on its own
    training comparisons, so nothing of fold k's comparisons reaches fold k's scores.
    """
    features = np.asarray(features, dtype=np.float64)
    a, b = np.asarray(a, dtype=np.intp), np.asarray(b, dtype=np.intp)
    outcome = np.asarray(outcome, dtype=np.float64)
    weight = np.ones_like(outcome) if weight is None else np.asarray(weight, dtype=np.float64)
    scores = np.zeros(features.shape[0])
    for k in np.unique(fold):
        held = fold == k
        train = ~(held[a] | held[b])
        head = fit_linear_bt(features, a[train], b[train], outcome[train], weight[train], config)
        scores[held] = head.score(features[held])
    return scores


def leave_one_image_out_scores(features: np.ndarray, a: np.ndarray, b: np.ndarray, outcome: np.ndarray,
                               weight: np.ndarray | None = None, config: LinearBTConfig = LinearBTConfig()
                               ) -> tuple[np.ndarray, LinearBT]:
    """([N] image i's score by the head fitted without i's comparisons, the head fitted on all of them).

    See the module docstring. Images without comparisons keep the full head's score (nothing to leave out)."""
    features, a, b, outcome, weight = _fit_inputs(features, a, b, outcome, weight, config)  # the head's subset
    head, hessian = _fit_head(features, a, b, outcome, weight, config, None)  # hessian: [F',F'] at the weights
    live = np.flatnonzero(head.scale > 0)
    z = head.standardise(features)[:, live]  # [N,F']
    score = z @ head.weight[live]  # [N]
    if hessian is None or live.size == 0:
        return score, head
    p = expit(score[a] - score[b])  # [M]
    r = weight * (outcome - p)  # [M] each comparison's pull on the weights
    dz = z[a] - z[b]  # [M,F']
    u = np.linalg.solve(hessian, z.T).T  # [N,F'] u_i = H^-1 z_i (H symmetric)
    q = np.linalg.solve(hessian, dz.T).T  # [M,F'] H^-1 (z_a - z_b)
    curvature = weight * p * (1 - p)  # [M]
    # Image i's step uses H_-i = H - D_i^T C_i D_i, its own comparisons' curvature taken out (Woodbury):
    #   u_i . H_-i^-1 G_i = g_i^T (I - C_i P_i)^-1 r_i,  g_i = D_i u_i, P_i = D_i H^-1 D_i^T   [d_i] and [d_i,d_i]
    # With H alone a few per cent of the outcome would stay in the score; active pairs are near ties, so that
    # rest is large beside m_a - m_b, and the prior would seem to predict them too well.
    incident = np.concatenate([np.arange(a.size), np.arange(a.size)])  # [2M] comparison of each (image, comparison)
    image = np.concatenate([a, b])  # [2M]
    order = np.argsort(image, kind="stable")
    incident, image = incident[order], image[order]
    g = np.einsum("kf,kf->k", u[image], dz[incident])  # [2M]
    starts = np.flatnonzero(np.r_[True, image[1:] != image[:-1]])
    degree = np.diff(np.r_[starts, image.size])
    influence = np.zeros_like(score)  # [N] u_i . H_-i^-1 G_i
    once = starts[degree == 1]  # one comparison: (I - c P)^-1 is a division
    k = incident[once]
    influence[image[once]] = g[once] * r[k] / np.maximum(1.0 - curvature[k] * np.einsum("kf,kf->k", q[k], dz[k]), 1e-6)
    for first, count in zip(starts[degree > 1], degree[degree > 1]):
        k = incident[first:first + count]
        system = np.eye(count) - curvature[k][:, None] * (q[k] @ dz[k].T)  # I - C_i P_i
        influence[image[first]] = g[first:first + count] @ np.linalg.solve(system, r[k])
    return score - influence, head


def config_dict(config: LinearBTConfig) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()}
