"""Campaign cost: how many classic judgments one Tagrank judgment is worth (issue 25).

    .venv/bin/python benchmarks/campaign_cost.py                 # REST against the running system, prints
    .venv/bin/python benchmarks/campaign_cost.py --simulate      # the same measures without a server (fast)
    .venv/bin/python benchmarks/campaign_cost.py --json out.json # also keep every campaign's figures

**Through REST** (the default). The script starts the system at its defaults in a temporary folder:
gunicorn (a free port), a ``gpu`` worker (features, training, scoring), a ``default`` worker (refills,
human-score fits) and beat, on SQLite and the filesystem broker. Only the set-up (project, users,
image files) is written directly; the project keeps every default (active pairs, overlap 1, a retrain
after each 50 new comparisons, the configured encoder: ``quality-stats``). ``--raters`` Thurstone
observers judge through ``next-pair`` / ``comparisons``, each pausing ``--pause`` seconds per pair.

**Images**: per seed, ``--images`` (default 1,000) images of the generated degraded set
(``modeling.ml.degraded_set``: crops of scikit-image pictures under random blur, noise and JPEG), latent
quality ``q = -(sum of the levels)`` standardised; the rater prefers a over b with probability
Φ((q_a − q_b) / noise).

**Read at each budget** (judgments per image), after a refit that saw every judgment:

* ``tagrank``: the exported ``human_score``;
* ``pairs``: a plain Bradley–Terry fit (``modeling.ml.bradley_terry.fit_posterior``, no prior) of the
  exported comparisons: what the judgments alone say;
* ``model``: the exported ``model_mean`` of the active model version (NaN until a version is active);
* the stopping rule's ``expected_srcc`` and interval (``ranking-accuracy/``), beside the measured SRCC:
  its calibration.

``--warm-start``: after each seed's campaign, a second one on fresh images (seed + 100) whose manager
names the first project's active version as its warm start (``training-settings/``), waits until the
worker has scored the new images with it, and runs the budgets ``CostConfig.warm_budgets``.

**Classic** (what a generic labeling tool gives): on the same images and observer, uniform random pairs,
one judgment each, one Bradley–Terry fit at the end with the best of a few ridges (as in
``shared/anchors.md``), ``--classic-draws`` draws per seed and budget, on a grid of budgets up to 16.
**Worth** = the classic judgments per image that reach the campaign's SRCC, interpolated on that seed's
classic curve (linear in log budget); **gain** = worth ÷ budget. Reported: mean ± s.e. over seeds.

``--simulate`` runs the same campaign without a server, with the code the worker runs on arrays:
features from the encoder in-process, the pair selection (``modeling.ml.selection``), the model the
retrain would pick and the fused posterior of ``modeling.ml.prior_fusion``. It is for iteration; the
figures that count come from REST.
"""
from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

import bench_setup  # noqa: E402, F401  (puts the repository on sys.path)

from modeling.ml import bradley_terry as bt  # noqa: E402

CLASSIC_BUDGETS = (0.125, 0.25, 0.375, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)
CLASSIC_RIDGES = (0.5, 1.0, 2.0, 4.0)  # prior variances of the classic fit; the best per budget is kept
MEASURES = ("tagrank", "pairs", "model")


@dataclass
class CostConfig:
    images: int = 1000
    seeds: int = 3
    budgets: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0)
    raters: int = 3
    pause: float = 1.0  # seconds each rater pauses per pair (REST)
    noise: float = 1.0  # Thurstone noise in latent standard deviations
    classic_draws: int = 6
    timeout_s: float = 900.0
    warm_start: bool = False  # a second campaign on fresh images, the first one's active version as its prior
    warm_budgets: tuple[float, ...] = (0.25, 0.5, 1.0)  # REST: the second campaign's budgets
    strategy: str = "active"  # simulate only: the pair strategy (REST: the project's default, active)
    extra: dict = field(default_factory=dict)


# --- The classic workflow and the worth curve ----------------------------------------------------------


def thurstone(quality: np.ndarray, pairs: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """1.0 where the left image is preferred: P = Φ((q_a − q_b) / noise)."""
    p_left = stats.norm.cdf((quality[pairs[:, 0]] - quality[pairs[:, 1]]) / noise)
    return (rng.random(len(pairs)) < p_left).astype(np.float64)


def uniform_pairs(n_images: int, n_pairs: int, rng: np.random.Generator) -> np.ndarray:
    a = rng.integers(0, n_images, n_pairs)
    b = (a + rng.integers(1, n_images, n_pairs)) % n_images  # never an image against itself
    return np.column_stack([a, b])


def classic_curve(quality: np.ndarray, noise: float, draws: int, seed: int) -> list[tuple[float, float]]:
    """[(judgments per image, SRCC)] of the classic workflow on these images: uniform random pairs, one
    Bradley–Terry fit at the end (the best of ``CLASSIC_RIDGES``, chosen on the mean over the draws)."""
    n = quality.size
    curve = []
    for budget in CLASSIC_BUDGETS:
        by_ridge = np.zeros((len(CLASSIC_RIDGES), draws))
        for draw in range(draws):
            rng = np.random.default_rng([seed, draw, int(budget * 1000)])
            pairs = uniform_pairs(n, int(round(budget * n)), rng)
            outcome = thurstone(quality, pairs, noise, rng)
            for k, ridge in enumerate(CLASSIC_RIDGES):
                fit = bt.fit_posterior(n, pairs[:, 0], pairs[:, 1], outcome, prior_var=ridge,
                                       config=bt.FitConfig(tolerance=1e-4))
                by_ridge[k, draw] = stats.spearmanr(fit.mean, quality)[0]
        curve.append((budget, float(by_ridge.mean(axis=1).max())))
    return curve


def worth(curve: list[tuple[float, float]], srcc: float) -> float:
    """Classic judgments per image that reach ``srcc`` (linear in log budget between the curve's points);
    NaN beyond the curve's last point, the first budget's share below its first point."""
    budgets = np.array([b for b, _ in curve])
    values = np.maximum.accumulate(np.array([s for _, s in curve]))  # the classic curve rises; smooth its noise
    if not np.isfinite(srcc):
        return float("nan")
    if srcc <= values[0]:
        return float(budgets[0] * max(srcc, 0.0) / values[0])
    if srcc > values[-1]:
        return float("nan")
    k = int(np.searchsorted(values, srcc))
    lo, hi = np.log(budgets[k - 1]), np.log(budgets[k])
    share = (srcc - values[k - 1]) / max(values[k] - values[k - 1], 1e-12)
    return float(np.exp(lo + share * (hi - lo)))


def srcc(scores, truth) -> float:
    scores = np.asarray(scores, dtype=float)
    if scores.size == 0 or not np.all(np.isfinite(scores)) or np.ptp(scores) == 0:
        return float("nan")
    return float(stats.spearmanr(scores, truth)[0])


def plain_bt_srcc(n_images: int, a: np.ndarray, b: np.ndarray, outcome: np.ndarray, truth: np.ndarray) -> float:
    fit = bt.fit_posterior(n_images, a, b, outcome, config=bt.FitConfig(tolerance=1e-4))
    return srcc(fit.mean, truth)


# --- Through REST -----------------------------------------------------------------------------------------


def rest_campaign(url: str, slug: str, latent: dict[int, float], config: CostConfig, users: list[str],
                  seed: int, budgets: tuple[float, ...] | None = None) -> dict:
    import active_learning_api as al

    manager = al.log_in(url, users[0])
    raters = [al.log_in(url, name) for name in users[1:]]
    rng = np.random.default_rng(seed)
    ids = np.array(sorted(latent))
    truth = np.array([latent[i] for i in ids])
    done, turn, latencies, last_judged_at = 0, 0, [], None
    result = {"slug": slug, "seed": seed, "srcc": {m: {} for m in MEASURES}, "versions": {}, "predicted": {},
              "started": time.monotonic()}
    for budget in budgets or config.budgets:
        target = int(round(budget * len(ids)))
        stalled = 0
        while done < target and stalled < 30 * len(raters):
            judged_at = al.judge(raters[turn % len(raters)], slug, latent, config.noise, rng, latencies)
            if judged_at:
                done, stalled, last_judged_at = done + 1, 0, judged_at
                time.sleep(config.pause / len(raters))  # each rater pauses ``pause`` per pair, in turn
            else:
                stalled += 1
                if stalled % len(raters) == 0:
                    time.sleep(1.0)
            turn += 1
        rows = al.fresh_score_rows(manager, slug, last_judged_at, config.timeout_s)
        by_id = {row["image_id"]: row for row in rows}
        human = [by_id[i]["human_score"] if by_id[i]["human_score"] is not None else 0.0 for i in ids]
        model = [by_id[i]["model_mean"] if by_id[i]["model_mean"] is not None else np.nan for i in ids]
        a, b, outcome = exported_comparisons(manager, slug, ids)
        result["srcc"]["tagrank"][budget] = srcc(human, truth)
        result["srcc"]["model"][budget] = srcc(model, truth)
        result["srcc"]["pairs"][budget] = plain_bt_srcc(len(ids), a, b, outcome, truth)
        versions = manager.ok("GET", f"/api/v1/projects/{slug}/model-versions/")
        versions = versions.get("results", versions) if isinstance(versions, dict) else versions
        result["versions"][budget] = {"count": len(versions),
                                      "active": [v.get("id") for v in versions if v.get("is_active")]}
        # The stopping rule's prediction, read beside the measured SRCC: its calibration through REST.
        accuracy = manager.ok("GET", f"/api/v1/projects/{slug}/ranking-accuracy/")
        result["predicted"][budget] = {"expected_srcc": accuracy.get("expected_srcc"),
                                       "interval": accuracy.get("interval")}
        print(json.dumps({"slug": slug, "budget": budget, "judged": done,
                          **{m: round(result["srcc"][m][budget], 3) for m in MEASURES}}), flush=True)
    result["seconds"] = round(time.monotonic() - result.pop("started"), 1)
    result["next_pair_ms"] = [round(1000 * v, 1) for v in np.percentile(latencies, [50, 99])] if latencies else None
    return result


def exported_comparisons(manager, slug: str, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    text = manager.ok("GET", f"/api/v1/projects/{slug}/export/comparisons/?format=jsonl", raw=True)
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    a = np.searchsorted(ids, [row["image_a_id"] for row in rows])
    b = np.searchsorted(ids, [row["image_b_id"] for row in rows])
    outcome = np.array([{"a": 1.0, "b": 0.0}.get(row["outcome"], 0.5) for row in rows])
    return a.astype(np.int64), b.astype(np.int64), outcome


def create_default_project(slug: str, images: list[dict], users: list[str]) -> dict[int, float]:
    """A project at every default (strategy, overlap, retrain policy, training settings) with the images."""
    import active_learning_api as al
    import worker.dispatch as dispatch
    from labeling.models import Project

    project = Project.objects.create(name=slug, slug=slug)
    latent = al.add_members_and_images(project, images, users)
    dispatch.send_images_imported(project.pk, list(latent))  # as an upload does
    return latent


def start_warm(url: str, slug: str, users: list[str], version_id: int, n_images: int, timeout_s: float) -> None:
    """Name ``version_id`` (the first campaign's active version) as ``slug``'s warm start, as a manager does
    in the training settings, and wait until the worker has scored the new project's images with it."""
    import active_learning_api as al

    manager = al.log_in(url, users[0])
    manager.ok("PATCH", f"/api/v1/projects/{slug}/training-settings/", {"warm_start_version": version_id})

    def scored():
        state = manager.ok("GET", f"/api/v1/projects/{slug}/training-settings/")["warm_start"]
        return state if state and state["scored_images"] >= n_images else None

    al.wait(f"the warm start's scores of {slug}", scored, timeout_s)


def run_rest(config: CostConfig) -> list[dict]:
    import active_learning_api as al

    work = Path(tempfile.mkdtemp(prefix="tagrank-cost-"))
    al.prepare_environment(work, al.BenchConfig(encoder=""))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    users = al.create_users(config.raters)
    image_sets = {seed: standardised(al.degraded_set(config.images, seed)) for seed in range(config.seeds)}
    if config.warm_start:  # the second campaigns' fresh images
        image_sets.update({100 + seed: standardised(al.degraded_set(config.images, 100 + seed))
                           for seed in range(config.seeds)})
    print(f"{config.seeds} image sets made ({work})", flush=True)
    services = al.Services(work)
    al.SERVICES.append(services)
    results, lock = [], threading.Lock()
    try:
        def one(seed: int):
            slug = f"cost-s{seed}"
            latent = create_default_project(slug, image_sets[seed], users)
            connection.close()
            truth = np.array([latent[i] for i in sorted(latent)])
            try:
                result = rest_campaign(services.url, slug, latent, config, users, seed)
            except Exception as error:  # noqa: BLE001 (reported; the other seeds go on)
                print(f"campaign {slug} failed: {error}", flush=True)
                return
            result["classic"] = classic_curve(truth, config.noise, config.classic_draws, seed)
            if config.warm_start:
                result["warm_start"] = warm_campaign(seed, result)
            with lock:
                results.append(result)

        def warm_campaign(seed: int, first: dict) -> dict | None:
            """A second campaign on fresh images whose prior is the first campaign's active version."""
            active = first["versions"][config.budgets[-1]]["active"]
            if not active:
                print(f"seed {seed}: no active version to start from", flush=True)
                return None
            slug = f"cost-s{seed}-warm"
            latent = create_default_project(slug, image_sets[100 + seed], users)
            connection.close()
            try:
                start_warm(services.url, slug, users, active[0], len(latent), config.timeout_s)
                second = rest_campaign(services.url, slug, latent, config, users, 100 + seed, config.warm_budgets)
            except Exception as error:  # noqa: BLE001 (reported; the other seeds go on)
                print(f"campaign {slug} failed: {error}", flush=True)
                return None
            second["warm_start_version"] = active[0]
            truth = np.array([latent[i] for i in sorted(latent)])
            second["classic"] = classic_curve(truth, config.noise, config.classic_draws, 100 + seed)
            return second

        with ThreadPoolExecutor(config.seeds) as pool:
            list(pool.map(one, range(config.seeds)))
    finally:
        services.stop()
    return results


def standardised(images: list[dict]) -> list[dict]:
    truth = np.array([item["latent"] for item in images])
    for item, z in zip(images, (truth - truth.mean()) / truth.std()):
        item["latent"] = float(z)
    return images


# --- Report ---------------------------------------------------------------------------------------------


def mean_se(values) -> tuple[float, float]:
    values = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    if values.size == 0:
        return float("nan"), float("nan")
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(values.size)) if values.size > 1 else float("nan")


def cell(values, digits: int = 3, suffix: str = "") -> str:
    m, se = mean_se(values)
    if not np.isfinite(m):
        return "–"
    return f"{m:.{digits}f}{suffix} ± {se:.{digits}f}" if np.isfinite(se) else f"{m:.{digits}f}{suffix}"


def report(results: list[dict], config: CostConfig, title: str = "") -> str:
    results = sorted(results, key=lambda r: r["seed"])
    lines = [title] if title else []
    lines += ["| judgments per image | Tagrank `human_score` | pairs alone (plain BT) | model alone | classic "
              "| worth (classic judgments per image) | gain |", "|---|---|---|---|---|---|---|"]
    for budget in config.budgets:
        values = {m: [r["srcc"][m].get(budget, np.nan) for r in results] for m in MEASURES}
        classic = [dict(r["classic"]).get(budget, np.nan) for r in results]
        worths = [worth(r["classic"], r["srcc"]["tagrank"].get(budget, np.nan)) for r in results]
        gains = [w / budget for w in worths]
        beyond = sum(not np.isfinite(w) for w in worths)
        note = f" ({beyond} beyond {CLASSIC_BUDGETS[-1]:g})" if beyond else ""
        lines.append(f"| {budget:g} | {cell(values['tagrank'])} | {cell(values['pairs'])} | {cell(values['model'])} "
                     f"| {cell(classic)} | {cell(worths, 2)}{note} | {cell(gains, 2, '×')} |")
    fused_gap = []
    for budget in config.budgets:
        gaps = [r["srcc"]["tagrank"][budget] - np.nanmax([r["srcc"]["pairs"][budget], r["srcc"]["model"][budget]])
                for r in results]
        fused_gap.append(f"{budget:g}: {cell(gaps, 3)}")
    lines += ["", f"{len(results)} paired seeds, {config.images} images each. Fused − better of (pairs alone, "
                  "model alone), per seed, mean ± s.e.: " + "; ".join(fused_gap) + "."]
    return "\n".join(lines)


def calibration_report(results: list[dict], budgets: tuple[float, ...]) -> str:
    """The stopping rule's expected SRCC (``ranking-accuracy/``) against the measured one, per budget."""
    results = [r for r in results if r.get("predicted")]
    if not results:
        return ""
    lines = ["| judgments per image | predicted SRCC | measured SRCC | predicted − measured | measured inside "
             "the interval |", "|---|---|---|---|---|"]
    for budget in budgets:
        rows = [(r["predicted"].get(budget) or {}, r["srcc"]["tagrank"].get(budget, np.nan)) for r in results]
        rows = [(p, m) for p, m in rows if p.get("expected_srcc") is not None]
        if not rows:
            continue
        predicted = [p["expected_srcc"] for p, _ in rows]
        measured = [m for _, m in rows]
        inside = sum(p["interval"][0] <= m <= p["interval"][1] for p, m in rows if p.get("interval"))
        lines.append(f"| {budget:g} | {cell(predicted)} | {cell(measured)} | "
                     f"{cell(np.subtract(predicted, measured), 3)} | {inside}/{len(rows)} |")
    return "\n".join(lines)


def warm_results(results: list[dict]) -> list[dict]:
    return [r["warm_start"] for r in results if r.get("warm_start")]


def print_reports(results: list[dict], config: CostConfig, title: str) -> None:
    print(report(results, config, title))
    print(calibration_report(results, config.budgets))
    warm = warm_results(results)
    if warm:
        budgets = tuple(sorted({float(b) for r in warm for b in r["srcc"]["tagrank"]}))  # REST: warm_budgets
        warm_config = CostConfig(**{**asdict(config), "budgets": budgets})
        print(report(warm, warm_config, "Second campaign on fresh images, the first campaign's model as its prior"))
        print(calibration_report(warm, warm_config.budgets))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--simulate", action="store_true", help="no server: the same code on arrays")
    parser.add_argument("--warm-start", action="store_true",
                        help="a second campaign on fresh images, the first one's model (REST: active version) as prior")
    parser.add_argument("--strategy", choices=("active", "random"), help="(with --simulate) the pair strategy")
    parser.add_argument("--images", type=int)
    parser.add_argument("--seeds", type=int)
    parser.add_argument("--budgets", type=float, nargs="+")
    parser.add_argument("--raters", type=int)
    parser.add_argument("--pause", type=float)
    parser.add_argument("--noise", type=float)
    parser.add_argument("--classic-draws", type=int)
    parser.add_argument("--json", help="save every campaign's figures here")
    parser.add_argument("--report-from", type=Path, help="only print the report of a saved --json file")
    args = parser.parse_args(argv)
    config = CostConfig()
    for name in ("images", "seeds", "raters", "pause", "noise", "classic_draws", "strategy"):
        if getattr(args, name) is not None:
            setattr(config, name, getattr(args, name))
    if args.budgets:
        config.budgets = tuple(args.budgets)
    config.warm_start = args.warm_start
    if args.report_from:
        saved = json.loads(args.report_from.read_text())
        results = [_float_keys(r) for r in saved["results"]]
        config = CostConfig(**{**asdict(config), **saved["config"], "budgets": tuple(saved["config"]["budgets"]),
                               "warm_budgets": tuple(saved["config"].get("warm_budgets", config.warm_budgets))})
        for result in warm_results(results):
            _float_keys(result)
        print_reports(results, config, "")
        return
    started = time.monotonic()
    if args.simulate:
        from campaign_simulation import run_simulation

        results = run_simulation(config)
    else:
        results = run_rest(config)
    seconds = time.monotonic() - started
    mode = "simulated" if args.simulate else "REST"
    print_reports(results, config, f"Campaign cost ({mode}, {seconds / 60:.1f} min)")
    if args.json:
        Path(args.json).write_text(json.dumps({"config": asdict(config), "results": results, "seconds": seconds,
                                               "command": " ".join(sys.argv)}, indent=1, default=float))


def _float_keys(result: dict) -> dict:
    result["srcc"] = {m: {float(k): v for k, v in values.items()} for m, values in result["srcc"].items()}
    result["classic"] = [tuple(point) for point in result["classic"]]
    if "predicted" in result:
        result["predicted"] = {float(k): v for k, v in result["predicted"].items()}
    return result


if __name__ == "__main__":
    main()
