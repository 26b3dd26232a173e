"""A generated set of degraded images with a known latent quality, for benchmarks and tests.

    ds = make_degraded_set(600, seed=0)     # ds.images: PIL RGB, ds.quality [N], ds.levels [N,3]
    outcome = judge(ds.quality, pairs, rng) # Thurstone observer on the latent quality

Content: random square crops (40-100 % of the short side, at least ``size`` where the picture allows,
random flip) of scikit-image's sample pictures (photos, textures, micrographs; not the photos of the
demo ladder, so that the two never share a source), resized to ``size``. Degradation: each of blur, noise and JPEG is applied
with probability ``p_apply`` at a level u ~ U(0, 1) (0 when not applied), in that order:

    Gaussian blur   sigma = 3.5 u pixels
    Gaussian noise  std = 40 u grey levels (of 255)
    JPEG            quality = round(5 + 90 (1 - u)^2)   (steps matter below ~30, so u is spread there)

Latent quality: ``q = -(u_blur + u_noise + u_jpeg)``, standardised to mean 0 and std 1 over the set.
Content carries no quality of its own: an encoder that sees only content cannot predict q.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import ndtr

# scikit-image sample files (in its wheel) used as content; the demo ladder's photos are left out.
# Pictures smaller than ~300 px or binary ones are left out too: their crops would be upscaled or flat.
CONTENT_FILES = ("brick.png", "cell.png", "coins.png", "grass.png", "gravel.png", "ihc.png", "moon.png",
                 "motorcycle_right.png", "retina.jpg", "color.png", "phantom.png")
DEGRADATIONS = ("blur", "noise", "jpeg")


@dataclass
class DegradedSet:
    images: list            # N PIL RGB images, size x size
    quality: np.ndarray     # [N] latent quality, mean 0, std 1 (higher is better)
    levels: np.ndarray      # [N, 3] degradation levels u in 0..1 (blur, noise, jpeg); 0 = not applied
    content: np.ndarray     # [N] index into CONTENT_FILES


def load_content(file_name: str):
    from PIL import Image
    import skimage.data

    with Image.open(Path(skimage.data.__file__).parent / file_name) as source:
        return source.convert("RGB")


def degrade(image, levels, rng: np.random.Generator):
    """Blur, then noise, then JPEG, at levels (u_blur, u_noise, u_jpeg) in 0..1; a level of 0 skips it."""
    from PIL import Image, ImageFilter

    u_blur, u_noise, u_jpeg = (float(u) for u in levels)
    if u_blur > 0:
        image = image.filter(ImageFilter.GaussianBlur(radius=3.5 * u_blur))
    if u_noise > 0:
        pixels = np.asarray(image, dtype=np.float32) + rng.normal(0.0, 40.0 * u_noise, (image.height, image.width, 3))
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="RGB")
    if u_jpeg > 0:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=int(round(5 + 90 * (1 - u_jpeg) ** 2)))
        image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return image


def make_degraded_set(n_images: int, seed: int = 0, size: int = 256, p_apply: float = 0.6) -> DegradedSet:
    """N degraded crops with their latent quality; the same seed gives the same set."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    sources = [load_content(name) for name in CONTENT_FILES]
    content = rng.integers(0, len(sources), n_images)
    levels = rng.random((n_images, 3)) * (rng.random((n_images, 3)) < p_apply)
    images = []
    for i in range(n_images):
        source = sources[content[i]]
        w, h = source.size
        side = max(min(w, h, size), int(min(w, h) * rng.uniform(0.4, 1.0)))  # never upscaled much
        left, top = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        crop = source.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.LANCZOS)
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        images.append(degrade(crop, levels[i], rng))
    q = -levels.sum(axis=1)
    quality = (q - q.mean()) / max(q.std(), 1e-12)
    return DegradedSet(images=images, quality=quality, levels=levels, content=content)


def judge(quality: np.ndarray, pairs: np.ndarray, rng: np.random.Generator, noise: float = 1.0) -> np.ndarray:
    """Thurstone observer: 1.0 where the first image of a pair [K, 2] is preferred, else 0.0."""
    win = ndtr((quality[pairs[:, 0]] - quality[pairs[:, 1]]) / noise)
    return (rng.random(len(pairs)) < win).astype(np.float32)


def random_pairs(n_images: int, n_pairs: int, rng: np.random.Generator) -> np.ndarray:
    """[n_pairs, 2] uniformly random pairs of distinct images."""
    first = rng.integers(0, n_images, n_pairs)
    second = (first + rng.integers(1, n_images, n_pairs)) % n_images
    return np.column_stack([first, second])
