"""Benchmark: comparison groups. Every served pair shares its group, under every strategy; and what active
selection within groups gains over random selection within groups.

    .venv/bin/python benchmarks/comparison_groups.py            # both parts (a few minutes)
    .venv/bin/python benchmarks/comparison_groups.py --quick    # fewer judgments and seeds

Part 1, served pairs (the running code: ``next_pair``, ``submit_comparison`` and the refill task's
``refill_pair_queue`` on a scratch SQLite database under var/bench/). A project grouped by ``prompt_id``:
``--prompts`` prompts (40) with four images each (one per "generator"), five images alone in their prompt and
five without the key. For each source, a fresh project; three raters ask for pairs in turn and judge them,
and the queue is refilled after every 15 judgments (as the submit path would): ``cold start`` (no refill:
the fallback only), ``random``, ``round_robin``, ``active`` and ``gold`` (active, gold rate 0.3, with half
of the gold pairs across prompts). Reported: pairs served, the share whose two images share the prompt, and
whether a lone or keyless image was ever served.

Part 2, active against random within groups (plain numpy, the project's selection and fit code):
``--groups`` groups (100) of six images, latent quality ``N(0, 1)``, a Thurstone observer with unit noise;
batches of 5 % of the images, refitted in between (as in ``benchmarks/active_learning.py``). The comparison
graph has no edge across groups, so the measure is within groups: the share of all within-group pairs that
the posterior means order as the true quality does. Paired seeds (the same images and observer seed for both
strategies); mean ± s.e. and the paired difference ± s.e.
"""
from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import io
import json
import platform
import random
import shutil
import time
from pathlib import Path

import numpy as np
from scipy.special import ndtr

from bench_setup import REPO, benchmark_parser  # and the repository on sys.path

from modeling.ml.bradley_terry import FitConfig, comparison_counts, fit_posterior
from modeling.ml.selection import select_pairs

SOURCES = ("cold start", "random", "round_robin", "active", "gold")


def parse_args(argv=None):
    parser = benchmark_parser(__doc__)
    parser.add_argument("--prompts", type=int, default=40)
    parser.add_argument("--judgments", type=int, default=300, help="per source in part 1")
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--group-size", type=int, default=6)
    parser.add_argument("--budgets", default="1,2,4", help="judgments per image in part 2")
    parser.add_argument("--seeds", type=int, default=12)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    return parser.parse_args(argv)


# --- Part 1: served pairs -------------------------------------------------------------------------------


def png(seed: int) -> bytes:
    from PIL import Image as PILImage

    pixels = np.random.default_rng(seed).integers(0, 255, size=(16, 16, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    PILImage.fromarray(pixels, mode="RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def served_pairs(args) -> list[dict]:
    work = REPO / "var" / "bench" / "comparison_groups"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    from bench_setup import scratch_environment, start_django

    start_django(f"sqlite:///{work / 'db.sqlite3'}", **scratch_environment(work))
    from django.contrib.auth import get_user_model

    from labeling.models import GoldPair, Membership, Project
    from labeling.services.comparisons import submit_comparison
    from labeling.services.imports import store_image
    from labeling.services.pair_serving import next_pair
    from modeling.services.pair_selection import RefillPolicy, refill_pair_queue

    policy = RefillPolicy(batch_size=40, low_water=10, refit_every=15, max_per_image=2, explore_share=0.1)
    results = []
    for number, source in enumerate(SOURCES):
        strategy = {"cold start": "active", "gold": "active"}.get(source, source)
        project = Project.objects.create(name=source, slug=f"groups-{number}", group_key="prompt_id",
                                         pair_strategy=strategy, gold_rate=0.3 if source == "gold" else 0.0)
        images = []
        for prompt in range(args.prompts):
            for generator in range(4):
                images.append(store_image(project, f"{prompt}-{generator}.png", png(1000 * number + 4 * prompt + generator),
                                          metadata={"prompt_id": f"p{prompt}", "generator": f"g{generator}"})[0])
        never = set()
        for index in range(5):
            never.add(store_image(project, f"alone-{index}.png", png(900_000 + 100 * number + index),
                                  metadata={"prompt_id": f"alone{index}"})[0].pk)
            never.add(store_image(project, f"keyless-{index}.png", png(950_000 + 100 * number + index),
                                  metadata={"generator": "g0"})[0].pk)
        if source == "gold":
            for prompt in range(0, args.prompts, 2):
                GoldPair.objects.create(project=project, image_a=images[4 * prompt], image_b=images[4 * prompt + 1],
                                        expected="a")
                GoldPair.objects.create(project=project, image_a=images[4 * prompt], image_b=images[4 * prompt + 5],
                                        expected="a")  # across prompts: never served
        prompt_of = {image.pk: image.metadata["prompt_id"] for image in images}
        raters = []
        for index in range(3):
            user, _ = get_user_model().objects.get_or_create(username=f"groups-rater-{index}")
            Membership.objects.create(project=project, user=user)
            raters.append(user)
        rng = random.Random(number)
        served = same = touched_never = judged = gold_served = 0
        started = time.perf_counter()
        while judged < args.judgments:
            if source != "cold start" and judged % 15 == 0:
                refill_pair_queue(project, seed=judged, policy=policy)
            result = next_pair(project, raters[judged % 3], rng=rng)
            if result is None:
                break
            _, lease = result
            served += 1
            same += prompt_of.get(lease.image_a_id) is not None and prompt_of.get(lease.image_a_id) == prompt_of.get(lease.image_b_id)
            touched_never += bool({lease.image_a_id, lease.image_b_id} & never)
            gold_served += lease.gold_id is not None
            submit_comparison(project, raters[judged % 3], lease=lease.token, winner=rng.choice("ab"),
                              client_key=str(lease.token))
            judged += 1
        run = {"source": source, "served": served, "same_group": same,
               "share_same_group": round(same / served, 4) if served else None,
               "lone_or_keyless_served": touched_never, "gold_served": gold_served, "seconds": round(time.perf_counter() - started, 1)}
        print(json.dumps(run), flush=True)
        results.append(run)
    return results


# --- Part 2: active against random within groups ----------------------------------------------------------


def within_group_accuracy(mean: np.ndarray, quality: np.ndarray, groups: np.ndarray) -> float:
    order = np.argsort(groups, kind="stable")
    right = total = 0
    for group in np.unique(groups):
        members = order[groups[order] == group]
        first, second = np.triu_indices(members.size, k=1)
        a, b = members[first], members[second]
        right += int(np.sum(np.sign(mean[a] - mean[b]) == np.sign(quality[a] - quality[b])))
        total += a.size
    return right / total


def simulate_groups(strategy: str, seed: int, args, budgets: list[float]) -> dict[float, float]:
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(args.groups), args.group_size)
    n = groups.size
    quality = rng.normal(size=n)
    judge_rng = np.random.default_rng(seed + 1)
    select_rng = np.random.default_rng(seed + 2)
    a_log, b_log, y_log = [], [], []
    counts = np.zeros(n, dtype=np.int64)
    fit_config = FitConfig(tolerance=1e-4)
    posterior = fit_posterior(n, np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0), config=fit_config)
    batch = max(5, int(round(0.05 * n)))
    total, results = 0, {}
    for budget in budgets:
        target = int(round(budget * n))
        while total < target:
            pairs = select_pairs(posterior if strategy == "active" else None, counts, min(batch, target - total),
                                 select_rng, strategy=strategy, groups=groups, max_per_image=2, explore_share=0.1)
            if len(pairs) == 0:
                break
            outcome = (judge_rng.random(len(pairs)) < ndtr(quality[pairs[:, 0]] - quality[pairs[:, 1]])).astype(float)
            a_log.append(pairs[:, 0]), b_log.append(pairs[:, 1]), y_log.append(outcome)
            np.add.at(counts, pairs.ravel(), 1)
            total += len(pairs)
            a, b, y = np.concatenate(a_log), np.concatenate(b_log), np.concatenate(y_log)
            posterior = fit_posterior(n, a, b, y, init=posterior.mean, config=fit_config)
        assert np.all(comparison_counts(n, np.concatenate(a_log), np.concatenate(b_log)) == counts)
        results[budget] = within_group_accuracy(posterior.mean, quality, groups)
    return results


def active_against_random(args) -> list[dict]:
    budgets = [float(value) for value in args.budgets.split(",")]
    per_strategy = {strategy: [simulate_groups(strategy, 100 + seed, args, budgets) for seed in range(args.seeds)]
                    for strategy in ("random", "active")}
    rows = []
    for budget in budgets:
        random_acc = np.array([run[budget] for run in per_strategy["random"]])
        active_acc = np.array([run[budget] for run in per_strategy["active"]])
        difference = active_acc - random_acc
        se = lambda values: float(values.std(ddof=1) / np.sqrt(values.size))  # noqa: E731
        row = {"judgments_per_image": budget, "seeds": args.seeds,
               "random": round(float(random_acc.mean()), 4), "random_se": round(se(random_acc), 4),
               "active": round(float(active_acc.mean()), 4), "active_se": round(se(active_acc), 4),
               "difference": round(float(difference.mean()), 4), "difference_se": round(se(difference), 4)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def main(argv=None):
    args = parse_args(argv)
    if args.quick:
        args.judgments, args.seeds, args.prompts = 60, 3, 12
    results = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
               "served": served_pairs(args), "active_against_random": active_against_random(args)}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
