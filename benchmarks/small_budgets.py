"""Benchmark: pair selection at small budgets (0.5 to 3 judgments per image), simulated.

    .venv/bin/python benchmarks/small_budgets.py           # writes its section of docs/benchmarks.md
    .venv/bin/python benchmarks/small_budgets.py --quick   # fewer seeds, prints only

Two questions that the end-to-end campaigns (``benchmarks/active_learning_api.py``) cannot settle with
the seeds they can afford, asked of the same selection and fit code:

1. **What can any choice of pairs gain at 1 judgment per image?** At that budget an image is in two
   comparisons on average. Fixed designs are compared with random pairs, each fitted with the project's
   Bradley–Terry MAP fit (no model prior): every image in exactly two comparisons (one random cycle), and
   Swiss rounds (a random matching, then winners paired with winners and losers with losers, the most
   an adaptive choice can do with one refit between the two rounds).
2. **Does the refill cadence matter?** The served system chooses a batch (``RefillPolicy``: 200 pairs, an
   image in at most 2 of them, 10% exploration) and serves it by queue priority until the next refill.
   Before issue 13's last change a small project (a batch smaller than ``low_water``) was refilled at every
   check, a few judgments apart; now it is refilled once half the batch is judged. Simulated here as a
   refill every 5 judgments against every ``min(refit_every, ceil(batch / 2))`` judgments.

Rater: a Thurstone observer, P(a preferred) = Φ((q_a − q_b) / noise), q of unit variance. Sets: ``plain``
(q ~ N(0, 1)); ``levels`` (4 tied levels, as the demo ladder's distortion strengths are);
``content`` (70% of q's variance linear in 16 image features) with the model prior of
``benchmarks/active_learning.py``'s stand-in ranker, retrained as comparisons grow. Paired seeds: every
strategy of a seed gets the same images; reported as mean SRCC and the paired difference to random
(mean ± s.e.).
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse
import time

import numpy as np
from scipy.stats import spearmanr

from bench_setup import REPO  # and the repository on sys.path

from active_learning import (
    ComparisonLog,
    ImageSet,
    PosteriorFitter,
    SimulationConfig,
    judge,
    machine_description,
    make_image_set,
    random_pairs,
)
from bench_docs import replace_docs_section
from modeling.ml.bradley_terry import FitConfig, fit_posterior
from modeling.ml.selection import pair_information, select_pairs

SECTION = "## Pair selection at small budgets (simulated)"
BUDGETS = (0.5, 1.0, 2.0, 3.0)
STRATEGIES = ("random", "round_robin", "active")


# --- 1. Designs at 1 judgment per image --------------------------------------------------------------


def _fit_srcc(quality: np.ndarray, pairs: np.ndarray, outcome: np.ndarray) -> float:
    posterior = fit_posterior(quality.size, pairs[:, 0], pairs[:, 1], outcome, config=FitConfig(tolerance=1e-4))
    return float(spearmanr(posterior.mean, quality)[0])


def design_srcc(n_images: int, seed: int, noise: float) -> dict[str, float]:
    """SRCC of each design at N comparisons (1 judgment per image) on one latent set; N even."""
    rng = np.random.default_rng(seed)
    quality = rng.normal(size=n_images)
    out = {}
    pairs = random_pairs(n_images, n_images, rng)
    out["random pairs"] = _fit_srcc(quality, pairs, judge(quality, pairs, noise, rng))
    cycle = rng.permutation(n_images)
    pairs = np.column_stack([cycle, np.roll(cycle, 1)])
    out["every image twice (one random cycle)"] = _fit_srcc(quality, pairs, judge(quality, pairs, noise, rng))
    first_round = rng.permutation(n_images).reshape(-1, 2)
    first_outcome = judge(quality, first_round, noise, rng)
    winners = np.where(first_outcome == 1.0, first_round[:, 0], first_round[:, 1])
    losers = np.where(first_outcome == 1.0, first_round[:, 1], first_round[:, 0])
    second_round = np.vstack([rng.permutation(winners).reshape(-1, 2), rng.permutation(losers).reshape(-1, 2)])
    pairs = np.vstack([first_round, second_round])
    outcome = np.concatenate([first_outcome, judge(quality, second_round, noise, rng)])
    out["Swiss: random matching, then winners vs winners, losers vs losers"] = _fit_srcc(quality, pairs, outcome)
    return out


def designs_table(n_images: int, seeds: int, noises: tuple[float, ...]) -> str:
    lines = ["| design | " + " | ".join(f"noise {noise}: SRCC | Δ vs random" for noise in noises) + " |",
             "|---" * (1 + 2 * len(noises)) + "|"]
    rows: dict[str, list[str]] = {}
    for noise in noises:
        runs = [design_srcc(n_images, seed, noise) for seed in range(seeds)]
        base = np.array([run["random pairs"] for run in runs])
        for name in runs[0]:
            values = np.array([run[name] for run in runs])
            cells = [f"{values.mean():.3f}", "" if name == "random pairs" else _mean_se(values - base)]
            rows.setdefault(name, []).extend(cells)
    lines += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows.items()]
    return "\n".join(lines)


# --- 2. The served queue and its refill cadence -------------------------------------------------------


def latent_set(kind: str, n_images: int, seed: int) -> ImageSet:
    rng = np.random.default_rng(10_000 + seed)
    if kind == "plain":
        return make_image_set(n_images, rng)
    image_set = make_image_set(n_images, rng, content_share=0.7)
    if kind == "levels":  # 4 tied levels of equal size, standardised
        level = np.digitize(image_set.quality, np.quantile(image_set.quality, [0.25, 0.5, 0.75])).astype(float)
        return ImageSet(quality=(level - level.mean()) / level.std(), features=image_set.features)
    return image_set


def served_campaign(image_set: ImageSet, strategy: str, seed: int, cadence: str, with_prior: bool,
                    noise: float = 1.0, batch_size: int = 200, refit_every: int = 25) -> list[float]:
    """One campaign through a simulated pair queue; SRCC of the human scores at each budget."""
    rng = np.random.default_rng(seed)
    quality = image_set.quality
    n_images = quality.size
    fitter = PosteriorFitter(image_set, use_prior=with_prior, config=SimulationConfig())
    log = ComparisonLog(n_images)
    counts = np.zeros(n_images, dtype=np.int64)
    judged: set[tuple[int, int]] = set()
    posterior, total, srcc = fitter.current, 0, []
    for budget in BUDGETS:
        target = int(round(budget * n_images))
        while total < target:
            pairs = select_pairs(posterior if strategy == "active" else None, counts, batch_size, rng,
                                 strategy=strategy, exclude=judged or None, max_per_image=2, explore_share=0.1)
            if strategy == "active":  # the queue serves the largest expected information gain first
                pairs = pairs[np.argsort(-pair_information(posterior, pairs[:, 0], pairs[:, 1]), kind="stable")]
            served = 5 if cadence == "every check" else min(refit_every, (len(pairs) + 1) // 2)
            taken = pairs[: min(served, target - total)]
            log.add(taken, judge(quality, taken, noise, rng))
            np.add.at(counts, taken.ravel(), 1)
            judged.update(map(tuple, taken.tolist()))
            total += len(taken)
            if strategy == "active" or with_prior:
                posterior = fitter.fit(log)
        posterior = fitter.fit(log, em_steps=3)
        srcc.append(float(spearmanr(posterior.mean, quality)[0]))
    return srcc


def served_table(n_images: int, seeds: int, kinds: tuple[str, ...]) -> str:
    """Per set and strategy: SRCC with the refill once per half batch, its paired difference to random, and
    its paired difference to a refill at every check (the same seeds, images and rater)."""
    budgets = " | ".join(f"{b:g}/image" for b in BUDGETS)
    lines = [f"| set | strategy | {budgets} |", "|---|---|" + "---|" * len(BUDGETS)]
    for kind in kinds:
        with_prior = kind.endswith(" + model prior")
        runs = {(strategy, cadence): np.array([
            served_campaign(latent_set(kind.removesuffix(" + model prior"), n_images, seed), strategy, seed, cadence,
                            with_prior) for seed in range(seeds)])
            for strategy in STRATEGIES for cadence in ("every check", "half the batch")}
        for strategy in STRATEGIES:
            now, before = runs[(strategy, "half the batch")], runs[(strategy, "every check")]
            cells = []
            for k in range(len(BUDGETS)):
                cell = f"{now[:, k].mean():.3f}"
                if strategy != "random":
                    cell += f" (Δ random {_mean_se(now[:, k] - runs[('random', 'half the batch')][:, k])})"
                cells.append(cell + f"; vs every check {_mean_se(now[:, k] - before[:, k])}")
            lines.append(f"| {kind} | {strategy} | " + " | ".join(cells) + " |")
        print("\n".join(lines[-len(STRATEGIES):]), flush=True)
    return "\n".join(lines)


def _mean_se(values: np.ndarray) -> str:
    return f"{values.mean():+.3f} ± {values.std(ddof=1) / np.sqrt(values.size):.3f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few seeds; prints, writes nothing")
    parser.add_argument("--no-write", action="store_true", help="print the report, do not touch docs/")
    parser.add_argument("--images", type=int, default=48, help="N (even), as the end-to-end sets")
    args = parser.parse_args(argv)
    design_seeds, served_seeds = (40, 6) if args.quick else (400, 100)
    started = time.perf_counter()
    report = [
        f"Command: `.venv/bin/python benchmarks/small_budgets.py` ({time.strftime('%Y-%m-%d')}). "
        f"Machine: {machine_description()}. N = {args.images} images, as in the end-to-end campaigns.",
        f"### What any choice of pairs can gain at 1 judgment per image ({design_seeds} paired seeds)\n\n"
        "SRCC of the Bradley–Terry MAP fit (no model prior) after N comparisons, against q ~ N(0, 1):\n\n"
        + designs_table(args.images, design_seeds, (1.0, 0.5)),
    ]
    print(report[-1], flush=True)
    report.append(
        f"### The served queue: a refill at every check against one per half batch ({served_seeds} paired seeds)\n\n"
        "Raters' noise 1.0. Each cell: SRCC with a refill once per half batch (now); in brackets its paired "
        "difference to random with the same cadence; after the semicolon its paired difference to the same "
        "strategy refilled at every check (before), mean ± s.e.:\n\n"
        + served_table(args.images, served_seeds, ("plain", "levels", "levels + model prior", "content + model prior"))
    )
    report.append(f"Total time: {time.perf_counter() - started:.0f} s.")
    section = "\n\n".join(report)
    print("\n\n" + section)
    if not (args.quick or args.no_write):
        replace_docs_section(REPO / "docs" / "benchmarks.md", SECTION, section)
        print(f"wrote {REPO / 'docs' / 'benchmarks.md'}")


if __name__ == "__main__":
    main()
