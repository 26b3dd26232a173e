"""Why an image got its score: which of its texts moved it, and which image regions mattered.

For one image and one model version (default: the project's active one):

- *Attention*: the cross-attention weight each of the image's texts (its tags, then its caption, as the
  ranker reads them: ``feature_extraction.texts_by_image``) received, averaged over layers, heads and image
  tokens (``TagRanker.forward``'s ``tag_attention``). They sum to 1 over the texts.
- *Leave one tag out*: the score with that text removed from the input, and ``delta = score - that``:
  positive when the text raised the score. Attention says where the model looked; the difference says
  what it changed, and the two need not agree.
- *Regions*: occlusion of the region tokens (the encoder's patch tokens pooled to a grid over the
  centre square crop it sees). Each region token in turn is replaced by the mean of the image's region
  tokens (a "typical" region of this image, so the input stays in distribution) and
  ``delta = score - occluded score``: positive where the region raised the score. Drawn as a red
  (raised) / blue (lowered) overlay on the image, in the image's own aspect ratio; the part outside
  the encoder's crop is dimmed. An image without texts still gets its region map.

Scores here are the deterministic forward pass (dropout off): for the default ensemble model that is
exactly the stored score. Computed on request and cached per version under the media storage
(``explanations/v<version>/<image>.json`` and ``.png``); a version never changes, so the cache never
goes stale.
"""
from __future__ import annotations

import io
import json
import math
import time

import numpy as np
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from core.refusals import Refusal
from labeling.models import Image, ImageTag
from modeling.models import ImageScore, ModelVersion

MAX_PNG_SIDE = 640
OVERLAY_ALPHA = 0.55


class ExplanationUnavailable(Refusal):
    """No version to explain with, or no features for the image under the version's encoder."""

    code = "no_model"


def explained_version(image: Image, version_id: int | None = None) -> ModelVersion:
    versions = ModelVersion.objects.filter(project_id=image.project_id).exclude(weights="")
    version = versions.filter(pk=version_id).first() if version_id else (
        versions.filter(is_active=True).first() or versions.first())
    if version is None:
        raise ExplanationUnavailable("No trained model version with weights to explain this image with.")
    return version


def cache_names(version: ModelVersion, image: Image) -> tuple[str, str]:
    stem = f"explanations/v{version.pk}/{image.pk}"
    return f"{stem}.json", f"{stem}.png"


# --- Inputs ---------------------------------------------------------------------------------------


def image_inputs(image: Image, version: ModelVersion):
    """(image tokens [T,D], texts, kinds, text embeddings [K,D]) from the version's feature store."""
    from modeling.services import feature_extraction

    store = feature_extraction.feature_store(version.encoder_id)
    if store.missing_images([image.pk]):
        if version.encoder_id != feature_extraction.encoder_id_for():
            raise ExplanationUnavailable(f"Image {image.pk} has no features of the version's encoder {version.encoder_id}.")
        report = feature_extraction.extract_features([image.pk])
        if report.failed:
            raise ExplanationUnavailable(f"Cannot read image {image.pk}: {report.failed[0][1]}")
    tokens = store.get_images([image.pk])[0]
    texts = feature_extraction.texts_by_image([image.pk])[image.pk]
    tag_names = set(ImageTag.objects.filter(image=image).values_list("tag__name", flat=True))
    kinds = ["tag" if text in tag_names else "caption" for text in texts]
    if texts:
        feature_extraction.ensure_text_features(store, texts)
        embeddings = store.get_texts(texts)
    else:
        embeddings = np.zeros((0, tokens.shape[-1]), dtype=np.float32)
    return tokens, texts, kinds, embeddings


def _forward(model, image_tokens: np.ndarray, text_tokens: np.ndarray, text_mask: np.ndarray):
    """(mean [B], tag attention [B,K] or None): the deterministic forward pass."""
    import torch

    model.eval()
    device = next(model.parameters()).device  # the worker's device (load_checkpoint puts it there)
    with torch.no_grad():
        out = model(torch.from_numpy(np.ascontiguousarray(image_tokens, dtype=np.float32)).to(device),
                    torch.from_numpy(np.ascontiguousarray(text_tokens, dtype=np.float32)).to(device),
                    torch.from_numpy(np.ascontiguousarray(text_mask, dtype=bool)).to(device))
    attention = out["tag_attention"]
    return out["mean"].double().cpu().numpy(), None if attention is None else attention.double().cpu().numpy()


def compute_explanation(model, tokens: np.ndarray, embeddings: np.ndarray) -> dict:
    """The numbers of an explanation from features alone: score, attention, leave-one-out, region deltas."""
    K = len(embeddings)
    text = embeddings[None] if K else np.zeros((1, 0, tokens.shape[-1]), np.float32)
    mask = np.ones((1, K), dtype=bool)
    score, attention = _forward(model, tokens[None], text, mask)
    score = float(score[0])
    weights = attention[0].tolist() if attention is not None and K else []

    # Leave one out: a masked text is exactly a removed one (its key gets -inf; with none left the
    # null tag is used), so all K variants run as one batch.
    loo_scores = []
    if K:
        masks = ~np.eye(K, dtype=bool)
        loo_scores = _forward(model, np.repeat(tokens[None], K, 0), np.repeat(text, K, 0), masks)[0].tolist()

    # Occlusion of each region token by the image's mean region token.
    n_regions = tokens.shape[0] - 1
    grid = int(round(math.sqrt(n_regions))) if n_regions > 0 else 0
    region_deltas = []
    if grid and grid * grid == n_regions:
        occluded = np.repeat(tokens[None], n_regions, 0)
        mean_region = tokens[1:].mean(axis=0)
        for r in range(n_regions):
            occluded[r, 1 + r] = mean_region
        occluded_scores = _forward(model, occluded, np.repeat(text, n_regions, 0), np.repeat(mask, n_regions, 0))[0]
        region_deltas = (score - occluded_scores).reshape(grid, grid).tolist()
    return {"score": score, "attention": weights, "leave_one_out_scores": loo_scores,
            "region_grid": grid, "region_deltas": region_deltas}


# --- The explanation, cached ----------------------------------------------------------------------


def explain(image: Image, version: ModelVersion | None = None, *, use_cache: bool = True) -> dict:
    """The explanation of an image's score under a version (JSON-ready), from the cache when there."""
    from modeling.services.scoring import load_version_model

    version = version or explained_version(image)
    json_name, png_name = cache_names(version, image)
    if use_cache and default_storage.exists(json_name):
        with default_storage.open(json_name, "rb") as handle:
            return json.load(handle)
    started = time.perf_counter()
    model, _ = load_version_model(version)
    tokens, texts, kinds, embeddings = image_inputs(image, version)
    numbers = compute_explanation(model, tokens, embeddings)
    seconds = time.perf_counter() - started
    stored = ImageScore.objects.filter(model_version=version, image=image).values_list("mean", flat=True).first()
    result = {
        "image": image.pk,
        "model_version": version.pk,
        "model_kind": getattr(model, "kind", ""),
        "score": numbers["score"],
        "stored_score": stored,
        "texts": [
            {"text": text, "kind": kind,
             "attention": numbers["attention"][k] if numbers["attention"] else None,
             "score_without": numbers["leave_one_out_scores"][k],
             "delta": numbers["score"] - numbers["leave_one_out_scores"][k]}
            for k, (text, kind) in enumerate(zip(texts, kinds))
        ],
        "regions": {
            "grid": numbers["region_grid"],
            "deltas": numbers["region_deltas"],
            "method": "occlusion: each region token replaced by the image's mean region token; "
                      "delta = score - occluded score",
            "crop": encoder_crop(*image_size(image)),
        },
        "compute_seconds": seconds,
    }
    if default_storage.exists(json_name):
        default_storage.delete(json_name)
    default_storage.save(json_name, ContentFile(json.dumps(result).encode()))
    if default_storage.exists(png_name):  # drawn from the new numbers on the next request
        default_storage.delete(png_name)
    return result


def image_size(image: Image) -> tuple[int, int]:
    if image.width and image.height:
        return int(image.width), int(image.height)
    picture = _open_picture(image)
    return picture.size if picture is not None else (1, 1)


def encoder_crop(width: int, height: int) -> dict:
    """The centre square the encoder sees (its shortest side), in image pixels."""
    side = min(width, height)
    return {"left": (width - side) // 2, "top": (height - side) // 2, "size": side}


def _open_picture(image: Image):
    from PIL import Image as PILImage

    try:
        with image.file.open("rb") as handle:
            picture = PILImage.open(handle)
            picture.load()
        return picture.convert("RGB")
    except Exception:  # a missing file still gets its map, on a grey canvas
        return None


def render_heat_map(image: Image, explanation: dict) -> bytes:
    """PNG of the image (at most MAX_PNG_SIDE) with the region deltas as a red/blue overlay on the crop."""
    from matplotlib import colormaps
    from PIL import Image as PILImage

    width, height = image_size(image)
    scale = min(1.0, MAX_PNG_SIDE / max(width, height))
    out_w, out_h = max(1, round(width * scale)), max(1, round(height * scale))
    picture = _open_picture(image)
    base = (picture.resize((out_w, out_h), PILImage.BICUBIC) if picture is not None
            else PILImage.new("RGB", (out_w, out_h), (128, 128, 128)))
    # Dim everything, then put the crop back at full brightness under the overlay.
    canvas = PILImage.blend(base, PILImage.new("RGB", base.size, (0, 0, 0)), 0.5)
    crop = explanation["regions"]["crop"]
    left, top, side = (round(crop[k] * scale) for k in ("left", "top", "size"))
    side = max(1, min(side, out_w - left, out_h - top))
    box = (left, top, left + side, top + side)
    inside = base.crop(box)
    deltas = np.asarray(explanation["regions"]["deltas"], dtype=np.float64)
    if deltas.size:
        limit = max(float(np.abs(deltas).max()), 1e-9)
        colors = colormaps["RdBu_r"]((deltas / limit + 1) / 2)[..., :3]  # [g,g,3] in 0..1
        heat = PILImage.fromarray((colors * 255).astype(np.uint8), "RGB").resize((side, side), PILImage.BILINEAR)
        inside = PILImage.blend(inside, heat, OVERLAY_ALPHA)
    canvas.paste(inside, box[:2])
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()


def heat_map_png(image: Image, version: ModelVersion | None = None) -> bytes:
    version = version or explained_version(image)
    _, png_name = cache_names(version, image)
    if default_storage.exists(png_name):
        with default_storage.open(png_name, "rb") as handle:
            return handle.read()
    data = render_heat_map(image, explain(image, version))
    default_storage.save(png_name, ContentFile(data))
    return data


def explanation_with_png_cached(image: Image, version: ModelVersion | None = None) -> dict:
    """The explanation, with its PNG drawn and cached too (what the image page shows)."""
    version = version or explained_version(image)
    result = explain(image, version)
    heat_map_png(image, version)
    return result


# --- For the web tier: read the cache, never compute ------------------------------------------------


def cached_explanation(image: Image, version: ModelVersion) -> dict | None:
    """The stored explanation, or None: web processes never load a model (the worker computes it)."""
    json_name, _ = cache_names(version, image)
    if not default_storage.exists(json_name):
        return None
    with default_storage.open(json_name, "rb") as handle:
        return json.load(handle)


def cached_heat_map_png(image: Image, version: ModelVersion) -> bytes | None:
    """The stored heat map; drawn from a stored explanation when only that is there (no model needed)."""
    _, png_name = cache_names(version, image)
    if default_storage.exists(png_name):
        with default_storage.open(png_name, "rb") as handle:
            return handle.read()
    explanation = cached_explanation(image, version)
    if explanation is None:
        return None
    data = render_heat_map(image, explanation)
    default_storage.save(png_name, ContentFile(data))
    return data


def explain_by_ids(image_id: int, version_id: int) -> dict:
    """The worker's entry point: compute and cache the explanation and its heat map."""
    image = Image.objects.get(pk=image_id)
    version = explained_version(image, version_id)
    result = explanation_with_png_cached(image, version)
    return {"image": image.pk, "model_version": version.pk, "score": result["score"]}


QUEUED_FOR_SECONDS = 600  # one message per (version, image) while the worker is on it


def request_explanation(image: Image, version: ModelVersion) -> dict | None:
    """The stored explanation, or None after asking a worker for it (at most once per QUEUED_FOR_SECONDS)."""
    from django.core.cache import cache

    from worker.dispatch import send_explain

    explanation = cached_explanation(image, version)
    if explanation is None and cache.add(f"tagrank:explain-queued:{version.pk}:{image.pk}", 1, QUEUED_FOR_SECONDS):
        send_explain(image.pk, version.pk)
    return explanation
