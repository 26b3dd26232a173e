"""``python -m modeling doctor``: which device and precision this host runs the ranker in, and how fast.

Prints the resolved TAGRANK_DEVICE, the encoder's images/s and the head's training steps/s, measured
with the same code the workers run. Exits 2 when CUDA is asked for and missing, so a deployment
check fails loudly instead of training on the CPU.
"""
from __future__ import annotations

import os
import platform
import sys
import time

import numpy as np
import torch

from .device import SETTING, DeviceUnavailable, runtime


def _images(n: int, size: int = 256):
    from PIL import Image

    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(n)]


def encoder_rate(encoder, n_images: int) -> float:
    """Images per second through ``encode_images`` (preprocessing included), after one warm-up batch."""
    images = _images(n_images)
    encoder.encode_images(images[: min(len(images), encoder.batch_size)])
    if str(encoder.device).startswith("cuda"):
        torch.cuda.synchronize(encoder.device)
    t0 = time.perf_counter()
    encoder.encode_images(images)
    if str(encoder.device).startswith("cuda"):
        torch.cuda.synchronize(encoder.device)
    return n_images / (time.perf_counter() - t0)


def training_rate(device: str, dim: int, n_images: int, n_comparisons: int, batch_pairs: int = 1024) -> tuple[float, int]:
    """(steps per second, steps) of ``train_ranker`` on a synthetic set with features of size ``dim``."""
    from .synthetic import synthetic_data
    from .training import TrainConfig, train_ranker

    data, _ = synthetic_data(n_images=n_images, n_comparisons=n_comparisons, dim=dim, seed=0)
    cfg = TrainConfig(epochs=2, batch_pairs=batch_pairs, eval_every=0, patience=100, device=device, lam=1.0)
    result = train_ranker(data, cfg)
    seconds = sum(e["seconds"] for e in result.history[1:])  # the first epoch warms up (allocations, kernels)
    steps = result.metrics["steps"] - result.history[0]["step"]
    return steps / max(seconds, 1e-9), steps


def main(args) -> int:
    setting = args.device or os.environ.get(SETTING) or "auto"
    try:
        rt = runtime(setting)
    except DeviceUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"setting     {SETTING}={setting}")
    print(f"device      {rt.describe()}")
    print(f"torch       {torch.__version__} (CUDA build {torch.version.cuda or 'none'}), "
          f"{torch.get_num_threads()} CPU threads, {platform.machine()}")
    if rt.device.type == "cuda":
        free, total = torch.cuda.mem_get_info(rt.device)
        print(f"memory      {free / 2**30:.1f} GiB free of {total / 2**30:.1f} GiB")
    from .encoder import load_encoder

    t0 = time.perf_counter()
    encoder = load_encoder(args.encoder, device=str(rt.device))
    print(f"encoder     {encoder.encoder_id}: loaded in {time.perf_counter() - t0:.1f} s, batch {encoder.batch_size}, "
          f"{encoder.n_tokens} tokens x {encoder.dim}")
    rate = encoder_rate(encoder, args.n_images)
    print(f"            {rate:.1f} images/s ({args.n_images} images of 256x256, preprocessing included)")
    steps_per_s, steps = training_rate(str(rt.device), encoder.dim, args.train_images, args.train_comparisons)
    print(f"training    {steps_per_s:.2f} steps/s (tags head, default config, 1024 comparisons a step, "
          f"{args.train_images} images x 5 tokens x {encoder.dim}, {steps} timed steps)")
    return 0
