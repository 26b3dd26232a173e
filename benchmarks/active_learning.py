"""Benchmark: active pair selection and the human-score fit, against simulated raters.

    .venv/bin/python benchmarks/active_learning.py          # full run, writes docs/ (~ see docs/benchmarks.md)
    .venv/bin/python benchmarks/active_learning.py --quick  # small run, prints only

Simulated rater: a Thurstone observer with unit noise on a known latent quality ``q ~ N(0, 1)``:
it prefers a over b with probability ``Phi(q_a - q_b)``. A budget of B comparisons per image means
``B * N`` comparisons in all (each image takes part in 2B on average); with this definition random
selection at N = 500 reproduces the reference in the issue (SRCC .58/.74/.87/.93/.97).

Data sets:
* ``plain``: latent quality independent of anything observable; N = 100, 1,000, 10,000.
* ``content``: latent quality partly a function of image features,
  ``q = sqrt(share) * z(X beta) + sqrt(1 - share) * noise`` with 16 Gaussian features, standing in for
  images whose content predicts their quality (the demo distortion ladder is not run here).
  The model prior comes from a stand-in ranker: a linear Bradley–Terry model on the features trained
  on the comparisons with the pairwise loss (as the project's ranker is), retrained as comparisons
  arrive; its prediction and epistemic std are mapped onto the Bradley–Terry scale by
  ``map_model_to_bt_scale``.

Strategies: ``random``, ``round_robin`` (fewest comparisons first), ``active`` (BT posterior only),
``active_prior`` (with the model prior) and, on the content set, ``random_prior`` (random pairs, the
same model prior) to separate what the prior gives from what the selection gives. The comparisons
arrive in batches (``batch_size``); the adaptive strategies refit the posterior, warm-started, before
choosing each batch. Metrics at each budget: SRCC of the posterior means against the true quality, and
accuracy on held-out pairs judged by the same observer (whose ceiling, the true scores' accuracy on
those judgments, is reported too). Mean over seeds, with the standard deviation.

Also measured: the time to select a batch of 100 pairs at N = 10^3 ... 10^6 (one core), and the fit
time for 10^5 images and 10^6 comparisons, cold and warm-started.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")  # one core, as the targets say

import argparse
import pickle
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.special import expit, log_expit, ndtr
from scipy.stats import spearmanr

from bench_setup import REPO  # and the repository on sys.path

from modeling.ml.bradley_terry import (
    FitConfig,
    Posterior,
    comparison_counts,
    fit_posterior,
    map_model_to_bt_scale,
    mean_posterior_variance,
)
from bench_docs import replace_docs_section
from modeling.ml.selection import SelectionConfig, select_pairs

STRATEGY_LABELS = {
    "random": "random",
    "round_robin": "round-robin (fewest comparisons)",
    "active": "active, BT only",
    "active_prior": "active + model prior",
    "random_prior": "random + model prior",
}


@dataclass(frozen=True)
class SimulationConfig:
    budgets: tuple[float, ...] = (1, 2, 5, 10, 20)  # comparisons per image (B * N in all)
    observer_noise: float = 1.0  # Thurstone noise on the quality difference
    batch_fraction: float = 0.05  # batch of pairs between refits, as a share of N
    min_batch: int = 5
    max_batch: int = 500
    heldout_pairs: int = 5000
    explore_share: float = 0.1
    max_per_image: int = 2
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    fit: FitConfig = field(default_factory=lambda: FitConfig(tolerance=1e-4))
    ranker_penalty: float = 1.0  # L2 penalty of the stand-in ranker
    trace_probes: int = 4  # Hutchinson probes for the mean posterior variance (see mean_posterior_variance)
    retrain_growth: float = 1.25  # retrain the stand-in ranker once the comparisons grew by this factor
    checkpoint_em_steps: int = 10  # EM steps of the prior's map when fitting only at the budget checkpoints

    def batch_size(self, n_images: int) -> int:
        return int(np.clip(round(self.batch_fraction * n_images), self.min_batch, self.max_batch))


@dataclass(frozen=True)
class ImageSet:
    quality: np.ndarray  # [N] latent quality
    features: np.ndarray | None  # [N, D], or None where content says nothing


def make_image_set(n_images: int, rng: np.random.Generator, content_share: float | None = None, n_features: int = 16):
    """Latent quality ~ N(0, 1); with content_share, that share of its variance is linear in the features."""
    if content_share is None:
        return ImageSet(quality=rng.normal(size=n_images), features=None)
    features = rng.normal(size=(n_images, n_features))
    content = features @ rng.normal(size=n_features)
    content = (content - content.mean()) / content.std()
    quality = np.sqrt(content_share) * content + np.sqrt(1.0 - content_share) * rng.normal(size=n_images)
    return ImageSet(quality=quality, features=features)


def judge(quality: np.ndarray, pairs: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Thurstone observer: 1.0 if the first image of the pair is preferred, else 0.0; [K]."""
    win_prob = ndtr((quality[pairs[:, 0]] - quality[pairs[:, 1]]) / noise)
    return (rng.random(pairs.shape[0]) < win_prob).astype(np.float64)


def random_pairs(n_images: int, n_pairs: int, rng: np.random.Generator) -> np.ndarray:
    first = rng.integers(0, n_images, size=n_pairs)
    second = (first + rng.integers(1, n_images, size=n_pairs)) % n_images  # never a self-pair
    return np.column_stack([first, second])


def linear_ranker(features, first, second, outcome, penalty: float, init: np.ndarray | None = None):
    """The stand-in ranker: a linear Bradley–Terry model on the image features, trained on the comparisons
    with the pairwise loss, as the project's ranker is. Returns (weights [D], covariance [D, D]) of its
    Laplace posterior. Damped Newton; einsum rather than BLAS (see ``bradley_terry._dot``)."""
    feature_diff = features[first] - features[second]  # [M, D]
    weights = np.zeros(features.shape[1]) if init is None else init.copy()

    def loss(w):
        logit = np.einsum("md,d->m", feature_diff, w)
        return 0.5 * penalty * np.einsum("d,d->", w, w) - np.einsum("m->", log_expit(-logit) + outcome * logit)

    for _ in range(50):
        win_prob = expit(np.einsum("md,d->m", feature_diff, weights))  # [M]
        gradient = np.einsum("md,m->d", feature_diff, win_prob - outcome) + penalty * weights
        hessian = np.einsum("md,m,me->de", feature_diff, win_prob * (1.0 - win_prob), feature_diff)
        hessian += penalty * np.eye(weights.size)
        step = np.linalg.solve(hessian, gradient)
        current, step_size = loss(weights), 1.0
        while loss(weights - step_size * step) > current and step_size > 1e-4:
            step_size *= 0.5
        weights = weights - step_size * step
        if step_size * np.max(np.abs(step)) < 1e-6:
            break
    return weights, np.linalg.inv(hessian)


@dataclass
class ComparisonLog:
    """The comparisons collected so far, in growable arrays."""

    n_images: int
    first: list = field(default_factory=list)
    second: list = field(default_factory=list)
    outcome: list = field(default_factory=list)

    def add(self, pairs: np.ndarray, outcome: np.ndarray) -> None:
        self.first.append(pairs[:, 0])
        self.second.append(pairs[:, 1])
        self.outcome.append(outcome)

    def arrays(self):
        if not self.first:
            empty = np.empty(0, dtype=np.intp)
            return empty, empty, np.empty(0)
        return np.concatenate(self.first), np.concatenate(self.second), np.concatenate(self.outcome)


class PosteriorFitter:
    """Warm-started posterior fits, with or without the model prior.

    With the prior: the stand-in ranker is retrained whenever the comparisons have grown by
    ``retrain_growth`` (a new model version); at every fit, the map from its scale onto the
    Bradley–Terry scale takes one EM step on the previous posterior (``em_steps`` at the checkpoints of
    the non-adaptive strategies, which fit only there), then the posterior is refitted with the prior.
    """

    def __init__(self, image_set: ImageSet, use_prior: bool, config: SimulationConfig) -> None:
        self.image_set = image_set
        self.use_prior = use_prior
        self.config = config
        n_images = image_set.quality.shape[0]
        self.bt_only = Posterior(np.zeros(n_images), np.full(n_images, config.fit.default_prior_var))
        self.combined: Posterior | None = None  # the last fit with the model prior
        self.prior_var: np.ndarray | None = None  # the prior it was fitted with
        self.ranker_weights = None
        self.trained_on = 0  # comparisons the current model version was trained on
        self.rng = np.random.default_rng(0)  # trace probes

    @property
    def current(self) -> Posterior:
        return self.bt_only if self.combined is None else self.combined

    def fit(self, comparisons: ComparisonLog, em_steps: int = 1) -> Posterior:
        first, second, outcome = comparisons.arrays()
        n_images = comparisons.n_images
        if not self.use_prior or self.combined is None:
            self.bt_only = fit_posterior(n_images, first, second, outcome, init=self.bt_only.mean, config=self.config.fit)
        if not self.use_prior:
            return self.bt_only
        counts = comparison_counts(n_images, first, second)
        features = self.image_set.features
        if first.size >= self.config.retrain_growth * self.trained_on:
            # A new model version, as the retraining trigger would make one: after enough new comparisons.
            self.ranker_weights, covariance = linear_ranker(
                features, first, second, outcome, self.config.ranker_penalty, init=self.ranker_weights
            )
            self.trained_on = first.size
            self.model_mean = np.einsum("nd,d->n", features, self.ranker_weights)  # [N], the ranker's own scale
            self.model_std = np.sqrt(np.einsum("nd,de,ne->n", features, covariance, features))  # epistemic
        prediction, model_std = self.model_mean, self.model_std
        for _ in range(em_steps):
            previous, previous_prior_var = (
                (self.bt_only, None) if self.combined is None else (self.combined, self.prior_var)
            )
            compared = np.flatnonzero(counts)
            spread = mean_posterior_variance(
                previous, compared, first, second, outcome, prior_var=previous_prior_var,
                n_probes=self.config.trace_probes, rng=self.rng, config=self.config.fit,
            )  # fmt: skip
            prior = map_model_to_bt_scale(prediction, model_std, previous, counts, mean_posterior_var=spread)
            if prior is None:
                return self.bt_only
            self.prior_var = prior[1]
            self.combined = fit_posterior(
                n_images, first, second, outcome, prior_mean=prior[0], prior_var=prior[1],
                init=previous.mean, config=self.config.fit,
            )  # fmt: skip
        return self.combined


def simulate(image_set: ImageSet, strategy: str, seed: int, config: SimulationConfig) -> dict[float, dict[str, float]]:
    """Run one strategy up to the largest budget; metrics at each budget: {budget: {srcc, accuracy, ceiling}}."""
    rng = np.random.default_rng(seed)
    quality = image_set.quality
    n_images = quality.shape[0]
    heldout = random_pairs(n_images, config.heldout_pairs, rng)
    heldout_outcome = judge(quality, heldout, config.observer_noise, rng)

    selection_strategy = strategy.removesuffix("_prior")
    adaptive = selection_strategy == "active"
    fitter = PosteriorFitter(image_set, use_prior=strategy.endswith("_prior"), config=config)
    comparisons = ComparisonLog(n_images)
    counts = np.zeros(n_images, dtype=np.int64)
    posterior = fitter.current
    total = 0
    results = {}
    batch_size = config.batch_size(n_images)
    for budget in sorted(config.budgets):
        target = int(round(budget * n_images))
        while total < target:
            n_pairs = min(batch_size, target - total)
            pairs = select_pairs(
                posterior if adaptive else None, counts, n_pairs, rng, strategy=selection_strategy,
                max_per_image=config.max_per_image, explore_share=config.explore_share, config=config.selection,
            )  # fmt: skip
            comparisons.add(pairs, judge(quality, pairs, config.observer_noise, rng))
            np.add.at(counts, pairs.ravel(), 1)
            total += pairs.shape[0]
            if adaptive:
                posterior = fitter.fit(comparisons)
        if not adaptive:
            posterior = fitter.fit(comparisons, em_steps=config.checkpoint_em_steps)
        results[budget] = evaluate(posterior.mean, quality, heldout, heldout_outcome)
    return results


def evaluate(scores: np.ndarray, quality: np.ndarray, heldout: np.ndarray, heldout_outcome: np.ndarray) -> dict:
    def accuracy(values: np.ndarray) -> float:
        diff = values[heldout[:, 0]] - values[heldout[:, 1]]
        agree = np.where(diff == 0, 0.5, (diff > 0) == (heldout_outcome == 1.0))  # a tie scores half
        return float(np.mean(agree))

    return {
        "srcc": float(spearmanr(scores, quality)[0]),
        "accuracy": accuracy(scores),
        "ceiling": accuracy(quality),
    }


@dataclass
class StrategyResult:
    strategy: str
    srcc: np.ndarray  # [seeds, budgets]
    accuracy: np.ndarray  # [seeds, budgets]
    ceiling: np.ndarray  # [seeds, budgets]
    seconds: float


def compare_strategies(
    n_images: int, strategies: list[str], seeds: list[int], config: SimulationConfig, content_share: float | None = None
) -> list[StrategyResult]:
    """Every strategy on the same image sets and held-out pairs (one set per seed)."""
    budgets = sorted(config.budgets)
    out = []
    for strategy in strategies:
        srcc, accuracy, ceiling = [], [], []
        start = time.perf_counter()
        for seed in seeds:
            image_set = make_image_set(n_images, np.random.default_rng(10_000 + seed), content_share)
            metrics = simulate(image_set, strategy, seed, config)
            srcc.append([metrics[b]["srcc"] for b in budgets])
            accuracy.append([metrics[b]["accuracy"] for b in budgets])
            ceiling.append([metrics[b]["ceiling"] for b in budgets])
        out.append(
            StrategyResult(strategy, np.array(srcc), np.array(accuracy), np.array(ceiling), time.perf_counter() - start)
        )
    return out


def budget_to_reach(srcc_mean: np.ndarray, budgets: list[float], level: float) -> float | None:
    """Comparisons per image to reach `level`, linearly interpolated on the budget grid; None if never."""
    if srcc_mean[0] >= level:
        return float(budgets[0])  # reached at the smallest budget measured (an upper bound)
    for k in range(1, len(budgets)):
        if srcc_mean[k] >= level:
            low, high = srcc_mean[k - 1], srcc_mean[k]
            return float(budgets[k - 1] + (level - low) / (high - low) * (budgets[k] - budgets[k - 1]))
    return None


def synthetic_posterior(n_images: int, rng: np.random.Generator) -> tuple[Posterior, np.ndarray]:
    """A posterior and counts that look like a project midway: some images never compared."""
    counts = rng.poisson(6.0, size=n_images)
    counts[rng.random(n_images) < 0.1] = 0
    mean = rng.normal(scale=1.5, size=n_images) * (counts > 0)
    return Posterior(mean=mean, var=1.0 / (1.0 + 0.2 * counts)), counts


def selection_latency(n_images: int, repeats: int, n_pairs: int = 100, n_excluded: int = 1000) -> dict[str, float]:
    """Median seconds to choose a batch of n_pairs, per strategy, with n_excluded excluded pairs."""
    rng = np.random.default_rng(1)
    posterior, counts = synthetic_posterior(n_images, rng)
    excluded = {tuple(pair) for pair in random_pairs(n_images, n_excluded, rng).tolist()}
    out = {}
    for strategy in ("active", "random", "round_robin"):
        times = []
        for repeat in range(repeats + 1):
            start = time.perf_counter()
            pairs = select_pairs(posterior, counts, n_pairs, np.random.default_rng(repeat), strategy, exclude=excluded)
            times.append(time.perf_counter() - start)
            assert pairs.shape == (n_pairs, 2)
        out[strategy] = float(np.median(times[1:]))  # the first call warms caches
    return out


def request_time_selection(n_images: int, repeats: int) -> dict[str, float]:
    """Design (b) of docs/active-learning.md, in isolation: per request, read a cached posterior (mean, var
    and counts, pickled as a cache would hold them) and choose one pair past the cold start. Median and
    99th-percentile seconds of the whole step, and of the selection alone."""
    rng = np.random.default_rng(2)
    posterior, counts = synthetic_posterior(n_images, rng)
    counts = counts + 4  # past the cold start: the information-driven path
    cached = pickle.dumps((posterior.mean, posterior.var, counts), protocol=pickle.HIGHEST_PROTOCOL)
    whole, selection = [], []
    for repeat in range(repeats + 1):
        start = time.perf_counter()
        mean, var, loaded_counts = pickle.loads(cached)
        loaded = Posterior(mean=mean, var=var)
        picked = time.perf_counter()
        pairs = select_pairs(loaded, loaded_counts, 1, np.random.default_rng(repeat), "active")
        done = time.perf_counter()
        assert pairs.shape == (1, 2)
        whole.append(done - start)
        selection.append(done - picked)
    whole, selection = np.array(whole[1:]), np.array(selection[1:])  # the first call warms caches
    return {"median": float(np.median(whole)), "p99": float(np.percentile(whole, 99)),
            "selection_median": float(np.median(selection)), "bytes": len(cached)}


def fit_timing(n_images: int, n_comparisons: int, n_new: int = 1000) -> dict[str, float]:
    """Cold fit, then a warm-started refit after n_new more comparisons (random pairs)."""
    rng = np.random.default_rng(2)
    quality = rng.normal(size=n_images)
    pairs = random_pairs(n_images, n_comparisons + n_new, rng)
    outcome = judge(quality, pairs, 1.0, rng)
    first, second = pairs[:, 0], pairs[:, 1]
    start = time.perf_counter()
    cold = fit_posterior(n_images, first[:n_comparisons], second[:n_comparisons], outcome[:n_comparisons])
    cold_seconds = time.perf_counter() - start
    start = time.perf_counter()
    warm = fit_posterior(n_images, first, second, outcome, init=cold.mean)
    warm_seconds = time.perf_counter() - start
    return {
        "cold_s": cold_seconds,
        "cold_steps": cold.newton_steps,
        "warm_s": warm_seconds,
        "warm_steps": warm.newton_steps,
        "srcc": float(spearmanr(warm.mean, quality)[0]),
    }


def map_fit_check(seed: int = 0, n_images: int = 500, budget: int = 20) -> dict[str, float]:
    """On adaptively collected data (active selection), the Newton fit against scipy's L-BFGS to convergence."""
    from scipy.optimize import minimize
    from scipy.special import expit, log_expit

    config = SimulationConfig(budgets=(budget,))
    image_set = make_image_set(n_images, np.random.default_rng(seed))
    rng = np.random.default_rng(seed)
    fitter = PosteriorFitter(image_set, use_prior=False, config=config)
    comparisons = ComparisonLog(n_images)
    counts = np.zeros(n_images, dtype=np.int64)
    posterior = fitter.current
    while counts.sum() < 2 * budget * n_images:
        pairs = select_pairs(posterior, counts, config.batch_size(n_images), rng, "active")
        comparisons.add(pairs, judge(image_set.quality, pairs, 1.0, rng))
        np.add.at(counts, pairs.ravel(), 1)
        posterior = fitter.fit(comparisons)
    first, second, outcome = comparisons.arrays()

    start = time.perf_counter()
    newton = fit_posterior(n_images, first, second, outcome)
    newton_seconds = time.perf_counter() - start

    def objective(s):
        diff = s[first] - s[second]
        residual = outcome - expit(diff)
        gradient = s - np.bincount(first, residual, n_images) + np.bincount(second, residual, n_images)
        return 0.5 * s @ s - np.sum(log_expit(-diff) + outcome * diff), gradient

    start = time.perf_counter()
    reference = minimize(objective, np.zeros(n_images), jac=True, method="L-BFGS-B",
                         options={"maxiter": 20_000, "gtol": 1e-10, "ftol": 1e-15}).x  # fmt: skip
    lbfgs_seconds = time.perf_counter() - start
    return {
        "newton_s": newton_seconds,
        "lbfgs_s": lbfgs_seconds,
        "max_abs_diff": float(np.max(np.abs(newton.mean - reference))),
        "srcc_newton": float(spearmanr(newton.mean, image_set.quality)[0]),
        "srcc_lbfgs": float(spearmanr(reference, image_set.quality)[0]),
    }


# ---------------------------------------------------------------------------------------------- report


def _fmt_budget(b: float) -> str:
    return f"{b:g}"


def srcc_table(results: list[StrategyResult], budgets: list[float], metric: str = "srcc") -> str:
    lines = [
        "| strategy | " + " | ".join(_fmt_budget(b) for b in budgets) + " |",
        "|---|" + "---|" * len(budgets),
    ]
    for result in results:
        values = getattr(result, metric)
        cells = [f"{m:.3f} ± {s:.3f}" for m, s in zip(values.mean(0), values.std(0))]
        lines.append(f"| {STRATEGY_LABELS[result.strategy]} | " + " | ".join(cells) + " |")
    if metric == "accuracy":
        ceiling = results[0].ceiling.mean(0)
        lines.append("| *true scores (ceiling)* | " + " | ".join(f"{c:.3f}" for c in ceiling) + " |")
    return "\n".join(lines)


def plot_srcc(panels: list[tuple[str, list[StrategyResult]]], budgets: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for axis, (title, results) in zip(axes[0], panels):
        for result in results:
            mean, std = result.srcc.mean(0), result.srcc.std(0)
            axis.errorbar(budgets, mean, yerr=std, marker="o", capsize=3, label=STRATEGY_LABELS[result.strategy])
        axis.set_xscale("log")
        axis.set_xticks(budgets, [_fmt_budget(b) for b in budgets])
        axis.set_xlabel("comparisons per image")
        axis.set_ylabel("SRCC vs true quality")
        axis.set_title(title)
        axis.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8, loc="lower right")  # the last panel has every strategy
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_latency(latency: dict[int, dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(latency)
    fig, axis = plt.subplots(figsize=(4.8, 3.6))
    for strategy in ("active", "random", "round_robin"):
        axis.plot(sizes, [1000 * latency[n][strategy] for n in sizes], marker="o", label=STRATEGY_LABELS[strategy])
    axis.axhline(100, color="grey", ls="--", lw=1)
    axis.axhline(1000, color="grey", ls=":", lw=1)
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("images (N)")
    axis.set_ylabel("ms per batch of 100 pairs")
    axis.set_title("Selection latency, one core")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import scipy

    return (
        f"{cpu}, {os.cpu_count()} cores (selection and fits pinned to one thread), "
        f"Python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes and few seeds; prints, writes nothing")
    parser.add_argument("--no-write", action="store_true", help="print the report, do not touch docs/")
    parser.add_argument("--request-time", action="store_true",
                        help="only time design (b), choosing a pair at request time from a cached posterior; prints")
    api = parser.add_argument_group("end to end through the REST API of a running demo (benchmarks/active_learning_api.py)")
    api.add_argument("--via-api", metavar="URL", help="e.g. http://127.0.0.1:8000 (a server started by `make demo`)")
    api.add_argument("--slug", default="demo-photos")
    api.add_argument("--strategy", choices=["active", "random", "round_robin"],
                     help="set the project's strategy first (default: keep it)")
    api.add_argument("--budgets", type=float, nargs="+", default=[0.5, 1, 2, 3])
    api.add_argument("--noise", type=float, default=1.0, help="Thurstone noise, in distortion-strength units")
    api.add_argument("--seed", type=int, default=0)
    api.add_argument("--pause", type=float, default=0.0, help="seconds between judgments")
    args = parser.parse_args(argv)
    if args.via_api:
        sys.exit("--via-api was replaced by benchmarks/active_learning_api.py, which starts its own server, "
                 "worker and beat and runs paired campaigns for every strategy.")

    if args.request_time:
        for n_images in (10_000, 100_000, 1_000_000):
            row = request_time_selection(n_images, repeats=200 if n_images < 1_000_000 else 40)
            print(f"N = {n_images:>9,}: median {1000 * row['median']:.1f} ms, p99 {1000 * row['p99']:.1f} ms "
                  f"(selection alone {1000 * row['selection_median']:.1f} ms; cached posterior "
                  f"{row['bytes'] / 2**20:.1f} MiB)", flush=True)
        return

    config = SimulationConfig()
    budgets = sorted(config.budgets)
    plain_sizes = [(100, 5), (500, 3)] if args.quick else [(100, 30), (1000, 10), (10_000, 3)]  # (N, seeds)
    content_size, content_seeds = (300, 3) if args.quick else (1000, 10)
    latency_sizes = [1_000, 10_000, 100_000] + ([] if args.quick else [1_000_000])
    fit_size = (10_000, 100_000) if args.quick else (100_000, 1_000_000)
    write = not (args.quick or args.no_write)
    started = time.perf_counter()
    load_at_start = os.getloadavg()[0]
    report = []

    report.append(
        "Command: `.venv/bin/python benchmarks/active_learning.py`"
        + (" --quick" if args.quick else "")
        + f" ({time.strftime('%Y-%m-%d')}).  \nMachine: {machine_description()}."
    )
    report.append(
        "Simulated rater: Thurstone observer with unit noise, P(a preferred) = Φ(q_a − q_b), true quality "
        "q ~ N(0, 1). A budget of B comparisons per image is B·N comparisons in all. Pairs arrive in batches "
        f"of {config.batch_fraction:.0%} of N (at least {config.min_batch}, at most {config.max_batch}); "
        "the active strategies refit the posterior (warm-started) before each batch. Selection: "
        f"score `{config.selection.score}`, explore share {config.explore_share}, at most "
        f"{config.max_per_image} pairs per image in a batch. SRCC against the true quality, mean ± std over seeds."
    )

    panels = []
    for n_images, n_seeds in plain_sizes:
        strategies = ["random", "round_robin", "active"]
        results = compare_strategies(n_images, strategies, list(range(n_seeds)), config)
        panels.append((f"N = {n_images:,}", results))
        gains = results[2].srcc.mean(0) - results[0].srcc.mean(0)
        report.append(f"### Plain synthetic set, N = {n_images:,} ({n_seeds} seeds, batch {config.batch_size(n_images)})")
        report.append("SRCC by comparisons per image:\n\n" + srcc_table(results, budgets))
        report.append("Held-out pairwise accuracy (5,000 held-out judgments by the same observer):\n\n"
                      + srcc_table(results, budgets, "accuracy"))  # fmt: skip
        report.append(
            "Active − random, SRCC: " + ", ".join(f"{_fmt_budget(b)}: {g:+.3f}" for b, g in zip(budgets, gains))
            + ". Time per seed: " + ", ".join(f"{r.strategy} {r.seconds / n_seeds:.1f} s" for r in results) + "."
        )  # fmt: skip
        print("\n\n".join(report[-3:]), flush=True)

    content_share = 0.7
    strategies = ["random", "round_robin", "active", "random_prior", "active_prior"]
    content = compare_strategies(content_size, strategies, list(range(content_seeds)), config, content_share)
    panels.append((f"content-predictable, N = {content_size:,}", content))
    reach = {r.strategy: budget_to_reach(r.srcc.mean(0), budgets, 0.90) for r in content}
    report.append(f"### Content-predictable synthetic set, N = {content_size:,} ({content_seeds} seeds)")
    report.append(
        f"Latent quality = √{content_share} × (linear function of 16 image features) + √{1 - content_share:.1f} × "
        "independent noise: content alone can reach SRCC ≈ √0.7 ≈ .84. The model prior comes from a stand-in ranker, "
        "a linear Bradley–Terry model on the features trained on the comparisons with the pairwise loss, retrained "
        f"whenever the comparisons grew by {config.retrain_growth - 1:.0%}; its scores are mapped onto the BT scale "
        "by `map_model_to_bt_scale` (one EM step per refit, the mean posterior variance by Hutchinson's estimator, "
        "the model never worth more than 8 comparisons)."
    )
    report.append("SRCC by comparisons per image:\n\n" + srcc_table(content, budgets))
    report.append("Held-out pairwise accuracy:\n\n" + srcc_table(content, budgets, "accuracy"))
    reach_text = ", ".join(
        f"{STRATEGY_LABELS[s]} {'not reached' if v is None else ('≤ ' if v == budgets[0] else '') + f'{v:.1f}'}"
        for s, v in reach.items()
    )
    report.append(
        "Comparisons per image to reach SRCC 0.90 (interpolated on the budget grid): " + reach_text + "."
        + ("" if reach["random"] is None or reach["active_prior"] is None
           else f" Active + model prior needs {reach['active_prior'] / reach['random']:.2f}× what random needs.")
    )  # fmt: skip
    print("\n\n".join(report[-4:]), flush=True)

    latency = {}
    for n_images in latency_sizes:
        latency[n_images] = selection_latency(n_images, repeats=5 if n_images >= 1_000_000 else 15)
        print(n_images, latency[n_images], flush=True)
    lines = ["| N | active | random | round-robin |", "|---|---|---|---|"]
    for n_images in latency_sizes:
        row = latency[n_images]
        lines.append(
            f"| {n_images:,} | {1000 * row['active']:.1f} ms | {1000 * row['random']:.1f} ms | "
            f"{1000 * row['round_robin']:.1f} ms |"
        )
    report.append("### Selection latency\n\nMedian time to choose a batch of 100 pairs (1,000 excluded pairs given "
                  "as a Python set), one thread; the posterior is given (it is refitted once per batch, below).\n\n"
                  + "\n".join(lines))  # fmt: skip

    n_fit_images, n_fit_comparisons = fit_size
    fit = fit_timing(n_fit_images, n_fit_comparisons)
    check = map_fit_check()
    report.append(
        f"### Fit time\n\nBradley–Terry MAP posterior (Newton–CG, Gaussian prior, diagonal Laplace variances), "
        f"{n_fit_images:,} images, {n_fit_comparisons:,} random comparisons, one thread: "
        f"**{fit['cold_s']:.2f} s** cold ({fit['cold_steps']} Newton steps); warm-started refit after 1,000 more "
        f"comparisons **{fit['warm_s']:.2f} s** ({fit['warm_steps']} steps); SRCC {fit['srcc']:.3f}.\n\n"
        f"Check against a plain MAP fit on adaptively collected data (N = 500, 20 comparisons per image, chosen by "
        f"`active`): Newton {check['newton_s'] * 1000:.0f} ms, SRCC {check['srcc_newton']:.3f}; scipy L-BFGS run to "
        f"convergence {check['lbfgs_s'] * 1000:.0f} ms, SRCC {check['srcc_lbfgs']:.3f}; largest difference in a score "
        f"{check['max_abs_diff']:.1e}."
    )
    print(report[-1], flush=True)

    figure_dir = REPO / "docs" / "img"
    srcc_plot = figure_dir / "active_srcc.png"
    latency_plot = figure_dir / "active_latency.png"
    if write:
        figure_dir.mkdir(parents=True, exist_ok=True)
        plot_srcc(panels, budgets, srcc_plot)
        plot_latency(latency, latency_plot)
        report.append("![SRCC versus comparisons per image](img/active_srcc.png)\n"
                      "![Selection latency](img/active_latency.png)")  # fmt: skip
    report.append(
        f"Total benchmark time: {time.perf_counter() - started:.0f} s. Load average (1 min) at the start "
        f"{load_at_start:.1f}, at the end {os.getloadavg()[0]:.1f}, on 2 cores shared with other work: "
        "the timings are upper bounds."
    )
    section = "\n\n".join(report)
    if write:
        replace_docs_section(REPO / "docs" / "benchmarks.md", "## Active pair selection and the human-score fit", section)
        print(f"wrote {REPO / 'docs' / 'benchmarks.md'}, {srcc_plot}, {latency_plot}")
    else:
        print("\n\n" + section)


if __name__ == "__main__":
    main()
