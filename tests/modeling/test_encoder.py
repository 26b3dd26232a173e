"""The tiny CLIP encoder (offline) and the feature store."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from modeling.ml.encoder import TINY_ID, image_tag_similarity, load_encoder
from modeling.ml.features import FeatureStore
from tests.modeling.devices import DEVICES


@pytest.fixture(scope="module")
def encoder():
    return load_encoder("tiny", device="cpu")


def pictures(n, seed=0, size=(80, 60)):
    rng = np.random.default_rng(seed)
    return [Image.fromarray((rng.random((size[1], size[0], 3)) * 255).astype("uint8")) for _ in range(n)]


def test_image_tokens_shape_norm_and_determinism(encoder):
    tokens = encoder.encode_images(pictures(3), batch_size=2)
    assert encoder.encoder_id == TINY_ID
    assert tokens.shape == (3, encoder.n_tokens, encoder.dim) == (3, 5, 64)
    assert tokens.dtype == np.float32
    assert np.allclose(np.linalg.norm(tokens, axis=-1), 1.0, atol=1e-5)
    # seeded weights: a second encoder gives the same features; batching does not matter
    again = load_encoder("tiny", device="cpu").encode_images(pictures(3), batch_size=3)
    assert np.allclose(tokens, again, atol=1e-5)
    # different pictures, different tokens
    assert not np.allclose(tokens[0], tokens[1], atol=1e-3)
    assert encoder.encode_images([]).shape == (0, 5, 64)


def test_any_size_and_mode_is_accepted(encoder):
    odd = [Image.new("L", (300, 40), 128), Image.new("RGBA", (17, 200), (10, 200, 30, 255))]
    assert encoder.encode_images(odd).shape == (2, 5, 64)


def test_region_count_changes_tokens_and_encoder_id():
    enc = load_encoder("tiny", device="cpu", regions=1)
    assert enc.encode_images(pictures(1)).shape == (1, 2, 64)
    assert enc.encoder_id != TINY_ID  # features of another token layout never mix


def test_tokenizer_ids_match_the_text_config(encoder):
    text_config = encoder.model.config.text_config
    tok = encoder.tokenizer
    assert (text_config.bos_token_id, text_config.eos_token_id, text_config.pad_token_id) == (
        tok.bos_token_id, tok.eos_token_id, tok.pad_token_id)


def test_text_embeddings_do_not_depend_on_padding(encoder):
    # CLIP pools at the eos token: with wrong ids a padded short text would read a pad position.
    texts = ["sunset", "a very long caption about a dog running on the beach at dawn", "cat"]
    together = encoder.encode_texts(texts)
    alone = np.concatenate([encoder.encode_texts([t]) for t in texts])
    assert together.shape == (3, 64) and together.dtype == np.float32
    assert np.allclose(np.linalg.norm(together, axis=-1), 1.0, atol=1e-5)
    assert np.allclose(together, alone, atol=1e-5)
    assert not np.allclose(together[0], together[2], atol=1e-3)


def test_image_tag_similarity_is_the_mean_cosine_of_the_class_token(encoder):
    image_tokens = encoder.encode_images(pictures(2))
    tags = encoder.encode_texts(["red", "blue", "green"])
    tag_tokens = np.stack([tags, tags])
    mask = np.array([[True, True, False], [False, False, False]])
    sim = encoder.similarity(image_tokens, tag_tokens, mask)
    expected = (tags[:2] @ image_tokens[0, 0]).mean()
    assert sim.shape == (2,)
    assert sim[0] == pytest.approx(expected, abs=1e-5)
    assert sim[1] == 0.0
    assert image_tag_similarity(image_tokens, tag_tokens, mask)[0] == pytest.approx(sim[0])


def test_local_folder_loads_like_the_hub(encoder, tmp_path):
    encoder.model.save_pretrained(tmp_path)
    encoder.tokenizer.save_pretrained(tmp_path)
    local = load_encoder(str(tmp_path), device="cpu")
    assert local.encoder_id == str(Path(tmp_path).resolve())
    imgs = pictures(2, seed=3)
    assert np.allclose(local.encode_images(imgs), encoder.encode_images(imgs), atol=1e-5)
    assert np.allclose(local.encode_texts(["sunset", "dog"]), encoder.encode_texts(["sunset", "dog"]), atol=1e-5)


def test_environment_variable_picks_the_encoder(monkeypatch):
    monkeypatch.setenv("TAGRANK_ENCODER", "tiny")
    assert load_encoder(None, device="cpu").encoder_id == TINY_ID


# -- feature store -------------------------------------------------------------------------------------
def test_feature_store_round_trip_and_missing(tmp_path):
    store = FeatureStore(tmp_path, TINY_ID)
    tokens = np.random.default_rng(0).standard_normal((3, 5, 8)).astype(np.float32)
    store.put_images([7, 1234567, 42], tokens)
    got = store.get_images([42, 7])
    assert got.dtype == np.float32                   # stored as float16, read back as float32
    np.testing.assert_array_equal(got, tokens[[2, 0]].astype(np.float16).astype(np.float32))
    assert store.has_images([7, 8]).tolist() == [True, False]
    assert store.missing_images([7, 8, 9, 42]) == [8, 9]
    with pytest.raises(KeyError, match="8"):
        store.get_images([7, 8])

    emb = np.eye(4, dtype=np.float32)[:3]
    store.put_texts(["sunset", "beach", "a photo of a dog / cat"], emb)
    assert np.array_equal(store.get_texts(["a photo of a dog / cat", "sunset"]), emb[[2, 0]])
    assert store.missing_texts(["sunset", "Sunset", "sunset"]) == ["Sunset"]
    # a second store on the same folder (another worker) sees the same arrays
    np.testing.assert_allclose(FeatureStore(tmp_path, TINY_ID).get_images([1234567]), tokens[1:2], rtol=1e-3)


def test_feature_store_keeps_encoders_apart(tmp_path):
    a, b = FeatureStore(tmp_path, TINY_ID), FeatureStore(tmp_path, "openai/clip-vit-base-patch32")
    a.put_images([1], np.ones((1, 5, 8)))
    a.put_texts(["x"], np.ones((1, 8)))
    assert b.missing_images([1]) == [1] and b.missing_texts(["x"]) == ["x"]
    assert a.folder != b.folder and a.folder.parent == b.folder.parent


def test_feature_store_writes_are_atomic(tmp_path, monkeypatch):
    store = FeatureStore(tmp_path, TINY_ID)
    store.put_images([5], np.zeros((1, 5, 8)))
    # a writer that dies half way leaves the previous array and no temporary file behind
    def boom(f, arr):
        f.write(b"partial")
        raise OSError("disk full")
    monkeypatch.setattr(np, "save", boom)
    with pytest.raises(OSError):
        store.put_images([5], np.ones((1, 5, 8)))
    monkeypatch.undo()
    assert np.array_equal(store.get_images([5]), np.zeros((1, 5, 8)))
    leftovers = [p for p in Path(store.folder).rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []
    assert sorted(os.listdir(store.folder)) == ["encoder.json", "shards"]
    assert len(os.listdir(store.shards)) == 2        # the first shard's tokens and ids, nothing of the failed one


def test_feature_store_shards_many_images_per_file_and_the_newest_write_wins(tmp_path):
    store = FeatureStore(tmp_path, TINY_ID)
    rng = np.random.default_rng(1)
    first = rng.standard_normal((300, 5, 8)).astype(np.float32)
    store.put_images(range(300), first)
    assert len(os.listdir(store.shards)) == 2        # 300 images: one tokens file and one ids file
    again = rng.standard_normal((2, 5, 8)).astype(np.float32)
    store.put_images([3, 299], again)                # re-extracted images: the newer shard wins
    other = FeatureStore(tmp_path, TINY_ID)          # another worker, after both writes
    for reader in (store, other):
        np.testing.assert_allclose(reader.get_images([3, 4, 299]), np.stack([again[0], first[4], again[1]]), rtol=1e-3)
    later = FeatureStore(tmp_path, TINY_ID)
    assert later.missing_images([500]) == [500]
    store.put_images([500], first[:1])               # written after `later` indexed the folder
    assert later.missing_images([500]) == [] and later.get_images([500]).shape == (1, 5, 8)
    half = other.get_images(list(range(300)), dtype=np.float16)
    assert half.dtype == np.float16 and half.shape == (300, 5, 8)
    with pytest.raises(ValueError, match="float16"):
        store.put_images([1], np.full((1, 5, 8), 1e6))


def test_feature_store_reads_the_older_per_image_layout(tmp_path):
    store = FeatureStore(tmp_path, TINY_ID)
    old = np.random.default_rng(2).standard_normal((5, 8)).astype(np.float32)
    path = store.folder / "images" / "1" / "1234.npy"  # how features were stored before the shards
    path.parent.mkdir(parents=True)
    np.save(path, old)
    store.put_images([7], old[None])
    assert store.missing_images([1234, 7, 8, 1235, 2234]) == [8, 1235, 2234]  # 2234: a folder not there
    both = store.get_images([1234, 7])
    assert np.array_equal(both[0], old) and np.allclose(both[1], old, rtol=1e-3)


def test_feature_store_refuses_length_mismatch(tmp_path):
    store = FeatureStore(tmp_path, TINY_ID)
    with pytest.raises(ValueError):
        store.put_images([1, 2], np.zeros((1, 5, 8)))
    with pytest.raises(ValueError):
        store.put_texts(["a"], np.zeros((2, 8)))


@pytest.mark.parametrize("device", DEVICES)
def test_the_encoder_runs_on_the_device_with_fp32_weights_and_matches_the_cpu(encoder, device):
    """Weights stay float32 on every device; on CUDA autocast (bf16/fp16) computes, so features
    agree with the CPU's to half precision, not bit for bit."""
    on_device = load_encoder("tiny", device=device)
    assert on_device.device.type == device
    assert all(p.dtype == torch.float32 and p.device.type == device for p in on_device.model.parameters())
    imgs = pictures(4, seed=5)
    tokens = on_device.encode_images(imgs)
    assert tokens.dtype == np.float32 and tokens.shape == (4, 5, 64)
    tolerance = 1e-5 if device == "cpu" else 3e-2
    np.testing.assert_allclose(tokens, encoder.encode_images(imgs), atol=tolerance)
    np.testing.assert_allclose(on_device.encode_texts(["sunset"]), encoder.encode_texts(["sunset"]), atol=tolerance)


def test_preprocessing_is_transformers_clip_image_processor(encoder):
    from transformers import CLIPImageProcessorPil

    assert isinstance(encoder.processor, CLIPImageProcessorPil)
    px = encoder.processor(images=pictures(1, size=(120, 64)), return_tensors="pt")["pixel_values"]
    assert tuple(px.shape) == (1, 3, 64, 64)          # shortest side to 64, centre crop 64 x 64
