"""Benchmark: human scores from a crowd with spammers, with and without the rater-reliability model.

    .venv/bin/python benchmarks/spam_tolerance.py           # writes its section of docs/benchmarks.md
    .venv/bin/python benchmarks/spam_tolerance.py --quick   # fewer seeds, prints only

A campaign: N images of latent quality q ~ N(0, 1), random pairs, B judgments per image (B * N
comparisons in all), shared out evenly among R raters. An honest rater is a Thurstone observer,
P(a preferred) = Phi((q_a - q_b) / noise) (``benchmarks/active_learning.py::judge``). In the spammed
campaign 20 % of the raters click at random and 5 % always choose the left image; pairs are shown in
random order, as the rating page does.

Each seed draws one image set, one pair list and one rater assignment, and judges it three ways
(paired seeds): all raters honest ("clean"), with the spammers ("spam"), and the spam campaign with the
spammers' judgments removed ("oracle": what a perfect spam filter could do). Each is fitted as the
project fits its human scores without a model prior: ``bradley_terry.fit_posterior`` unweighted, and
``rater_reliability.fit_rater_reliability`` (the default, ``TAGRANK_RATER_RELIABILITY``), both with
their default configurations as ``modeling/services/human_scores.py`` uses them. Reported: SRCC of
the fitted means with q, mean and paired differences (mean ± standard error over seeds).
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse
import time
from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr

from bench_setup import REPO  # and the repository on sys.path

from active_learning import judge, machine_description, random_pairs
from bench_docs import replace_docs_section
from modeling.ml.bradley_terry import fit_posterior
from modeling.ml.rater_reliability import fit_rater_reliability

SECTION = "## Spam tolerance: the rater-reliability fit (simulated)"
BUDGETS = (2.0, 4.0)


@dataclass(frozen=True)
class Campaign:
    n_images: int = 1000
    n_raters: int = 40
    random_share: float = 0.20
    left_share: float = 0.05
    noise: float = 1.0


def run_seed(seed: int, budget: float, campaign: Campaign) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    quality = rng.normal(size=campaign.n_images)
    n_comparisons = int(round(budget * campaign.n_images))
    pairs = random_pairs(campaign.n_images, n_comparisons, rng)
    rater = rng.permutation(np.arange(n_comparisons) % campaign.n_raters)  # [M] even shares
    honest = judge(quality, pairs, campaign.noise, rng)  # [M]
    n_random = int(round(campaign.random_share * campaign.n_raters))
    n_left = int(round(campaign.left_share * campaign.n_raters))
    spam_kind = np.zeros(campaign.n_raters, dtype=int)  # 0 honest, 1 random, 2 always left
    spam_kind[rng.permutation(campaign.n_raters)[: n_random + n_left]] = [1] * n_random + [2] * n_left
    kind = spam_kind[rater]  # [M]
    spammed = honest.copy()
    spammed[kind == 1] = (rng.random(np.count_nonzero(kind == 1)) < 0.5).astype(np.float64)
    spammed[kind == 2] = 1.0

    def srcc(mean):
        return float(spearmanr(mean, quality)[0])

    def fits(mask, outcome):
        a, b, y, r = pairs[mask, 0], pairs[mask, 1], outcome[mask], rater[mask]
        plain = fit_posterior(campaign.n_images, a, b, y)
        reliable = fit_rater_reliability(campaign.n_images, a, b, y, r)
        return srcc(plain.mean), srcc(reliable.posterior.mean), reliable

    everything = np.ones(n_comparisons, dtype=bool)
    out = {}
    out["clean_plain"], out["clean_reliability"], _ = fits(everything, honest)
    out["spam_plain"], out["spam_reliability"], reliability = fits(everything, spammed)
    out["oracle_plain"], _, _ = fits(kind == 0, spammed)
    eta = reliability.attentive  # rater ids are 0..R-1, so eta[r] is rater r's
    out["eta_honest"] = float(eta[spam_kind == 0].mean())
    out["eta_random"] = float(eta[spam_kind == 1].mean())
    out["eta_left"] = float(eta[spam_kind == 2].mean())
    return out


def fit_timing(n_images: int, n_comparisons: int, n_raters: int = 200) -> dict[str, float]:
    """Seconds of the unweighted fit and of the reliability fit, cold and refitted after 1 % new judgments
    with the scores warm-started from the last fit, as ``human_scores`` refits; "carried" also starts the
    raters' weights from the last fit (``previous=``, as the service does from the stored fit's)."""
    rng = np.random.default_rng(0)
    quality = rng.normal(size=n_images)
    pairs = random_pairs(n_images, n_comparisons, rng)
    a, b = pairs[:, 0], pairs[:, 1]
    outcome = judge(quality, pairs, 1.0, rng)
    rater = rng.integers(0, n_raters, n_comparisons)
    old = n_comparisons - n_comparisons // 100
    out = {}
    started = time.perf_counter()
    plain = fit_posterior(n_images, a[:old], b[:old], outcome[:old])
    out["plain_cold"] = time.perf_counter() - started
    started = time.perf_counter()
    fit_posterior(n_images, a, b, outcome, init=plain.mean)
    out["plain_refit"] = time.perf_counter() - started
    started = time.perf_counter()
    last = fit_rater_reliability(n_images, a[:old], b[:old], outcome[:old], rater[:old])
    out["reliability_cold"] = time.perf_counter() - started
    started = time.perf_counter()
    fit_rater_reliability(n_images, a, b, outcome, rater, init=last.posterior.mean)
    out["reliability_refit"] = time.perf_counter() - started
    started = time.perf_counter()
    fit_rater_reliability(n_images, a, b, outcome, rater, init=last.posterior.mean, previous=last.rater_weights())
    out["reliability_carried"] = time.perf_counter() - started
    return out


def mean_se(values) -> tuple[float, float]:
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(values.size)) if values.size > 1 else 0.0


def fmt(values, digits: int = 3) -> str:
    mean, se = mean_se(values)
    return f"{mean:.{digits}f} ± {se:.{digits}f}"


def report(results: dict[float, list[dict]], campaign: Campaign, seeds: int, seconds: float,
           timing: dict[tuple[int, int], dict[str, float]]) -> str:
    lines = [
        f"Command: `.venv/bin/python benchmarks/spam_tolerance.py` ({seeds} paired seeds per budget, "
        f"{seconds:.0f} s on {machine_description()}).",
        "",
        f"N = {campaign.n_images} images, random pairs, {campaign.n_raters} raters sharing the judgments evenly, "
        f"honest raters Thurstone with noise {campaign.noise}; spam campaign: {campaign.random_share:.0%} of the "
        f"raters random, {campaign.left_share:.0%} always left. No model prior. SRCC of the fitted means with the "
        "latent quality, mean ± s.e. over seeds; differences are paired (same images, pairs and honest judgments).",
        "",
        "| judgments / image | fit | clean | spam | oracle (spammers removed) | spam − clean | spam − oracle |",
        "|---|---|---|---|---|---|---|",
    ]
    for budget, rows in results.items():
        column = {key: [row[key] for row in rows] for key in rows[0]}
        oracle = column["oracle_plain"]
        for name, key in (("unweighted", "plain"), ("reliability (default)", "reliability")):
            spam, clean = np.array(column[f"spam_{key}"]), np.array(column[f"clean_{key}"])
            lines.append(
                f"| {budget:g} | {name} | {fmt(clean)} | {fmt(spam)} | {fmt(oracle)} | {fmt(spam - clean)} "
                f"| {fmt(spam - np.array(oracle))} |"
            )
    lines += ["", "The clean campaign through both fits (what the reliability model costs when nobody spams), "
              "and the fitted attentive probabilities (the raters' weights) in the spam campaign:", "",
              "| judgments / image | reliability − unweighted, clean | eta honest | eta random | eta always-left |",
              "|---|---|---|---|---|"]
    for budget, rows in results.items():
        column = {key: np.array([row[key] for row in rows]) for key in rows[0]}
        lines.append(
            f"| {budget:g} | {fmt(column['clean_reliability'] - column['clean_plain'], 4)} "
            f"| {fmt(column['eta_honest'], 2)} | {fmt(column['eta_random'], 2)} | {fmt(column['eta_left'], 2)} |"
        )
    lines += ["", "Reading: \"spam − clean\" compares with the same campaign had every rater been honest (the "
              "spammers' quarter of the budget judged honestly); \"spam − oracle\" with the spam campaign "
              "whose spammers' judgments were removed, the best any down-weighting can do. Why the model and its "
              "prior: `docs/active-learning.md`, \"Raters who click at random\"."]
    lines += ["", "Fit time (one run each, seconds, one thread; 200 raters, random pairs; \"refit\": after 1 % new "
              "judgments, scores warm-started from the last fit; \"weights carried\": the raters' weights too):", "",
              "| images | comparisons | unweighted, cold | unweighted, refit | reliability, cold | reliability, refit "
              "| reliability, refit, weights carried |",
              "|---|---|---|---|---|---|---|"]
    for (n_images, n_comparisons), seconds_of in timing.items():
        lines.append(f"| {n_images:,} | {n_comparisons:,} | {seconds_of['plain_cold']:.2f} | "
                     f"{seconds_of['plain_refit']:.2f} | {seconds_of['reliability_cold']:.2f} | "
                     f"{seconds_of['reliability_refit']:.2f} | {seconds_of['reliability_carried']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 seeds, print only")
    parser.add_argument("--seeds", type=int, default=24)
    args = parser.parse_args(argv)
    seeds = 4 if args.quick else args.seeds
    campaign = Campaign()
    started = time.perf_counter()
    results = {budget: [run_seed(seed, budget, campaign) for seed in range(seeds)] for budget in BUDGETS}
    seconds = time.perf_counter() - started
    sizes = ((10_000, 100_000),) if args.quick else ((10_000, 100_000), (100_000, 1_000_000))
    timing = {size: fit_timing(*size) for size in sizes}
    body = report(results, campaign, seeds, seconds, timing)
    print(body)
    if not args.quick:
        replace_docs_section(REPO / "docs" / "benchmarks.md", SECTION, body)


if __name__ == "__main__":
    main()
