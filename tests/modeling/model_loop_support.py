"""Helpers shared by the model-loop tests: small projects, simulated raters, fast training settings."""
from __future__ import annotations

import time
import uuid

import numpy as np

# Small enough that a training run takes seconds on two cores with the tiny encoder.
FAST_TRAINING = {
    "model_kind": "tags",  # the ranker, as these tests expect; the automatic choice has its own tests
    "epochs": 4,
    "patience": 2,
    "batch_pairs": 256,
    "ranker": {"width": 32, "heads": 2, "ensemble": 2, "layers": 1},
}


def fast_training(project, **extra):
    from modeling.models import TrainingSettings

    settings, _ = TrainingSettings.objects.update_or_create(
        project=project, defaults={"hyperparameters": {**FAST_TRAINING, **extra.pop("hyperparameters", {})}, **extra}
    )
    return settings


def add_images(project, count: int, make_bytes, start: int = 0):
    """``count`` stored images with distinct pixels; tags alternate, every third has a caption."""
    from labeling.services.imports import store_image

    stored = []
    for index in range(start, start + count):
        image, _ = store_image(
            project,
            f"loop_{index}.png",
            make_bytes(seed=1000 + index, size=(32, 32)),
            tags=["bright" if index % 2 else "dark", f"group{index % 3}"],
            caption=f"a test picture number {index}" if index % 3 == 0 else "",
        )
        stored.append(image)
    return stored


def latent_quality(images) -> dict[int, float]:
    """A fixed hidden quality per image for simulated raters (by position, so it is reproducible)."""
    return {image.pk: float(position) for position, image in enumerate(images)}


def simulate_comparisons(project, rater, images, count: int, seed: int = 0):
    """``count`` comparisons written directly (not through the API) by a noiseless simulated rater."""
    from labeling.models import Comparison

    rng = np.random.default_rng(seed)
    quality = latent_quality(images)
    rows = []
    for _ in range(count):
        a, b = rng.choice(len(images), size=2, replace=False)
        left, right = images[a], images[b]
        outcome = "a" if quality[left.pk] > quality[right.pk] else "b"
        rows.append(Comparison(project=project, image_a=left, image_b=right, outcome=outcome, rater=rater,
                               client_key=uuid.uuid4().hex))
    return Comparison.objects.bulk_create(rows)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.25, on_timeout=None):
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = on_timeout() if on_timeout else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{detail}")
        time.sleep(interval)
