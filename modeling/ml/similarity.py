"""How well an image matches its tags in the joint space: the one similarity every encoder reports."""
from __future__ import annotations

import numpy as np


def image_tag_similarity(image_tokens, tag_tokens, tag_mask=None) -> np.ndarray:
    """CLIP cosine similarity between each image and its tags, averaged over the tags.

    image_tokens [B,T,D] (token 0 is the class token), tag_tokens [B,K,D], tag_mask [B,K] bool.
    An image without tags gets 0.
    """
    img = np.asarray(image_tokens)[:, 0].astype(np.float32)
    tags = np.asarray(tag_tokens, dtype=np.float32)
    if tag_mask is None:
        tag_mask = np.ones(tags.shape[:2], dtype=bool)
    img = img / np.maximum(np.linalg.norm(img, axis=-1, keepdims=True), 1e-12)
    tags = tags / np.maximum(np.linalg.norm(tags, axis=-1, keepdims=True), 1e-12)
    cos = np.einsum("bd,bkd->bk", img, tags) * tag_mask  # [B,K]
    return (cos.sum(axis=1) / np.maximum(tag_mask.sum(axis=1), 1)).astype(np.float32)
