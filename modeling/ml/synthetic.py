"""Synthetic feature sets with a known true quality, for tests, benchmarks and ``python -m modeling
evaluate --synthetic``.

    data, q = synthetic_data(n_images=2000, n_comparisons=20000)   # RankingData, [N] true quality
"""
from __future__ import annotations

import numpy as np

from .similarity import image_tag_similarity
from .metrics import BINS
from .training_data import RankingData


def synthetic_data(n_images: int = 2000, n_comparisons: int = 20000, dim: int = 64, n_tokens: int = 5,
                   max_tags: int = 4, n_classes: int = 16, tag_effect: float = 2.0, seed: int = 0,
                   with_references: bool = True, votes: int = 100, return_latents: bool = False):
    """A learnable task where quality depends on whether an image's tags match its content.

    Every image shows one of ``n_classes`` contents (a prototype direction) and has a latent
    "technical" quality z visible in its tokens. Half of the tagged images carry a tag of their
    own content, the others only tags of other contents. True quality:

        q = 5.5 + z + tag_effect * (match - 0.5)      (clipped to 1..10)

    so an image-only model can recover z but not the match. Returns (RankingData, q), and with
    ``return_latents`` a third item, {"content": [N] class, "z": [N], "match": [N] bool}.
    """
    rng = np.random.default_rng(seed)

    def unit(x):
        return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)

    proto = unit(rng.standard_normal((n_classes, dim)))                    # content directions
    quality_dir = unit(rng.standard_normal(dim))                           # where z shows
    tags_per_class = 3
    vocab = unit(np.repeat(proto, tags_per_class, axis=0)
                 + 0.5 * rng.standard_normal((n_classes * tags_per_class, dim)) / np.sqrt(dim))
    vocab_class = np.repeat(np.arange(n_classes), tags_per_class)

    content = rng.integers(0, n_classes, n_images)
    z = rng.standard_normal(n_images).astype(np.float32)
    base = proto[content] + 0.6 * z[:, None] * quality_dir                  # [N,D]
    noise = rng.standard_normal((n_images, n_tokens, dim)) / np.sqrt(dim)
    scale = np.array([0.3] + [0.6] * (n_tokens - 1))[None, :, None]       # regions are noisier
    image_tokens = unit(base[:, None, :] + scale * noise)                  # [N,T,D]

    n_tags = rng.integers(0, max_tags + 1, n_images)
    match = (rng.random(n_images) < 0.5) & (n_tags > 0)
    tag_index = np.zeros((n_images, max_tags), dtype=np.int64)
    for i in range(n_images):
        others = np.flatnonzero(vocab_class != content[i])
        tag_index[i] = rng.choice(others, max_tags)
        if match[i]:
            own = np.flatnonzero(vocab_class == content[i])
            tag_index[i, rng.integers(0, n_tags[i])] = rng.choice(own)
    tag_mask = np.arange(max_tags)[None, :] < n_tags[:, None]
    tag_tokens = vocab[tag_index] * tag_mask[..., None]

    q = np.clip(5.5 + z + tag_effect * (match - 0.5), 1.0, 10.0).astype(np.float32)

    ref_dist = None
    if with_references:
        p = np.exp(-0.5 * ((BINS[None, :] - q[:, None]) / 1.2) ** 2)
        p /= p.sum(axis=1, keepdims=True)
        ref_dist = np.stack([rng.multinomial(votes, row) for row in p]).astype(np.float32) / votes

    a = rng.integers(0, n_images, n_comparisons)
    b = (a + rng.integers(1, n_images, n_comparisons)) % n_images          # never a == b
    p_a = 1.0 / (1.0 + np.exp(-1.5 * (q[a] - q[b])))
    outcome = (rng.random(n_comparisons) < p_a).astype(np.float32)
    outcome[np.abs(q[a] - q[b]) < 0.05] = 0.5                              # near-equal: a tie

    data = RankingData(image_tokens, tag_tokens, tag_mask, a, b, outcome, ref_dist=ref_dist,
                       similarity=image_tag_similarity(image_tokens, tag_tokens, tag_mask))
    if return_latents:
        return data, q, {"content": content, "z": z, "match": match}
    return data, q
