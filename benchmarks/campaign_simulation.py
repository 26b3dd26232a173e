"""The campaign of ``campaign_cost.py`` without a server: the worker's code on arrays (``--simulate``).

Per seed: the degraded set's images and their ``quality-stats`` features (computed once, cached under
``var/benchmarks/``), a Thurstone observer, and the served queue as the system runs it: a batch of
``RefillPolicy().batch_size`` pairs chosen by ``modeling.ml.selection.select_pairs`` (strategy
``active``, or balanced ``random`` with ``--strategy random``) from the current human-score posterior, served by expected information, refilled once
half of it (at most 25 judgments) is judged. Each refill refits the human scores as
``modeling/services/human_scores.py`` does: the linear head, each image left out, as prior
(``model_prior.own_head_prior``'s computation), weighed by ``prior_fusion.fuse``. The model alone
is the linear head a retrain would fit (every +25 % comparisons, at least 50) on what it had then.

``warm_start``: a second campaign on fresh images (seed + 100) whose prior is the first campaign's
final head (fitted on its 2 judgments per image), scored on the fresh images: every image out of fold.
"""
from __future__ import annotations

import time

import numpy as np

from bench_setup import REPO
from campaign_cost import MEASURES, CostConfig, classic_curve, plain_bt_srcc, srcc, thurstone
from modeling.ml import linear_bt, prior_fusion, ranking_accuracy
from modeling.ml.selection import pair_information, select_pairs

CACHE = REPO / "var" / "benchmarks" / "campaign_cost"
BATCH, SERVED, MAX_PER_IMAGE, EXPLORE = 200, 25, 2, 0.1  # RefillPolicy's defaults, the refill cadence


def image_set(n_images: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(pooled features [N,F], latent quality [N] standardised) of the degraded set of this seed."""
    path = CACHE / f"degraded-{n_images}-{seed}.npz"
    if not path.exists():
        from modeling.ml.degraded_set import CONTENT_FILES, make_degraded_set
        from modeling.ml.quality_stats import QualityStatsEncoder

        made = make_degraded_set(n_images, seed=1000 + seed, size=128)  # as active_learning_api.degraded_set
        encoder = QualityStatsEncoder()
        tokens = encoder.encode_images(made.images)
        tags = encoder.encode_texts([CONTENT_FILES[k].rsplit(".", 1)[0] for k in made.content])[:, None, :]
        features = linear_bt.pooled_features(tokens, tags, np.ones((n_images, 1), dtype=bool))
        quality = (made.quality - made.quality.mean()) / made.quality.std()
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, features=features, quality=quality)
    saved = np.load(path)
    return saved["features"], saved["quality"]


def fused_fit(features, a, b, outcome, foreign: np.ndarray | None):
    if foreign is not None:
        prior = prior_fusion.ModelPrior(foreign, np.ones(foreign.size, dtype=bool), "warm start")
    else:
        prior = prior_fusion.ModelPrior(linear_bt.leave_one_image_out_scores(features, a, b, outcome)[0],
                                        np.ones(features.shape[0], dtype=bool), "each image left out")
    return prior_fusion.fuse(features.shape[0], a, b, outcome, prior)


def simulate_campaign(features, quality, config: CostConfig, seed: int, foreign: np.ndarray | None = None) -> dict:
    n = quality.size
    rng = np.random.default_rng(seed)
    pairs = np.zeros((0, 2), dtype=np.int64)
    outcome = np.zeros(0)
    counts = np.zeros(n, dtype=np.int64)
    judged: set[tuple[int, int]] = set()
    fused = fused_fit(features, pairs[:, 0], pairs[:, 1], outcome, foreign)
    head, trained_on = None, 0
    result = {"seed": seed, "srcc": {m: {} for m in MEASURES}, "strength": {}, "predicted": {}}
    for budget in config.budgets:
        target = int(round(budget * n))
        while len(pairs) < target:
            batch = select_pairs(fused.posterior, counts, BATCH, rng, strategy=config.strategy, exclude=judged or None,
                                 max_per_image=MAX_PER_IMAGE, explore_share=EXPLORE)
            batch = batch[np.argsort(-pair_information(fused.posterior, batch[:, 0], batch[:, 1]), kind="stable")]
            served = batch[: min(SERVED, (len(batch) + 1) // 2, target - len(pairs))]
            pairs = np.vstack([pairs, served])
            outcome = np.concatenate([outcome, thurstone(quality, served, config.noise, rng)])
            np.add.at(counts, served.ravel(), 1)
            judged.update(map(tuple, served.tolist()))
            if len(pairs) - trained_on >= max(50, 0.25 * trained_on):  # the retrain cadence (triggers.py)
                head = linear_bt.fit_linear_bt(features, pairs[:, 0], pairs[:, 1], outcome)
                trained_on = len(pairs)
            fused = fused_fit(features, pairs[:, 0], pairs[:, 1], outcome, foreign)
        result["srcc"]["tagrank"][budget] = srcc(fused.posterior.mean, quality)
        result["srcc"]["pairs"][budget] = plain_bt_srcc(n, pairs[:, 0], pairs[:, 1], outcome, quality)
        model = foreign if foreign is not None else (head.score(features) if head is not None else np.full(n, np.nan))
        result["srcc"]["model"][budget] = srcc(model, quality)
        result["strength"][budget] = fused.strength.summary() if fused.strength is not None else None
        accuracy = ranking_accuracy.expected_srcc(fused.posterior.mean, fused.posterior.var)  # the stopping rule's
        result["predicted"][budget] = {"expected_srcc": accuracy.expected_srcc, "interval": [accuracy.low, accuracy.high]}
        print({"seed": seed, "budget": budget, **{m: round(result["srcc"][m][budget], 3) for m in MEASURES},
               "strength": result["strength"][budget]}, flush=True)
    result["final_head"] = linear_bt.fit_linear_bt(features, pairs[:, 0], pairs[:, 1], outcome)
    return result


def run_simulation(config: CostConfig) -> list[dict]:
    results = []
    for seed in range(config.seeds):
        started = time.perf_counter()
        features, quality = image_set(config.images, seed)
        result = simulate_campaign(features, quality, config, seed)
        head = result.pop("final_head")
        if config.warm_start:  # the second campaign, on fresh images, with this one's model as its prior
            fresh_features, fresh_quality = image_set(config.images, seed + 100)
            second = simulate_campaign(fresh_features, fresh_quality, config, seed + 100,
                                       foreign=head.score(fresh_features))
            second.pop("final_head")
            second["classic"] = classic_curve(fresh_quality, config.noise, config.classic_draws, seed + 100)
            result["warm_start"] = second
        result["classic"] = classic_curve(quality, config.noise, config.classic_draws, seed)
        result["seconds"] = round(time.perf_counter() - started, 1)
        results.append(result)
    return results

