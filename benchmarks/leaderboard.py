"""Benchmark: the generator leaderboard on simulated campaigns with generators of known strength.

    .venv/bin/python benchmarks/leaderboard.py            # 200 campaigns per budget (a few minutes)
    .venv/bin/python benchmarks/leaderboard.py --quick    # 40 campaigns, prints only

A campaign: ``--generators`` generators (6) of known strength, evenly spaced ``--spacing`` (0.4) apart on the
Bradley–Terry log-odds scale, centred; ``--prompts`` prompts (60), each rendered once by every generator. The
quality of an image is its generator's strength plus the prompt's difficulty (shared by all of the prompt's
images, so it cancels within a prompt) plus an image effect ``N(0, image_sd^2)`` (the luck of one sample).
Judgments are made within prompts (the project's comparison groups): each judgment takes a prompt at random
and two of its images at random, and a simulated rater prefers image a with probability
``sigmoid(quality_a - quality_b)``. The leaderboard is the project's own code
(``modeling.ml.leaderboard.build_leaderboard``, 1,000 bootstrap replicates over prompts, 95 % intervals).

Measured per budget (judgments per prompt), over ``--campaigns`` campaigns (200), each with its own seed:
Kendall's tau between the estimated and the true order of the generators (mean ± s.e.), the share of
campaigns with the exact order, and the coverage of the 95 % intervals: of every pairwise difference of
ratings (15 per campaign at 6 generators), of every generator's centred rating, and of the adjacent
differences only. With an image effect the value-level Bradley–Terry rating is the strength shrunk a little
(a logistic of a noisy difference is flatter); ``image_sd = 0`` is the model exactly, 0.3 a realistic spread.
"""
from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import json
import platform
import time
from itertools import combinations
from pathlib import Path

import numpy as np
from scipy.special import expit
from scipy.stats import kendalltau

from bench_setup import benchmark_parser  # and the repository on sys.path

from modeling.ml.leaderboard import LeaderboardConfig, build_leaderboard


def parse_args(argv=None):
    parser = benchmark_parser(__doc__)
    parser.add_argument("--generators", type=int, default=6)
    parser.add_argument("--prompts", type=int, default=60)
    parser.add_argument("--spacing", type=float, default=0.4)
    parser.add_argument("--budgets", default="5,10,20,40", help="judgments per prompt")
    parser.add_argument("--image-sd", default="0,0.3", help="image effects to run (comma-separated)")
    parser.add_argument("--campaigns", type=int, default=200)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args(argv)


def simulate_campaign(strength, n_prompts, per_prompt, image_sd, rng):
    """Judgments within prompts: (generator a, generator b, outcome, prompt), each [M]."""
    n_generators = strength.size
    difficulty = rng.normal(0.0, 1.0, size=(n_prompts, 1))  # [P, 1] cancels within a prompt
    quality = strength[None, :] + difficulty + rng.normal(0.0, image_sd, size=(n_prompts, n_generators))  # [P, G]
    m = n_prompts * per_prompt
    prompt = rng.integers(0, n_prompts, size=m)  # [M]
    first = rng.integers(0, n_generators, size=m)
    second = (first + rng.integers(1, n_generators, size=m)) % n_generators  # a different generator
    p = expit(quality[prompt, first] - quality[prompt, second])
    outcome = (rng.random(m) < p).astype(np.float64)
    return first, second, outcome, prompt


def run_budget(args, per_prompt: int, image_sd: float) -> dict:
    strength = args.spacing * (np.arange(args.generators)[::-1] - (args.generators - 1) / 2.0)  # [G] centred
    pairs = list(combinations(range(args.generators), 2))
    adjacent = [(i, i + 1) for i in range(args.generators - 1)]
    config = LeaderboardConfig(n_bootstrap=args.bootstrap)
    taus, exact, covered_pairs, covered_ratings, covered_adjacent, widths = [], [], [], [], [], []
    started = time.perf_counter()
    for campaign in range(args.campaigns):
        rng = np.random.default_rng(10_000 * per_prompt + campaign)
        a, b, y, prompt = simulate_campaign(strength, args.prompts, per_prompt, image_sd, rng)
        board = build_leaderboard(a, b, y, args.generators, prompt,
                                  LeaderboardConfig(n_bootstrap=config.n_bootstrap, seed=campaign))
        taus.append(kendalltau(board.rating, strength).statistic)
        exact.append(bool(np.all(np.argsort(-board.rating) == np.arange(args.generators))))
        for i, j in pairs:
            _, low, high = board.difference_interval(i, j)
            truth = strength[i] - strength[j]
            covered_pairs.append(low <= truth <= high)
            if (i, j) in adjacent:
                covered_adjacent.append(low <= truth <= high)
                widths.append(high - low)
        covered_ratings.extend((board.rating_low <= strength) & (strength <= board.rating_high))
    taus = np.array(taus)
    return {
        "judgments_per_prompt": per_prompt, "judgments": per_prompt * args.prompts, "image_sd": image_sd,
        "campaigns": args.campaigns, "tau_mean": round(float(taus.mean()), 4),
        "tau_se": round(float(taus.std(ddof=1) / np.sqrt(taus.size)), 4),
        "exact_order_share": round(float(np.mean(exact)), 3),
        "coverage_pairwise_differences": round(float(np.mean(covered_pairs)), 4),
        "coverage_adjacent_differences": round(float(np.mean(covered_adjacent)), 4),
        "coverage_centred_ratings": round(float(np.mean(covered_ratings)), 4),
        "mean_width_adjacent": round(float(np.mean(widths)), 3),
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(argv=None):
    args = parse_args(argv)
    if args.quick:
        args.campaigns, args.bootstrap = 40, 300
    results = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "generators": args.generators, "prompts": args.prompts, "spacing": args.spacing,
        "bootstrap": args.bootstrap, "runs": [],
    }
    for image_sd in [float(v) for v in args.image_sd.split(",")]:
        for per_prompt in [int(v) for v in args.budgets.split(",")]:
            run = run_budget(args, per_prompt, image_sd)
            results["runs"].append(run)
            print(json.dumps(run), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
