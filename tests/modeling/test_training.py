"""Training, splitting, checkpoints and scoring on small synthetic feature sets."""
import numpy as np
import pytest
import torch

from modeling.ml.metrics import emd, evaluate_scores, kl_divergence
from modeling.ml.ranker import RankerConfig
from modeling.ml.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from modeling.ml.synthetic import synthetic_data
from modeling.ml.training import TrainConfig, score_images, train_ranker
from modeling.ml.training_data import RankingData, split_data
from tests.modeling.devices import DEVICES


def small_config(**kw):
    base = dict(ranker=RankerConfig(width=32, heads=2, ensemble=3), epochs=10, batch_pairs=512,
                batch_images=128, eval_every=0, patience=4, patience_steps=0, lr=3e-3, seed=0, threads=1)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def task():
    return synthetic_data(n_images=500, n_comparisons=5000, dim=32, seed=1)


@pytest.fixture(scope="module")
def trained(task):
    data, _ = task
    return train_ranker(data, small_config(), model_kind="tags")


def held_out_srcc(result, data, truth):
    v = result.split.val_images
    mean, _, _ = score_images(result.model, data.image_tokens[v], data.tag_tokens[v], data.tag_mask[v])
    return evaluate_scores(mean, ref_mean=truth[v])["srcc"]


# -- the measured claim: tags matter ---------------------------------------------------------------------
def test_tags_model_beats_image_only_baseline_on_held_out_srcc(task, trained):
    """Quality depends on whether the tags match the content: only the tags model can see that."""
    data, truth = task
    baseline = train_ranker(data, small_config(), model_kind="image_only", split=trained.split)
    tags_srcc, base_srcc = held_out_srcc(trained, data, truth), held_out_srcc(baseline, data, truth)
    assert tags_srcc > base_srcc + 0.15, (tags_srcc, base_srcc)
    # and the same on held-out human comparisons
    assert trained.metrics["pairwise_agreement"] > baseline.metrics["pairwise_agreement"] + 0.04


# -- learning ---------------------------------------------------------------------------------------------
def test_loss_falls_and_agreement_rises(trained):
    h = trained.history
    assert len(h) >= 3
    assert min(e["train_loss"] for e in h[1:]) < h[0]["train_loss"] - 0.05
    assert max(e["val_pairwise_agreement"] for e in h) > h[0]["val_pairwise_agreement"] + 0.02
    assert trained.metrics["pairwise_agreement"] == max(e["val_pairwise_agreement"] for e in h)
    assert trained.metrics["pairwise_agreement"] > 0.7
    assert trained.losses_used == {"pairwise": 1.0, "pairwise_lambda": 0.0, "emd": 1.0, "ranking": 1.0, "ranking_lambda": 0.0}


def test_progress_is_reported_and_early_stopping_keeps_the_best(task):
    data, _ = task
    seen = []
    r = train_ranker(data, small_config(epochs=30, patience=2, lr=2e-2), progress=seen.append)
    assert seen == r.history and all("val_pairwise_agreement" in e for e in seen)
    assert r.history[-1]["epoch"] < 30                        # stopped early
    best = max(e["val_pairwise_agreement"] for e in r.history)
    assert r.metrics["pairwise_agreement"] == pytest.approx(best)
    # patience is also counted in steps: short epochs do not stop a run too soon
    patient = train_ranker(data, small_config(epochs=len(r.history) + 2, patience=2, patience_steps=10_000, lr=2e-2))
    assert len(patient.history) == len(r.history) + 2


def test_a_split_by_comparison_judges_each_validation_comparison_on_its_own_two_images(task):
    """split_by_image=False (the platform's split): validation comparisons also involve training images."""
    data, _ = task
    r = train_ranker(data, small_config(epochs=2, split_by_image=False, val_fraction=0.1))
    v = r.split.val_comparisons
    assert not np.isin(data.comp_a[v], r.split.val_images).all()  # the case at hand
    mean, _, _ = score_images(r.model, data.image_tokens, data.tag_tokens, data.tag_mask)
    expected = evaluate_scores(mean, comparisons=(data.comp_a[v], data.comp_b[v], data.outcome[v]))
    assert r.metrics["pairwise_agreement"] == pytest.approx(expected["pairwise_agreement"])
    assert r.metrics["pairwise_agreement"] > 0.7


def test_max_steps_bounds_a_run_that_does_not_stop_early(task):
    data, _ = task
    r = train_ranker(data, small_config(epochs=30, max_steps=7, patience_steps=10_000, eval_every=5))
    assert r.metrics["steps"] == 7 and [e["step"] for e in r.history] == [5, 7]  # validated at the last step


def test_a_tiny_validation_set_neither_stops_training_nor_picks_the_weights():
    """A first model version: 240 comparisons, one step per epoch, 24 validation comparisons."""
    data, _ = synthetic_data(n_images=90, n_comparisons=240, dim=32, seed=3)
    cfg = small_config(epochs=5, batch_pairs=1024, val_fraction=0.1, split_by_image=False, patience=1,
                       min_steps=40, eval_every=0)
    r = train_ranker(data, cfg)
    assert r.metrics["selected_on"] == "last" and r.metrics["steps"] == 40  # min_steps, not 5 one-step epochs
    assert r.history[-1]["step"] == 40 and r.metrics["best_epoch"] == r.history[-1]["epoch"]
    # With enough validation comparisons the agreement picks the weights again.
    strict = train_ranker(data, small_config(epochs=5, batch_pairs=1024, val_fraction=0.1, split_by_image=False,
                                             min_val_comparisons=10))
    assert strict.metrics["selected_on"] == "pairwise_agreement" and strict.metrics["steps"] <= 5


def test_deterministic_under_a_seed(task):
    data, _ = task
    cfg = small_config(epochs=2)
    a, b = train_ranker(data, cfg), train_ranker(data, cfg)
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert [e["train_loss"] for e in a.history] == [e["train_loss"] for e in b.history]
    c = train_ranker(data, small_config(epochs=2, seed=5))
    assert not all(torch.equal(sa[k], c.model.state_dict()[k]) for k in sa)


def test_reference_distributions_alone_train_with_emd_and_ranking(task):
    data, truth = task
    refs_only = RankingData(data.image_tokens, data.tag_tokens, data.tag_mask, ref_dist=data.ref_dist,
                            similarity=data.similarity)
    r = train_ranker(refs_only, small_config(epochs=6, lam=0.5))
    assert r.losses_used == {"emd": 1.0, "ranking": 1.0, "ranking_lambda": 0.5}
    assert r.metrics["selected_on"] == "srcc" and r.metrics["srcc"] > 0.5
    # The reported EMD and KL are those of the kept model on the validation images, recomputed here.
    v = r.split.val_images[refs_only.ref_mask[r.split.val_images]]
    _, dist, _ = score_images(r.model, refs_only.image_tokens[v], refs_only.tag_tokens[v], refs_only.tag_mask[v])
    assert r.metrics["emd"] == pytest.approx(float(emd(refs_only.ref_dist[v], dist).mean()), rel=1e-4)
    assert r.metrics["kl"] == pytest.approx(float(kl_divergence(refs_only.ref_dist[v], dist).mean()), rel=1e-4)
    base = train_ranker(refs_only, small_config(epochs=1, lam=0.5), model_kind="image_only")
    assert base.losses_used["ranking_lambda"] == 0.0          # the baseline never sees tag similarity


def test_nothing_to_train_on_is_an_error(task):
    data, _ = task
    bare = RankingData(data.image_tokens, data.tag_tokens, data.tag_mask)
    with pytest.raises(ValueError, match="nothing to train"):
        train_ranker(bare, small_config())


def test_bad_data_is_refused(task):
    data, _ = task
    with pytest.raises(ValueError):
        RankingData(data.image_tokens, data.tag_tokens[:5], data.tag_mask[:5])
    with pytest.raises(ValueError):
        RankingData(data.image_tokens, data.tag_tokens, data.tag_mask, [0], [data.n_images], [1.0])


# -- split --------------------------------------------------------------------------------------------------
def test_split_by_image_has_no_leakage(task):
    data, _ = task
    s = split_data(data, 0.25, seed=3, by_image=True)
    val = set(s.val_images.tolist())
    assert not val & set(s.train_images.tolist())
    assert len(val) + len(s.train_images) == data.n_images
    for idx, inside in ((s.train_comparisons, False), (s.val_comparisons, True)):
        assert all((a in val) == inside and (b in val) == inside
                   for a, b in zip(data.comp_a[idx], data.comp_b[idx]))
    assert len(s.train_comparisons) + len(s.val_comparisons) + s.dropped_comparisons == data.n_comparisons
    assert s.dropped_comparisons > 0

    loose = split_data(data, 0.25, seed=3, by_image=False)
    assert loose.dropped_comparisons == 0
    assert len(loose.train_comparisons) + len(loose.val_comparisons) == data.n_comparisons


# -- checkpoints and scoring ---------------------------------------------------------------------------
def test_checkpoint_round_trips_exactly(trained, task, tmp_path):
    data, _ = task
    path = tmp_path / "ranker.pt"
    save_checkpoint(path, trained, {"encoder_id": "tiny-v1", "note": np.float32(0.25)})
    model, meta = load_checkpoint(path)
    s0, s1 = trained.model.state_dict(), model.state_dict()
    assert s0.keys() == s1.keys() and all(torch.equal(s0[k].cpu(), s1[k]) for k in s0)
    assert model.cfg == trained.model.cfg and model.kind == "tags"
    assert meta["encoder_id"] == "tiny-v1" and meta["note"] == 0.25
    assert meta["metrics"] == trained.metrics
    assert meta["counts"] == trained.counts
    assert meta["losses_used"] == trained.losses_used
    assert meta["train_config"]["ranker"]["width"] == 32
    a = score_images(trained.model, data.image_tokens, data.tag_tokens, data.tag_mask)
    b = score_images(model, data.image_tokens, data.tag_tokens, data.tag_mask)
    for x, y in zip(a, b):
        assert np.array_equal(x, y)
    # saving the loaded model again gives the same meta back
    save_checkpoint(tmp_path / "again.pt", model, meta)
    assert load_checkpoint(tmp_path / "again.pt")[1] == meta


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "foreign", "missing"])
def test_corrupt_checkpoint_raises_checkpoint_error(trained, tmp_path, damage):
    path = tmp_path / "ranker.pt"
    save_checkpoint(path, trained.model, {"encoder_id": "tiny-v1"})
    raw = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "flip":
        # flip bytes inside the largest stored tensor: the zip stays readable, the checksum does not
        import zipfile
        with zipfile.ZipFile(path) as z:
            info = max(z.infolist(), key=lambda i: i.file_size)
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 64
        broken = bytearray(raw)
        for i in range(start, start + 16):
            broken[i] ^= 0xFF
        path.write_bytes(bytes(broken))
    elif damage == "garbage":
        path.write_bytes(b"not a checkpoint at all" * 10)
    elif damage == "foreign":
        torch.save({"weights": torch.zeros(3)}, path)
    else:
        path.unlink()
    with pytest.raises(CheckpointError, match="ranker.pt"):
        load_checkpoint(path)


def test_score_images_shapes_and_batch_independence(trained, task):
    data, _ = task
    X, G, M = data.image_tokens[:50], data.tag_tokens[:50], data.tag_mask[:50]
    mean, dist, unc = score_images(trained.model, X, G, M, batch_size=7)
    assert mean.shape == (50,) and dist.shape == (50, 10) and unc.shape == (50,)
    assert mean.dtype == np.float32 and ((mean >= 1) & (mean <= 10)).all() and (unc >= 0).all()
    mean2, dist2, unc2 = score_images(trained.model, X, G, M, batch_size=1000)
    assert np.allclose(mean, mean2, atol=1e-5) and np.allclose(unc, unc2, atol=1e-5)
    empty = score_images(trained.model, X[:0], G[:0], M[:0])
    assert empty[0].shape == (0,) and empty[1].shape == (0, 10)


# -- the poster's ranking key on rater comparisons: score = quality + lambda * similarity --------------------
def test_lambda_moves_the_learned_ordering_towards_tag_relevance():
    """Tag relevance carries quality (matching tags add 2 points) and raters see quality only.

    With lambda > 0 the comparisons train score - lambda * sim, so the learned score ranks images whose
    tags match their content (high CLIP similarity) higher: the score gap between matching and
    non-matching held-out images grows, and so does the agreement with the true quality on this set.
    """
    data, q, latents = synthetic_data(n_images=500, n_comparisons=1500, dim=32, seed=1, return_latents=True)
    comparisons_only = RankingData(data.image_tokens, data.tag_tokens, data.tag_mask, data.comp_a, data.comp_b,
                                   data.outcome, similarity=data.similarity)
    tagged, match = data.tag_mask.any(axis=1), latents["match"]
    assert data.similarity[match].mean() > data.similarity[tagged & ~match].mean() + 0.3  # the set's premise

    def fit(lam):
        r = train_ranker(comparisons_only, small_config(lam=lam, min_steps=200))
        v = r.split.val_images
        mean, _, _ = score_images(r.model, data.image_tokens[v], data.tag_tokens[v], data.tag_mask[v])
        gap = mean[match[v]].mean() - mean[tagged[v] & ~match[v]].mean()
        return r, gap, evaluate_scores(mean, ref_mean=q[v])["srcc"]

    plain, gap0, srcc0 = fit(0.0)
    keyed, gap2, srcc2 = fit(2.0)
    assert plain.losses_used["pairwise_lambda"] == 0.0 and keyed.losses_used["pairwise_lambda"] == 2.0
    assert gap2 > gap0 + 0.5, (gap0, gap2)        # measured: 2.76 -> 4.40 score points
    assert srcc2 > srcc0 + 0.03, (srcc0, srcc2)   # measured: .642 -> .749
    # The image-only baseline never sees the similarity, so lambda does not touch it.
    base = train_ranker(comparisons_only, small_config(lam=2.0, epochs=1), model_kind="image_only")
    assert base.losses_used["pairwise_lambda"] == 0.0


@pytest.mark.parametrize("device", DEVICES)
def test_training_runs_on_the_device_with_its_precision(device, task, tmp_path):
    """The same training code on each device: AMP (autocast, GradScaler for fp16) on CUDA, fp32 on CPU.
    A checkpoint reloads onto the device it is asked for and scores the same there."""
    data, _ = task
    r = train_ranker(data, small_config(epochs=2, device=device))
    assert next(r.model.parameters()).device.type == device
    assert all(p.dtype == torch.float32 for p in r.model.parameters())   # weights stay fp32 under autocast
    assert r.history[-1]["train_loss"] < r.history[0]["train_loss"] + 0.05 and np.isfinite(r.history[-1]["train_loss"])
    path = tmp_path / "m.pt"
    save_checkpoint(path, r)
    on_device, _ = load_checkpoint(path, device=device)
    on_cpu, _ = load_checkpoint(path, device="cpu")
    assert next(on_device.parameters()).device.type == device
    x = (data.image_tokens[:64], data.tag_tokens[:64], data.tag_mask[:64])
    np.testing.assert_allclose(score_images(on_device, *x)[0], score_images(on_cpu, *x)[0], atol=1e-3)


def test_float16_features_train_without_a_float32_copy(task):
    """The feature store hands training float16 tokens (half the memory); they stay float16 in RankingData."""
    data, _ = task
    half = RankingData(data.image_tokens.astype(np.float16), data.tag_tokens, data.tag_mask, data.comp_a,
                       data.comp_b, data.outcome, similarity=data.similarity)
    assert half.image_tokens.dtype == np.float16
    r16 = train_ranker(half, small_config(epochs=3))
    r32 = train_ranker(RankingData(data.image_tokens, data.tag_tokens, data.tag_mask, data.comp_a, data.comp_b,
                                   data.outcome, similarity=data.similarity), small_config(epochs=3))
    assert abs(r16.metrics["pairwise_agreement"] - r32.metrics["pairwise_agreement"]) < 0.02
    mean, _, _ = score_images(r16.model, half.image_tokens[:10], half.tag_tokens[:10], half.tag_mask[:10])
    assert mean.dtype == np.float32 and np.isfinite(mean).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_the_mixed_precision_path_trains_on_the_cpu_too(task, dtype):
    """The CUDA code path (autocast, GradScaler for fp16, fp32 losses and expected scores), run on the CPU,
    learns as well as fp32: what a GPU runs is tested on every host."""
    from modeling.ml.device import Runtime

    data, truth = task
    rt = Runtime(torch.device("cpu"), dtype, "test")
    half = train_ranker(data, small_config(epochs=4), rt=rt)
    full = train_ranker(data, small_config(epochs=4), split=half.split)
    assert all(p.dtype == torch.float32 for p in half.model.parameters())
    assert np.isfinite([e["train_loss"] for e in half.history]).all()
    assert half.metrics["pairwise_agreement"] > full.metrics["pairwise_agreement"] - 0.03
    assert held_out_srcc(half, data, truth) > held_out_srcc(full, data, truth) - 0.05
