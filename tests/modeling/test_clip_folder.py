"""The real-CLIP path end to end: a folder laid out like the hub's openai/clip-vit-base-patch32 (random
weights, CLIP's real tokenizer files, preprocessor_config.json), chosen with TAGRANK_ENCODER, through
import -> features -> train -> score -> explain."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from modeling.ml.encoder import load_encoder
from tests.modeling.clip_folder import build_clip_folder
from tests.modeling.devices import DEVICES


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    return build_clip_folder(tmp_path_factory.mktemp("clip-vit-base-patch32"))


def test_the_folder_has_the_hub_layout_and_clip_token_ids(clip_folder):
    from transformers import CLIPImageProcessorPil, CLIPTokenizer

    assert {"config.json", "model.safetensors", "preprocessor_config.json", "vocab.json", "merges.txt",
            "tokenizer.json", "tokenizer_config.json"} <= set(os.listdir(clip_folder))
    config = json.loads((clip_folder / "config.json").read_text())
    assert config["projection_dim"] == 512 and config["text_config"]["vocab_size"] == 49408
    assert (config["vision_config"]["image_size"], config["vision_config"]["patch_size"]) == (224, 32)
    tokenizer = CLIPTokenizer.from_pretrained(clip_folder)
    # CLIP's own ids for this text: start, a, photo, of, a, cat, end.
    assert tokenizer("a photo of a cat")["input_ids"] == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert len(tokenizer) == 49408
    encoder = load_encoder(str(clip_folder), device="cpu")
    assert isinstance(encoder.processor, CLIPImageProcessorPil)
    assert encoder.processor.crop_size["height"] == 224 and encoder.processor.size["shortest_edge"] == 224


@pytest.mark.parametrize("device", DEVICES)
def test_the_clip_folder_encodes_on_the_device(clip_folder, device):
    from PIL import Image

    encoder = load_encoder(str(clip_folder), device=device)
    pictures = [Image.new("RGB", (320, 200), (200, 30, 30)), Image.new("L", (64, 500), 90)]
    tokens = encoder.encode_images(pictures)
    assert tokens.shape == (2, 5, 512) and tokens.dtype == np.float32
    assert np.allclose(np.linalg.norm(tokens, axis=-1), 1.0, atol=1e-3)
    texts = encoder.encode_texts(["sunset", "a photo of a cat on a sofa"])
    assert texts.shape == (2, 512) and not np.allclose(texts[0], texts[1], atol=1e-3)


@pytest.mark.django_db
def test_import_features_train_score_explain_through_tagrank_encoder(clip_folder, settings, project, rater,
                                                                     manager, image_bytes):
    from modeling.models import ImageFeatures, ImageScore
    from modeling.services import explanations, scoring
    from modeling.services import feature_extraction as features
    from tests.modeling.model_loop_support import add_images, fast_training, simulate_comparisons
    from tests.modeling.test_training_service import train_now

    settings.TAGRANK_ENCODER = str(clip_folder)
    settings.TAGRANK_TRAINING_HEARTBEAT_SECONDS = 0
    images = add_images(project, 16, image_bytes)            # the import, as an upload stores them
    fast_training(project)
    simulate_comparisons(project, rater, images, 200)

    run, _ = train_now(project, user=manager, reason="real CLIP layout")   # extracts the features first
    assert run.status == run.Status.SUCCEEDED, run.error
    version = run.model_version
    assert version.encoder_id == str(clip_folder.resolve())
    assert ImageFeatures.objects.filter(encoder_id=version.encoder_id).count() == 16
    assert features.feature_store(version.encoder_id).get_images([images[0].pk]).shape == (1, 5, 512)

    assert scoring.rescore(version.pk)["activated"]
    assert ImageScore.objects.filter(model_version=version).count() == 16

    explanation = explanations.explain(images[3])            # tags and a caption: image 3 has both
    assert explanation["model_version"] == version.pk
    assert [t["kind"] for t in explanation["texts"]] == ["tag", "tag", "caption"]
    assert sum(t["attention"] for t in explanation["texts"]) == pytest.approx(1.0, abs=1e-4)
    assert explanation["score"] == pytest.approx(explanation["stored_score"], abs=1e-3)
    assert len(explanation["regions"]["deltas"]) == 2         # the 2x2 region grid
