"""The quality-stats encoder (technical-quality statistics, no weights) and the generated degraded set."""
import numpy as np
import pytest
from PIL import Image, ImageFilter
from scipy.stats import spearmanr

from modeling.ml.degraded_set import degrade, judge, load_content, make_degraded_set, random_pairs
from modeling.ml.encoder import load_encoder
from modeling.ml.features import FeatureStore
from modeling.ml.quality_stats import (N_STATS, QUALITY_STATS_ID, STAT_NAMES, QualityStatsConfig,
                                       QualityStatsEncoder, blur_maps, square_pixels)
from modeling.ml.ranker import RankerConfig
from modeling.ml.training import TrainConfig, score_images, train_ranker
from modeling.ml.training_data import RankingData


@pytest.fixture(scope="module")
def encoder():
    return load_encoder("quality-stats")


@pytest.fixture(scope="module")
def photo():
    """A 256 x 256 natural photo (scikit-image's motorcycle, not one of the demo ladder's)."""
    return load_content("motorcycle_right.png").crop((200, 100, 456, 356))


def stat(tokens, name, token=0):
    return float(tokens[token, STAT_NAMES.index(name)])


def test_tokens_shape_dtype_determinism_and_any_input(encoder, photo):
    assert isinstance(encoder, QualityStatsEncoder) and encoder.encoder_id == QUALITY_STATS_ID
    odd = [photo, Image.new("L", (300, 40), 128), Image.new("RGBA", (17, 200), (10, 200, 30, 255)),
           Image.new("RGB", (1, 1))]
    tokens = encoder.encode_images(odd)
    assert tokens.shape == (4, encoder.n_tokens, encoder.dim) == (4, 5, N_STATS + 64)
    assert tokens.dtype == np.float32 and np.isfinite(tokens).all()
    assert np.array_equal(tokens, encoder.encode_images(odd))                 # deterministic
    assert np.array_equal(tokens[:, :, N_STATS:], np.zeros_like(tokens[:, :, N_STATS:]))  # text dims unused
    assert not np.allclose(tokens[0, 1], tokens[0, 4])                       # regions differ
    assert encoder.encode_images([]).shape == (0, 5, N_STATS + 64)
    one = load_encoder("quality-stats", regions=1)
    assert one.encode_images([photo]).shape == (1, 2, N_STATS + 64) and one.encoder_id != QUALITY_STATS_ID


@pytest.mark.parametrize("kind, levels, name", [
    ("blur", (0.8, 0, 0), "s1_blur"),
    ("noise", (0, 0.5, 0), "s1_noise"),
    ("jpeg", (0, 0, 0.85), "blockiness_h"),
])
def test_each_distortion_raises_its_statistic(encoder, photo, kind, levels, name):
    clean, worse = encoder.encode_images([photo, degrade(photo, levels, np.random.default_rng(0))])
    # by more than one standard deviation of the generated set (the standardisation constants)
    assert stat(worse, name) > stat(clean, name) + 1.0, (kind, stat(clean, name), stat(worse, name))


def test_a_colour_cast_shows_in_the_white_patch_and_grey_edge(encoder, photo):
    pixels = np.asarray(photo, dtype=np.float32) * np.array([1.3, 1.0, 0.7], dtype=np.float32)
    warm = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    clean, cast = encoder.encode_images([photo, warm])
    assert stat(cast, "white_yb") > stat(clean, "white_yb") + 1.0
    assert stat(cast, "edge_yb") > stat(clean, "edge_yb") + 1.0


def test_region_tokens_see_where_the_blur_is(encoder, photo):
    blurred = photo.copy()
    blurred.paste(photo.crop((0, 0, 128, 128)).filter(ImageFilter.GaussianBlur(3)), (0, 0))  # top-left only
    clean, partly = encoder.encode_images([photo, blurred])
    rise = [stat(partly, "s1_blur", t) - stat(clean, "s1_blur", t) for t in range(5)]
    assert rise[1] > 0.5 and max(abs(r) for r in rise[2:]) < 0.3 * rise[1]  # region 1 is the top-left cell
    assert 0 < rise[0] < rise[1]                                             # the whole square: partly


def test_blur_matches_scikit_image_blur_effect(photo):
    from skimage.measure import blur_effect

    grey = square_pixels(photo) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    for radius in (0, 1, 3):
        g = np.asarray(Image.fromarray((grey * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(radius)),
                       dtype=np.float32) / 255
        assert blur_maps(g, 2)[0] == pytest.approx(blur_effect(g), abs=0.02)


def test_noise_and_highs_match_their_library_versions(photo):
    from skimage.restoration import estimate_sigma

    from modeling.ml.quality_stats import channel_highs, noise_sigma

    rgb = square_pixels(degrade(photo, (0, 0.4, 0), np.random.default_rng(1)))
    grey = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    assert noise_sigma(grey) == pytest.approx(estimate_sigma(grey, channel_axis=None), rel=1e-6)
    assert noise_sigma(np.full((16, 16), 0.5, np.float32)) == pytest.approx(0.0, abs=1e-9)  # flat: no noise
    assert np.allclose(channel_highs(rgb), np.percentile(rgb.reshape(-1, 3), 99.9, axis=0))


def test_texts_hashed_normalised_and_orthogonal_to_images(encoder, photo):
    emb = encoder.encode_texts(["cat", "Cat!", "black and white", "white cat"])
    assert emb.shape == (4, encoder.dim) and emb.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-6)
    assert np.allclose(emb[0], emb[1])                                      # case and punctuation
    assert emb[0] @ emb[3] > 0.3 and abs(emb[0] @ emb[2]) < 0.3             # shared words share components
    assert np.array_equal(emb, QualityStatsEncoder().encode_texts(["cat", "Cat!", "black and white", "white cat"]))
    tokens = encoder.encode_images([photo])
    assert encoder.similarity(tokens, emb[None, :2]) == pytest.approx([0.0])


def test_features_round_trip_the_feature_store(tmp_path, encoder, photo):
    store = FeatureStore(tmp_path, encoder.encoder_id)
    tokens = encoder.encode_images([photo, photo.transpose(Image.Transpose.FLIP_TOP_BOTTOM)])
    store.put_images([7, 8], tokens)
    store.put_texts(["cat"], encoder.encode_texts(["cat"]))
    # The store keeps float16: standardised statistics (|z| <= CLIP_Z) come back within its precision.
    np.testing.assert_allclose(store.get_images([7, 8]), tokens, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(store.get_texts(["cat"]), encoder.encode_texts(["cat"]), rtol=1e-3, atol=1e-3)


def test_standardisation_constants_are_applied(photo):
    raw = QualityStatsEncoder(QualityStatsConfig(standardise=False)).encode_images([photo])
    std = QualityStatsEncoder().encode_images([photo])
    from modeling.ml.quality_stats import CLIP_Z, STAT_MEAN, STAT_STD

    assert np.allclose(std[..., :N_STATS], np.clip((raw[..., :N_STATS] - STAT_MEAN) / STAT_STD, -CLIP_Z, CLIP_Z),
                       atol=1e-5)
    assert STAT_MEAN.shape == STAT_STD.shape == (N_STATS,) and (STAT_STD > 0).all()


# -- the generated set ---------------------------------------------------------------------------------------
def test_degraded_set_is_reproducible_with_a_standardised_latent_quality():
    a, b = make_degraded_set(12, seed=4, size=64), make_degraded_set(12, seed=4, size=64)
    assert [np.asarray(i).tobytes() for i in a.images] == [np.asarray(i).tobytes() for i in b.images]
    assert a.images[0].size == (64, 64) and a.levels.shape == (12, 3)
    assert a.quality.mean() == pytest.approx(0, abs=1e-9) and a.quality.std() == pytest.approx(1)
    assert spearmanr(a.quality, -a.levels.sum(axis=1)).statistic == pytest.approx(1.0)
    pairs = random_pairs(12, 500, np.random.default_rng(0))
    assert (pairs[:, 0] != pairs[:, 1]).all()
    better_first = a.quality[pairs[:, 0]] > a.quality[pairs[:, 1]] + 1
    assert judge(a.quality, pairs, np.random.default_rng(0))[better_first].mean() > 0.8


# -- what the features let the ranker learn ------------------------------------------------------------------
def small_config(**kw):
    base = dict(ranker=RankerConfig(width=32, heads=2, ensemble=3), epochs=10, batch_pairs=512, batch_images=128,
                eval_every=0, patience=4, patience_steps=0, lr=3e-3, seed=0, threads=1)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def tagged_task(encoder):
    """Generated images whose quality is their technical quality plus what one of their tags says."""
    ds = make_degraded_set(300, seed=3, size=128)
    rng = np.random.default_rng(3)
    vocabulary = ["keeper", "reject", "holiday", "beach"]              # the first two carry quality
    tag = rng.integers(0, len(vocabulary), ds.quality.shape[0])
    truth = ds.quality + 2.0 * (tag == 0) - 2.0 * (tag == 1)
    tokens = encoder.encode_images(ds.images)
    tag_tokens = encoder.encode_texts(vocabulary)[tag][:, None, :]          # [N,1,D]
    pairs = random_pairs(len(truth), 4000, rng)
    outcome = judge(truth, pairs, rng, noise=0.5)
    data = RankingData(tokens, tag_tokens, np.ones((len(truth), 1), bool), pairs[:, 0], pairs[:, 1], outcome)
    return data, truth, ds.quality


def held_out_srcc(result, data, truth):
    v = result.split.val_images
    mean, _, _ = score_images(result.model, data.image_tokens[v], data.tag_tokens[v], data.tag_mask[v])
    return spearmanr(mean, truth[v]).statistic


def test_tags_model_beats_image_only_baseline_on_held_out_srcc(tagged_task):
    data, truth, technical = tagged_task
    tags = train_ranker(data, small_config(), model_kind="tags")
    baseline = train_ranker(data, small_config(), model_kind="image_only", split=tags.split)
    tags_srcc, base_srcc = held_out_srcc(tags, data, truth), held_out_srcc(baseline, data, truth)
    assert tags_srcc > base_srcc + 0.1, (tags_srcc, base_srcc)
    # The image-only model still sees the technical part of the quality on images it never saw compared.
    assert held_out_srcc(baseline, data, technical) > 0.3


def test_benchmark_uses_the_platform_training_defaults():
    from quality_stats import PLATFORM_TRAIN_DEFAULTS
    from modeling.services import training_runs

    assert PLATFORM_TRAIN_DEFAULTS == training_runs.PLATFORM_TRAIN_DEFAULTS


def test_settings_default_and_encoder_id_without_loading(settings):
    from modeling.services import feature_extraction as features

    settings.TAGRANK_ENCODER = "quality-stats"
    assert features.encoder_id_for() == QUALITY_STATS_ID == features.current_encoder().encoder_id
