"""Benchmark: the agreement report's human-agreement numbers at 10^7 comparisons, from the pair sample
(``modeling/ml/agreement_sample.py``) and, with ``--exact``, from every comparison; in this process, on the
synthetic arrays of ``dashboard.synthetic_judgments`` (no database; the human-score fit is not included:
``benchmarks/reliability_fit.py`` times it).

    .venv/bin/python benchmarks/agreement_sample.py [--exact] [--comparisons 10000000 --images 1000000]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_setup import REPO, memory_kib  # noqa: E402,F401  (puts the repository on sys.path)
from dashboard import synthetic_judgments  # noqa: E402

from modeling.ml.agreement_sample import SampleConfig, pair_sample  # noqa: E402
from modeling.ml.agreement_stats import group_pairs, inter_rater_agreement, latest_per_rater, value_counts  # noqa: E402


def human_agreement(a, b, outcome, rater) -> dict:
    pairs = group_pairs(a, b, outcome)
    latest = latest_per_rater(pairs.pair_index, rater)
    counts = value_counts(pairs.pair_index[latest], pairs.category[latest], pairs.n_pairs)
    return inter_rater_agreement(counts)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--comparisons", type=int, default=10_000_000)
    parser.add_argument("--exact", action="store_true", help="also every comparison (minutes at 10^7)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    j = synthetic_judgments(rng, rng.normal(size=args.images), args.comparisons, 200)
    a, b, rater = j["first"].astype(np.int64), j["second"].astype(np.int64), j["rater"].astype(np.int64)
    outcome = np.select([j["outcome"] == "a", j["outcome"] == "tie"], [1.0, 0.5], 0.0)
    del j
    rss = memory_kib("VmRSS")
    print(f"{args.comparisons:,} comparisons, {args.images:,} images; load {os.getloadavg()[0]:.1f}; "
          f"RSS {rss / 1024:.0f} MiB with the arrays", flush=True)
    started = time.perf_counter()
    keep, fraction = pair_sample(a, b, SampleConfig())
    drawn = time.perf_counter() - started
    sample = human_agreement(a[keep], b[keep], outcome[keep], rater[keep])
    print(f"sample: {np.count_nonzero(keep):,} comparisons ({fraction:.4f} of the pairs): draw {drawn:.1f} s, "
          f"agreement {time.perf_counter() - started - drawn:.1f} s; raw {sample['raw_agreement']}, "
          f"alpha {sample['alpha']}; peak RSS {memory_kib('VmHWM') / 1024:.0f} MiB; load {os.getloadavg()[0]:.1f}",
          flush=True)
    if args.exact:
        started = time.perf_counter()
        exact = human_agreement(a, b, outcome, rater)
        print(f"exact: {time.perf_counter() - started:.1f} s; raw {exact['raw_agreement']}, alpha {exact['alpha']}; "
              f"peak RSS {memory_kib('VmHWM') / 1024:.0f} MiB; load {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
