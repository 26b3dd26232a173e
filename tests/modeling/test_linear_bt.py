"""The linear Bradley–Terry head (modeling/ml/linear_bt.py), its scorer module and checkpoint, and the
empirical-Bayes fusion of its out-of-fold scores with the comparisons (modeling/ml/prior_fusion.py)."""
from __future__ import annotations

import numpy as np
import torch
from scipy.stats import spearmanr

from modeling.ml import linear_bt, prior_fusion
from modeling.ml.checkpoints import load_checkpoint, save_checkpoint
from modeling.ml.linear_scorer import LinearScorer
from modeling.ml.ranker import RankerConfig


def synthetic(n_images=300, n_features=12, n_comparisons=400, seed=0, signal=1.5):
    """Features [N,F], latent quality [N] linear in them, comparisons judged by a BT observer."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n_images, n_features))
    quality = signal * features @ rng.normal(size=n_features) / np.sqrt(n_features)
    a = rng.integers(0, n_images, n_comparisons)
    b = (a + rng.integers(1, n_images, n_comparisons)) % n_images
    outcome = (rng.random(n_comparisons) < 1 / (1 + np.exp(-(quality[a] - quality[b])))).astype(float)
    return features, quality, a, b, outcome


def test_the_head_ranks_images_it_never_saw_far_better_than_chance():
    features, quality, a, b, outcome = synthetic()
    seen = np.zeros(features.shape[0], dtype=bool)
    seen[:200] = True
    train = seen[a] & seen[b]
    head = linear_bt.fit_linear_bt(features, a[train], b[train], outcome[train])
    unseen = ~seen
    assert spearmanr(head.score(features[unseen]), quality[unseen])[0] > 0.6
    assert head.ridge in linear_bt.LinearBTConfig().ridges and set(head.extra["log_evidence"]) == {
        str(r) for r in linear_bt.LinearBTConfig().ridges}


def test_with_too_few_comparisons_the_head_scores_nothing():
    features, _, a, b, outcome = synthetic(n_comparisons=5)
    assert not np.any(linear_bt.fit_linear_bt(features, a, b, outcome).score(features))


def test_an_images_cross_fitted_score_does_not_depend_on_its_own_comparisons():
    features, _, a, b, outcome = synthetic()
    fold = linear_bt.image_folds(np.arange(features.shape[0]) + 1, 5)
    before = linear_bt.cross_fitted_scores(features, a, b, outcome, fold)
    image = 7
    own = (a == image) | (b == image)
    assert own.sum() >= 1
    flipped = np.where(own, 1.0 - outcome, outcome)  # its own judgments reversed ...
    extra_a, extra_b = np.full(5, image), np.arange(100, 105)  # ... and five more that it won
    after = linear_bt.cross_fitted_scores(features, np.concatenate([a, extra_a]), np.concatenate([b, extra_b]),
                                          np.concatenate([flipped, np.ones(5)]), fold)
    assert after[image] == before[image]
    # The check has teeth: images of other folds saw those comparisons and moved.
    others = fold != fold[image]
    assert np.abs(after[others] - before[others]).max() > 1e-6


def test_an_image_left_out_scores_as_the_head_refitted_without_its_own_comparisons():
    features, _, a, b, outcome = synthetic()
    left_out, head = linear_bt.leave_one_image_out_scores(features, a, b, outcome)
    assert np.allclose(head.score(features), linear_bt.fit_linear_bt(features, a, b, outcome).score(features))
    once = np.bincount(np.concatenate([a, b]), minlength=features.shape[0])
    for image in [*np.flatnonzero(once == 1)[:3], *np.flatnonzero(once >= 3)[:3]]:
        keep = (a != image) & (b != image)
        refit = linear_bt.fit_linear_bt(features, a[keep], b[keep], outcome[keep], ridge=head.ridge)
        exact = refit.score(features[image:image + 1])[0]
        moved = abs(head.score(features[image:image + 1])[0] - exact)  # what its own comparisons did
        assert moved > 1e-3
        # One Newton step from the full fit takes out all of it but a rest of second order.
        assert abs(left_out[image] - exact) < 0.02 * moved


def test_folds_are_a_fixed_function_of_the_image_key():
    keys = np.arange(1, 1001)
    fold = linear_bt.image_folds(keys, 5)
    assert np.array_equal(fold[10:20], linear_bt.image_folds(keys[10:20], 5))
    assert set(np.bincount(fold)) and np.bincount(fold).min() > 150  # spread evenly


def test_the_scorer_module_keeps_the_heads_order_and_survives_a_checkpoint(tmp_path):
    rng = np.random.default_rng(1)
    tokens = rng.normal(size=(60, 3, 8)).astype(np.float32)  # [N,T,D]
    tags = rng.normal(size=(60, 2, 8)).astype(np.float32)
    mask = rng.random((60, 2)) < 0.7
    features = linear_bt.pooled_features(tokens, tags, mask)  # [N,3D]
    quality = features @ rng.normal(size=features.shape[1])
    a = rng.integers(0, 60, 300)
    b = (a + rng.integers(1, 60, 300)) % 60
    head = linear_bt.fit_linear_bt(features, a, b, (quality[a] > quality[b]).astype(float))
    module = LinearScorer.from_head(head, RankerConfig(input_dim=8))
    save_checkpoint(tmp_path / "linear.pt", module, {"encoder_id": "test"})
    loaded, meta = load_checkpoint(tmp_path / "linear.pt", device="cpu")
    assert loaded.kind == "linear_bt" and meta["encoder_id"] == "test"
    mean, dist, uncertainty = loaded.predict(torch.from_numpy(tokens), torch.from_numpy(tags), torch.from_numpy(mask))
    assert spearmanr(mean.numpy(), head.score(features))[0] > 0.999
    assert mean.min() >= 1.0 and mean.max() <= 10.0 and torch.allclose(dist.sum(dim=1), torch.ones(60))
    assert torch.all(uncertainty > 0)


# --- The fusion ------------------------------------------------------------------------------------------


def test_the_prior_strength_fades_for_a_prior_that_predicts_nothing():
    _, quality, a, b, outcome = synthetic(n_images=400, n_comparisons=1500, seed=3)
    random_prior = prior_fusion.ModelPrior(np.random.default_rng(4).normal(size=400), np.ones(400, dtype=bool))
    fused = prior_fusion.fuse(400, a, b, outcome, random_prior)
    assert fused.strength is not None and fused.strength.share < 0.05
    useful = prior_fusion.ModelPrior(quality + np.random.default_rng(5).normal(0, 0.3, 400), np.ones(400, dtype=bool))
    assert prior_fusion.fuse(400, a, b, outcome, useful).strength.share > 0.5


def test_comparisons_not_out_of_fold_do_not_weigh_the_prior():
    _, quality, a, b, outcome = synthetic(n_images=200, n_comparisons=600, seed=6)
    in_sample = prior_fusion.ModelPrior(quality, np.zeros(200, dtype=bool))  # e.g. a model trained on them all
    fused = prior_fusion.fuse(200, a, b, outcome, in_sample)
    assert fused.strength is None  # nothing to weigh it on: only the weak ordering prior
    assert np.allclose(fused.prior_var, prior_fusion.FusionConfig().flat_prior_var)


def test_the_fused_ranking_beats_both_of_its_parts_on_synthetic_data():
    _, quality, a, b, outcome = synthetic(n_images=500, n_comparisons=500, seed=7, signal=2.0)
    noisy_model = quality + np.random.default_rng(8).normal(0, 1.5, 500)  # a model of SRCC about 0.75
    fused = prior_fusion.fuse(500, a, b, outcome, prior_fusion.ModelPrior(noisy_model, np.ones(500, dtype=bool)))
    from modeling.ml import bradley_terry as bt

    pairs_alone = spearmanr(bt.fit_posterior(500, a, b, outcome).mean, quality)[0]
    model_alone = spearmanr(noisy_model, quality)[0]
    assert spearmanr(fused.posterior.mean, quality)[0] > max(pairs_alone, model_alone) + 0.01


def test_a_dense_project_weighs_its_prior_on_a_sample_of_its_comparisons(monkeypatch):
    # 1,500 images compared 20 times each: the evidence's sparse LU would fill in to a dense matrix.
    _, quality, a, b, outcome = synthetic(n_images=1500, n_comparisons=15_000, seed=9)
    sizes = []
    log_evidence = prior_fusion.log_evidence

    def counted(n_images, a, b, *rest):
        sizes.append((n_images, a.size))
        return log_evidence(n_images, a, b, *rest)

    monkeypatch.setattr(prior_fusion, "log_evidence", counted)
    config = prior_fusion.FusionConfig(evidence_max_comparisons=1_000)
    useful = prior_fusion.ModelPrior(quality + np.random.default_rng(10).normal(0, 0.3, 1500), np.ones(1500, bool))
    fused = prior_fusion.fuse(1500, a, b, outcome, useful, config=config)
    assert sizes and all(size == 1_000 and n_images < 1500 for n_images, size in sizes)  # the compared ones only
    assert fused.strength.share > 0.5 and spearmanr(fused.posterior.mean, quality)[0] > 0.95
