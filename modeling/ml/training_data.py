"""What a ranker trains on: cached features and labels of N images, a train/validation split, and the
distinct tag vectors a training step projects.

    data = RankingData(image_tokens, tag_tokens, tag_mask, comp_a, comp_b, outcome, ref_dist=...)
    split = split_data(data, val_fraction=0.2, seed=0)        # images (and their comparisons) on each side
    index, vocab = tag_vocabulary(data.tag_tokens, data.tag_mask)  # [N,K] into [V,D]
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class RankingData:
    """Cached features and labels of N images. Comparisons index the images."""

    image_tokens: np.ndarray                 # [N,T,D] float32 or float16 (kept: half the memory); token 0 = class
    tag_tokens: np.ndarray                   # [N,K,D] float32; K may be 0
    tag_mask: np.ndarray                     # [N,K] bool, True where a tag is present
    comp_a: np.ndarray | None = None         # [P] int, image a of each comparison
    comp_b: np.ndarray | None = None         # [P] int, image b
    outcome: np.ndarray | None = None        # [P] float: 1 = a wins, 0 = b wins, 0.5 = tie
    ref_dist: np.ndarray | None = None       # [N,10] reference vote distributions
    ref_mask: np.ndarray | None = None       # [N] bool, which images have a reference distribution
    similarity: np.ndarray | None = None     # [N] CLIP image-tags similarity (for the ranking target)

    def __post_init__(self):
        tokens = np.asarray(self.image_tokens)
        self.image_tokens = tokens if tokens.dtype == np.float16 else tokens.astype(np.float32, copy=False)
        N = len(self.image_tokens)
        self.tag_tokens = np.asarray(self.tag_tokens, dtype=np.float32)
        self.tag_mask = np.asarray(self.tag_mask, dtype=bool)
        if self.tag_tokens.shape[:2] != self.tag_mask.shape or len(self.tag_tokens) != N:
            raise ValueError(f"tag_tokens {self.tag_tokens.shape} and tag_mask {self.tag_mask.shape} "
                             f"do not match {N} images")
        self.comp_a = np.asarray(self.comp_a if self.comp_a is not None else [], dtype=np.int64)
        self.comp_b = np.asarray(self.comp_b if self.comp_b is not None else [], dtype=np.int64)
        self.outcome = np.asarray(self.outcome if self.outcome is not None else [], dtype=np.float32)
        if not len(self.comp_a) == len(self.comp_b) == len(self.outcome):
            raise ValueError("comp_a, comp_b and outcome must have the same length")
        if len(self.comp_a) and (min(self.comp_a.min(), self.comp_b.min()) < 0
                                 or max(self.comp_a.max(), self.comp_b.max()) >= N):
            raise ValueError("a comparison refers to an image index outside 0..N-1")
        if self.ref_dist is not None:
            self.ref_dist = np.asarray(self.ref_dist, dtype=np.float32)
            self.ref_mask = (np.ones(N, dtype=bool) if self.ref_mask is None
                             else np.asarray(self.ref_mask, dtype=bool))
            if self.ref_dist.shape[0] != N or self.ref_mask.shape != (N,):
                raise ValueError("ref_dist and ref_mask must have one row per image")
        if self.similarity is not None:
            self.similarity = np.asarray(self.similarity, dtype=np.float32)

    @property
    def n_images(self) -> int:
        return len(self.image_tokens)

    @property
    def n_comparisons(self) -> int:
        return len(self.comp_a)

    @property
    def n_references(self) -> int:
        return 0 if self.ref_dist is None else int(self.ref_mask.sum())


@dataclass
class Split:
    """Image and comparison indices on each side; comparisons across sides are dropped."""

    train_images: np.ndarray
    val_images: np.ndarray
    train_comparisons: np.ndarray
    val_comparisons: np.ndarray
    dropped_comparisons: int = 0


def split_data(data: RankingData, val_fraction: float = 0.2, seed: int = 0, by_image: bool = True) -> Split:
    """Random train/validation split.

    by_image=True keeps every image and all of its comparisons on one side (no leakage): a
    comparison whose two images fall on different sides is dropped. by_image=False splits the
    comparisons independently of the images, so an image can appear on both sides.
    """
    rng = np.random.default_rng(seed)
    N, P = data.n_images, data.n_comparisons
    order = rng.permutation(N)
    n_val = int(round(N * val_fraction))
    val_images, train_images = np.sort(order[:n_val]), np.sort(order[n_val:])
    if by_image:
        in_val = np.zeros(N, dtype=bool)
        in_val[val_images] = True
        a_val, b_val = in_val[data.comp_a], in_val[data.comp_b]
        train_c = np.flatnonzero(~a_val & ~b_val)
        val_c = np.flatnonzero(a_val & b_val)
        dropped = P - len(train_c) - len(val_c)
    else:
        corder = rng.permutation(P)
        n_val_c = int(round(P * val_fraction))
        val_c, train_c, dropped = np.sort(corder[:n_val_c]), np.sort(corder[n_val_c:]), 0
    return Split(train_images, val_images, train_c, val_c, int(dropped))


def tag_vocabulary(tag_tokens: np.ndarray, tag_mask: np.ndarray):
    """Dense tag tokens [N,K,D] -> (index [N,K] int64, vocab [V,D]) of the distinct tag vectors.

    Images share tags, so training projects each distinct tag of a batch once instead of once
    per image. Masked slots point at an arbitrary entry; the mask still hides them.
    """
    N, K, D = tag_tokens.shape
    flat = np.ascontiguousarray(np.where(tag_mask[..., None], tag_tokens, 0.0), dtype=np.float32).reshape(N * K, D)
    if len(flat) == 0:
        return np.zeros((N, K), dtype=np.int64), np.zeros((1, D), dtype=np.float32)
    # Exact duplicates by their bytes (a dict: np.unique(axis=0) sorts every row, which is much slower).
    first: dict[bytes, int] = {}
    index = np.fromiter((first.setdefault(row.tobytes(), len(first)) for row in flat), dtype=np.int64, count=len(flat))
    rows = np.zeros(len(first), dtype=np.int64)
    rows[index[::-1]] = np.arange(len(flat) - 1, -1, -1)                 # first row of each entry
    return index.reshape(N, K), flat[rows]
