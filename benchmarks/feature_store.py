"""Benchmark: the feature store's bytes per image and the training data-load time, before and after shards.

    .venv/bin/python benchmarks/feature_store.py                 # 10^5 images, T = 5, D = 512 (ViT-B/32)
    .venv/bin/python benchmarks/feature_store.py --images 2000   # a quick check

"before" is the store as it was at commit ba88309 (one float32 .npy per image), loaded from git;
"after" is ``modeling.ml.features.FeatureStore`` now (float16 shards of the images of one write).
Both get the same random unit-norm tokens, written in batches of 256 (a worker's extraction batch).
Bytes per image: file sizes (apparent) and allocated blocks (what the disk really holds), divided by
the number of images. Data-load time: a fresh store reading every image's tokens, as
``modeling.services.datasets.build_dataset`` does before training, median of 3 (page cache warm,
the files having just been written: the benchmark cannot drop the host's caches).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from bench_setup import REPO  # and the repository on sys.path
BEFORE_COMMIT = "ba88309"


def old_store_class():
    source = subprocess.run(["git", "-C", str(REPO), "show", f"{BEFORE_COMMIT}:modeling/ml/features.py"],
                            check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "features_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("features_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FeatureStore


def disk_usage(folder: Path) -> tuple[int, int, int]:
    """(apparent bytes, allocated bytes, files) under a folder."""
    apparent = allocated = files = 0
    for root, _, names in os.walk(folder):
        for name in names:
            st = os.stat(os.path.join(root, name))
            apparent, allocated, files = apparent + st.st_size, allocated + st.st_blocks * 512, files + 1
    return apparent, allocated, files


def measure(label, store_class, root: Path, tokens: np.ndarray, batch: int, **get_kw) -> dict:
    ids = np.arange(len(tokens)) + 1
    store = store_class(root, "bench-encoder")
    t0 = time.perf_counter()
    for i in range(0, len(ids), batch):
        store.put_images(ids[i:i + batch], tokens[i:i + batch])
    write_s = time.perf_counter() - t0
    apparent, allocated, files = disk_usage(store.folder)
    loads = []
    for _ in range(3):
        fresh = store_class(root, "bench-encoder")
        t0 = time.perf_counter()
        got = fresh.get_images(ids, **get_kw)
        loads.append(time.perf_counter() - t0)
    assert got.shape == tokens.shape
    return {"label": label, "images": len(ids), "tokens": tokens.shape[1], "dim": tokens.shape[2],
            "bytes_per_image": apparent / len(ids), "disk_bytes_per_image": allocated / len(ids), "files": files,
            "write_s": write_s, "load_s": statistics.median(loads), "loaded_dtype": str(got.dtype),
            "loaded_mb": got.nbytes / 2**20}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--batch", type=int, default=256)
    args = p.parse_args()
    from modeling.ml.features import FeatureStore

    rng = np.random.default_rng(0)
    rows = []
    for T in (5, 2):
        tokens = rng.standard_normal((args.images, T, args.dim)).astype(np.float32)
        tokens /= np.linalg.norm(tokens, axis=-1, keepdims=True)
        with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as folder:
            if T == 5:
                rows.append(measure("before: float32 .npy per image", old_store_class(), Path(folder) / "a", tokens,
                                    args.batch))
            rows.append(measure("after: float16 shards, read as float32", FeatureStore, Path(folder) / "b", tokens,
                                args.batch))
            rows.append(measure("after: float16 shards, read as float16 (training)", FeatureStore, Path(folder) / "c",
                                tokens, args.batch, dtype=np.float16))
        del tokens
    print("| layout | T x D | bytes/image (files) | bytes/image (disk blocks) | files | write s | load s | loaded |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['label']} | {r['tokens']} x {r['dim']} | {r['bytes_per_image']:,.0f} | "
              f"{r['disk_bytes_per_image']:,.0f} | {r['files']:,} | {r['write_s']:.1f} | {r['load_s']:.2f} | "
              f"{r['loaded_mb']:.0f} MB {r['loaded_dtype']} |")
    print(f"\n{args.images:,} images, batches of {args.batch}; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
