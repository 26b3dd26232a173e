"""Benchmark: the rater-reliability EM (``modeling/ml/rater_reliability.py``) on synthetic arrays, this code
against an earlier revision, in one process.

    .venv/bin/python benchmarks/reliability_fit.py --before b823037                  # 10^6 images, 10^7
    .venv/bin/python benchmarks/reliability_fit.py --before b823037 --images 100000 --comparisons 1000000

The comparisons are ``dashboard.synthetic_judgments`` (200 raters, a Thurstone observer, a third of the
pairs judged by three raters, 10 careless raters who always pick the left image), the arrays that
``benchmarks/scale_run.py`` writes to PostgreSQL. The timed fit is a refit as the human-score task runs
it: the scores warm-started from the fit of all but the last ``--appended`` comparisons (that fit is
set-up, untimed). Each revision's ``modeling/ml`` is imported in turn (``--before`` from ``git archive``)
and fits the same arrays; the largest differences between the two fits are printed beside the times.

``--rounds R --carried`` times R refits in a row, each after ``--appended`` more comparisons and started from
the last fit's raters' weights as the human-score task starts (``human_score_writes.stored_rater_weights``).
``--newcomers K`` makes the appended comparisons as ``scale_run.py`` appends them: random winners, by the
history's raters and K raters new to the project.

    .venv/bin/python benchmarks/reliability_fit.py --before HEAD --images 100000 --comparisons 1000000 \
        --appended 1000 --rounds 4 --carried --newcomers 10
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")  # before numpy is imported

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_setup import REPO, revision_tree  # noqa: E402  (needs this folder on sys.path)
from dashboard import synthetic_judgments  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--comparisons", type=int, default=10_000_000)
    parser.add_argument("--raters", type=int, default=200)
    parser.add_argument("--appended", type=int, default=10_000, help="comparisons new since the warm start's fit")
    parser.add_argument("--before", help="a git revision to time beside this working tree")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=1, help="refits in a row, each after --appended more")
    parser.add_argument("--carried", action="store_true", help="each refit starts from the last fit's weights")
    parser.add_argument("--newcomers", type=int, default=None,
                        help="appended comparisons: random winners, by the raters and this many new ones")
    return parser.parse_args()


def arrays(args) -> dict:
    rng = np.random.default_rng(args.seed)
    judgments = synthetic_judgments(rng, rng.normal(size=args.images), args.comparisons, args.raters)
    outcome = np.select([judgments["outcome"] == "a", judgments["outcome"] == "tie"], [1.0, 0.5], 0.0)
    data = {"a_index": judgments["first"].astype(np.int64), "b_index": judgments["second"].astype(np.int64),
            "outcome": outcome, "rater_id": judgments["rater"].astype(np.int64) + 1}
    if args.newcomers is not None:  # as scale_run.append_comparisons writes them
        new = slice(args.comparisons - args.appended * args.rounds, None)
        count = args.appended * args.rounds
        data["outcome"][new] = rng.integers(0, 2, count).astype(np.float64)
        data["rater_id"][new] = rng.integers(1, args.raters + args.newcomers + 1, count)
    return data


def reliability_module(root: Path):
    """``modeling.ml.rater_reliability`` imported from ``root`` (a fresh import: modules of another root are dropped)."""
    for name in [name for name in sys.modules if name == "modeling" or name.startswith("modeling.")]:
        del sys.modules[name]
    sys.path.insert(0, str(root))
    try:
        from modeling.ml import rater_reliability
    finally:
        sys.path.remove(str(root))
    return rater_reliability


def main():
    args = parse_args()
    started = time.perf_counter()
    data = arrays(args)
    n = args.images
    print(f"{args.comparisons:,} comparisons of {n:,} images by {args.raters} raters "
          f"(generated in {time.perf_counter() - started:.0f} s); load {os.getloadavg()[0]:.1f}", flush=True)
    current = reliability_module(REPO)
    history = args.comparisons - args.appended * args.rounds
    started = time.perf_counter()
    setup = current.fit_rater_reliability(n, *(column[:history] for column in data.values()))
    print(f"set-up: the fit of the first {history:,} comparisons, {time.perf_counter() - started:.1f} s", flush=True)

    before = revision_tree(args.before, ("modeling/__init__.py", "modeling/ml")) if args.before else None
    try:
        roots = [("this tree", REPO)] + ([(args.before, before)] if before else [])
        fits = {}
        print("| code | refit | seconds | EM steps | Newton steps | load |")
        for label, root in reversed(roots):
            module = reliability_module(root)
            last = setup
            for round_ in range(1, args.rounds + 1):
                seen = slice(0, history + round_ * args.appended)
                carried = {"previous": last.rater_weights()} if args.carried else {}
                started = time.perf_counter()
                last = module.fit_rater_reliability(n, **{name: column[seen] for name, column in data.items()},
                                                    init=last.posterior.mean, **carried)
                seconds = time.perf_counter() - started
                print(f"| {label} | {round_} | {seconds:.1f} s | {last.steps} | {last.posterior.newton_steps} | "
                      f"{os.getloadavg()[0]:.1f} |", flush=True)
            fits[label] = last
    finally:
        if before:
            shutil.rmtree(before, ignore_errors=True)
    if len(fits) == 2:
        new, old = fits["this tree"], fits[args.before]
        print("largest differences: " + ", ".join(
            f"{name} {np.max(np.abs(getattr(new, field) - getattr(old, field))):.1e}"
            for name, field in (("eta", "attentive"), ("weight", "weight"), ("left share", "careless_left"))
        ) + f", score mean {np.max(np.abs(new.posterior.mean - old.posterior.mean)):.1e}"
            f", score variance {np.max(np.abs(new.posterior.var - old.posterior.var)):.1e}")


if __name__ == "__main__":
    main()
