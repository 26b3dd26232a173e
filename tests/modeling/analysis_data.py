"""Small fixtures for the analyses and explanations tests: seeded rankers and hand-made features."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from labeling.models import ImageTag, Tag
from modeling.models import HumanScore, ModelVersion

DIM = 16
TOKENS = 5  # class token + a 2 x 2 region grid, as the encoder's default


def tag_images(project, assignments: dict[str, list]) -> None:
    """assignments: tag name -> images carrying it."""
    for name, images in assignments.items():
        tag, _ = Tag.objects.get_or_create(project=project, name=name)
        ImageTag.objects.bulk_create([ImageTag(image=image, tag=tag) for image in images])


def set_human_scores(project, images, means) -> None:
    HumanScore.objects.bulk_create([
        HumanScore(project=project, image=image, mean=float(m), variance=0.1, n_comparisons=3, fitted_at=timezone.now())
        for image, m in zip(images, means)
    ])  # fmt: skip


def ranker(kind: str = "tags", seed: int = 0, dim: int = DIM):
    from modeling.ml.ranker import RankerConfig, build_ranker

    torch.manual_seed(seed)
    cfg = RankerConfig(input_dim=dim, width=16, heads=2, ensemble=2, layers=1)
    model = build_ranker(kind, cfg)
    # Larger output weights than the initialisation so that inputs visibly move the score.
    with torch.no_grad():
        for head in model.score_heads.heads:
            head[-1].weight.mul_(20)
    return model.eval()


def attach_weights(version: ModelVersion, tags_model, baseline_model=None) -> ModelVersion:
    """Store the rankers' checkpoints as a trained version's weights (and baseline weights)."""
    from modeling.ml.checkpoints import save_checkpoint

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "w.pt"
        save_checkpoint(path, tags_model, {"encoder_id": version.encoder_id})
        with open(path, "rb") as handle:
            version.weights.save(f"v{version.pk}.pt", File(handle), save=True)
        if baseline_model is not None:
            save_checkpoint(path, baseline_model, {"encoder_id": version.encoder_id})
            with open(path, "rb") as handle:
                version.config["baseline_weights"] = default_storage.save(f"models/v{version.pk}-baseline.pt", File(handle))
            version.save(update_fields=["config"])
    return version


def write_baseline_cache(version: ModelVersion, images, means) -> None:
    """Pretend the baseline already scored these images (the service's cache file)."""
    version.config["baseline_weights"] = "models/not-read-when-every-image-is-cached.pt"
    version.save(update_fields=["config"])
    data = {str(image.pk): float(m) for image, m in zip(images, means)}
    default_storage.save(f"analyses/v{version.pk}/baseline_scores.json", ContentFile(json.dumps(data).encode()))


def put_features(version: ModelVersion, images, texts: list[str], seed: int = 0) -> dict:
    """Random unit image tokens for the images and unit embeddings for the texts, in the version's store."""
    from modeling.services.feature_extraction import feature_store

    rng = np.random.default_rng(seed)
    store = feature_store(version.encoder_id)

    def unit(x):
        return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)

    # The store keeps image tokens in float16: expectations use the values it gives back.
    tokens = unit(rng.normal(size=(len(images), TOKENS, DIM))).astype(np.float16).astype(np.float32)
    store.put_images([image.pk for image in images], tokens)
    embeddings = unit(rng.normal(size=(len(texts), DIM))) if texts else np.zeros((0, DIM), np.float32)
    if texts:
        store.put_texts(texts, embeddings)
    return {"tokens": dict(zip([i.pk for i in images], tokens)), "texts": dict(zip(texts, embeddings))}
