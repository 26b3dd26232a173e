"""The active-learning benchmark's small end-to-end case, through the REST API of a running server.

Simulated raters judge the demo project's distortion ladder as real clients would (``GET next-pair`` →
``POST comparisons``), so the pairs are whatever the server's pair queue serves: the selection task
refilling it on the worker, the leases, the fallback when the queue runs dry. The hidden quality of an
image is minus its ``distortion_strength`` (0 for the originals, 1–3 for each distortion); a rater
prefers a over b with probability Φ((q_a − q_b) / noise). At each budget (comparisons per image) the
script reads every comparison back through the manager's API, fits the Bradley–Terry posterior with
the library the server uses, and reports the SRCC of its means against the hidden quality.

    make demo                                                                      # one terminal
    .venv/bin/python benchmarks/active_learning.py --via-api http://127.0.0.1:8000 --strategy random
    make clean-demo && make demo                                                   # fresh comparisons
    .venv/bin/python benchmarks/active_learning.py --via-api http://127.0.0.1:8000 --strategy active

The strategy is set on the project through ``PATCH /api/v1/projects/{slug}/`` before rating. A run
adds comparisons to the project, so compare strategies on fresh demos.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.demo_walkthrough import Api, all_images, log_in  # noqa: E402
from modeling.ml.bradley_terry import fit_posterior  # noqa: E402

OUTCOME = {"a": 1.0, "b": 0.0, "tie": 0.5}


def all_comparisons(manager: Api, slug: str) -> list[dict]:
    return manager.all_pages(f"/api/v1/projects/{slug}/comparisons/?page_size=500")


def fitted_srcc(comparisons: list[dict], image_ids: list[int], quality: np.ndarray) -> float:
    index = {image_id: k for k, image_id in enumerate(image_ids)}
    a = np.array([index[c["image_a"]] for c in comparisons], dtype=np.intp)
    b = np.array([index[c["image_b"]] for c in comparisons], dtype=np.intp)
    outcome = np.array([OUTCOME[c["winner"]] for c in comparisons])
    posterior = fit_posterior(len(image_ids), a, b, outcome)
    return float(stats.spearmanr(posterior.mean, quality)[0])


def judge_once(api: Api, slug: str, quality: dict[int, float], noise: float, rng: np.random.Generator) -> bool:
    code, pair = api.call("GET", f"/api/v1/projects/{slug}/next-pair/")
    if code == 204:
        return False
    if code != 200:
        sys.exit(f"next-pair: HTTP {code}: {pair}")
    p_a = stats.norm.cdf((quality[pair["a"]["id"]] - quality[pair["b"]["id"]]) / noise)
    winner = "a" if rng.random() < p_a else "b"
    code, body = api.call("POST", f"/api/v1/projects/{slug}/comparisons/", {
        "lease": pair["lease"], "winner": winner, "client_key": f"bench-{rng.integers(1 << 62)}",
        "response_ms": 1500,
    })
    if code not in (200, 201):
        sys.exit(f"submit: HTTP {code}: {body}")
    return True


def run(url: str, slug: str, strategy: str | None, budgets: list[float], noise: float, seed: int,
        pause_s: float) -> dict:
    manager = log_in(url, "manager")
    if strategy:
        code, body = manager.call("PATCH", f"/api/v1/projects/{slug}/", {"pair_strategy": strategy})
        if code != 200:
            sys.exit(f"setting the strategy: HTTP {code}: {body}")
    strategy = manager.get(f"/api/v1/projects/{slug}/")["pair_strategy"]
    images = all_images(manager, slug)
    image_ids = [image["id"] for image in images]
    hidden = {image["id"]: -float(image["metadata"].get("distortion_strength", 0)) for image in images}
    quality = np.array([hidden[i] for i in image_ids])
    raters = [log_in(url, name) for name in ("rater", "rater2")]
    rng = np.random.default_rng(seed)
    already = len(all_comparisons(manager, slug))
    started, results, turn = time.monotonic(), [], 0
    for budget in sorted(budgets):
        target = int(round(budget * len(image_ids)))
        done = len(all_comparisons(manager, slug)) - already
        while done < target:
            if not judge_once(raters[turn % len(raters)], slug, hidden, noise, rng):
                if not any(judge_once(r, slug, hidden, noise, rng) for r in raters):
                    break  # nothing left for either rater
            turn += 1
            done += 1
            if pause_s:
                time.sleep(pause_s)  # lets the worker's refills keep up, as with people rating
        comparisons = all_comparisons(manager, slug)  # earlier ones included: the server's fit sees them too
        srcc = fitted_srcc(comparisons, image_ids, quality)
        results.append({"budget": budget, "comparisons": len(comparisons), "srcc": round(srcc, 3)})
        print(json.dumps({"strategy": strategy, **results[-1]}), flush=True)
    return {"strategy": strategy, "images": len(image_ids), "noise": noise, "seed": seed, "results": results,
            "seconds": round(time.monotonic() - started, 1)}


def main(args) -> None:
    summary = run(args.via_api, args.slug, args.strategy, args.budgets, args.noise, args.seed, args.pause)
    print(json.dumps(summary))
