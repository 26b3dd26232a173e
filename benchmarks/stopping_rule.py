"""Benchmark: is the stopping rule's expected SRCC calibrated? Predicted against measured, per budget.

    .venv/bin/python benchmarks/stopping_rule.py           # writes its section of docs/benchmarks.md
    .venv/bin/python benchmarks/stopping_rule.py --quick   # fewer seeds, prints only

Through the project's own code on a scratch SQLite database: for every (setting, seed, budget) a project
with ``--images`` images of a known latent quality ``q ~ N(0, 1)``; random pairs judged in turn by three
raters, each the same Thurstone observer (a judgment sees ``q + N(0, noise²)`` per image); then ``human_scores.fit_human_scores`` (the
task's body: the fit, the stored scores, the stored ``RankingAccuracy``). Measured: the SRCC between the
stored human-score means and ``q``. Predicted: the stored expected SRCC. The settings:

- ``flat``: no model, the comparisons-only fit;
- ``model prior``: an active model version whose scores correlate 0.7 with ``q`` (Gaussian noise), so the
  fit uses the model prior exactly as in a running project;
- each at the project default (raters weighted by their fitted reliability, ``modeling/ml/rater_reliability.py``)
  and with that weighting off (``Project.weight_raters_by_reliability``);
- ``Bradley–Terry raters``: the observer of the fit's own model, P(left) = sigmoid(q_left − q_right), on the
  scale of its flat prior N(0, 1): where the posterior is right, the estimate must be too.

Paired seeds: a seed's images, truth and comparison sequence are the same at every budget (a budget
takes the first judgments of the sequence). Reported per budget: mean predicted, mean measured, the mean
of (predicted − measured) ± its standard error over seeds, and how often the measured SRCC fell inside
the 5–95 % interval. The goal (issue 25): |predicted − measured| ≤ 0.05 at every budget.
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.special import expit
from scipy.stats import spearmanr

from bench_setup import REPO, scratch_environment, start_django

BUDGETS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)  # judgments per image
# (name, a model prior?, the raters' reliability weighting: the project default is on, the observer)
SETTINGS = (("flat", False, True, "thurstone"), ("flat, raters not weighted", False, False, "thurstone"),
            ("model prior", True, True, "thurstone"), ("model prior, raters not weighted", True, False, "thurstone"),
            ("flat, raters not weighted, Bradley–Terry raters", False, False, "bradley-terry"))
HEADING = "## Stopping rule: predicted against measured SRCC"


def make_project(name: str, n_images: int):
    from labeling.models import Image, Project

    project = Project.objects.create(name=name, slug=name)
    Image.objects.bulk_create([
        Image(project=project, file=f"images/{project.pk}/{i}.png", original_name=f"{i}.png",
              sha256=f"{project.pk:08x}{i:056x}", width=64, height=48)
        for i in range(n_images)
    ], batch_size=2000)  # fmt: skip
    return project, np.array(Image.objects.filter(project=project).order_by("id").values_list("id", flat=True))


def add_judgments(project, image_ids, pairs, winners_left, raters) -> None:
    from labeling.models import Comparison

    Comparison.objects.bulk_create([
        Comparison(project=project, rater=raters[k % len(raters)], image_a_id=int(image_ids[i]), image_b_id=int(image_ids[j]),
                   outcome=Comparison.Outcome.A if left else Comparison.Outcome.B,
                   client_key=f"{project.pk}-{k}")
        for k, ((i, j), left) in enumerate(zip(pairs, winners_left))
    ], batch_size=2000)  # fmt: skip


def add_model(project, image_ids, scores) -> None:
    from modeling.models import ImageScore, ModelVersion

    version = ModelVersion.objects.create(project=project, encoder_id="synthetic", is_active=True,
                                          status=ModelVersion.Status.ACTIVE)
    ImageScore.objects.bulk_create([
        ImageScore(model_version=version, image_id=int(image_id), mean=float(score), distribution=[0.1] * 10,
                   uncertainty=0.1)
        for image_id, score in zip(image_ids, np.clip(scores, 1.0, 10.0))
    ], batch_size=2000)  # fmt: skip


def run_one(setting: tuple, seed: int, budget: float, n_images: int, noise: float, raters) -> dict:
    from modeling.models import HumanScore, RankingAccuracy
    from modeling.services import human_scores

    rng = np.random.default_rng(seed)  # the same truth, model and judgment sequence at every budget
    quality = rng.normal(size=n_images)
    n_max = int(max(BUDGETS) * n_images)
    first = rng.integers(0, n_images, n_max)
    pairs = np.stack([first, (first + rng.integers(1, n_images, n_max)) % n_images], axis=1)
    seen = quality[pairs] + rng.normal(scale=noise, size=pairs.shape)
    winners_left = seen[:, 0] > seen[:, 1]
    if setting[3] == "bradley-terry":  # P(left) = sigmoid(q_left - q_right): the fit's own model and prior scale
        winners_left = rng.random(n_max) < expit(quality[pairs[:, 0]] - quality[pairs[:, 1]])
    model = 5.5 + 1.5 * (0.7 * quality + np.sqrt(1 - 0.7**2) * rng.normal(size=n_images))

    n = int(budget * n_images)
    name, with_model, weighted, _ = setting
    project, image_ids = make_project(f"{name.replace(' ', '-').replace(',', '')}-{seed}-{budget}", n_images)
    project.weight_raters_by_reliability = weighted
    project.save(update_fields=["weight_raters_by_reliability"])
    add_judgments(project, image_ids, pairs[:n], winners_left[:n], raters)
    if with_model:
        add_model(project, image_ids, model)
    started = time.perf_counter()
    human_scores.fit_human_scores(project)
    seconds = time.perf_counter() - started
    means = dict(HumanScore.objects.filter(project=project).values_list("image_id", "mean"))
    measured = spearmanr([means[i] for i in image_ids], quality)[0]
    accuracy = RankingAccuracy.objects.get(project=project)
    return {"predicted": accuracy.expected_srcc, "measured": float(measured), "low": accuracy.srcc_low,
            "high": accuracy.srcc_high, "seconds": seconds}


def mean_se(values) -> tuple[float, float]:
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(values.size)) if values.size > 1 else 0.0


def table(results: dict, seeds: int) -> str:
    lines = ["| setting | judgments per image | predicted SRCC | measured SRCC | predicted − measured | "
             "measured inside 5–95 % | within ±0.05 |",
             "|---|---|---|---|---|---|---|"]
    for ((setting, *_), budget), rows in results.items():
        predicted, measured = [r["predicted"] for r in rows], [r["measured"] for r in rows]
        gap, gap_se = mean_se(np.subtract(predicted, measured))
        inside = sum(r["low"] <= r["measured"] <= r["high"] for r in rows)
        lines.append(f"| {setting} | {budget:g} | {np.mean(predicted):.3f} | {np.mean(measured):.3f} | "
                     f"{gap:+.3f} ± {gap_se:.3f} | {inside}/{len(rows)} | {'yes' if abs(gap) <= 0.05 else 'no'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--noise", type=float, default=1.0, help="the observer's noise per image and judgment")
    parser.add_argument("--quick", action="store_true", help="3 seeds, print only")
    args = parser.parse_args()
    seeds = 3 if args.quick else args.seeds

    with tempfile.TemporaryDirectory(prefix="tagrank-stopping-") as folder:
        work = Path(folder)
        start_django(f"sqlite:///{work / 'bench.sqlite3'}", **scratch_environment(work))
        from django.contrib.auth import get_user_model

        raters = [get_user_model().objects.create(username=f"observer{k}") for k in range(3)]
        started = time.perf_counter()
        results: dict = {}
        for setting in SETTINGS:
            for budget in BUDGETS:
                results[(setting, budget)] = [run_one(setting, seed, budget, args.images, args.noise, raters)
                                              for seed in range(seeds)]
                rows = results[(setting, budget)]
                print(f"{setting[0]:34s} {budget:5g}/image  predicted {np.mean([r['predicted'] for r in rows]):.3f}  "
                      f"measured {np.mean([r['measured'] for r in rows]):.3f}", flush=True)
        wall = time.perf_counter() - started

    body = "\n".join([
        f"Command: `.venv/bin/python benchmarks/stopping_rule.py --images {args.images} --seeds {seeds} "
        f"--noise {args.noise:g}`. Inputs: {args.images} images, q ~ N(0, 1), random pairs, three Thurstone raters "
        f"with noise {args.noise:g} per image and judgment (in the last rows Bradley–Terry raters, "
        f"P(left) = sigmoid(q_left − q_right)); the model prior's scores correlate 0.7 with q. "
        f"{seeds} paired seeds; ± is the standard error over seeds. Through `human_scores.fit_human_scores` "
        f"on SQLite. Machine: {platform.machine()}, {os.cpu_count()} cores (shared), Python "
        f"{platform.python_version()}; {wall:.0f} s in all.",
        "",
        table(results, seeds),
    ])
    print(body)
    if not args.quick:
        from bench_docs import replace_docs_section

        replace_docs_section(REPO / "docs" / "benchmarks.md", HEADING, body)


if __name__ == "__main__":
    main()
