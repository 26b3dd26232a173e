"""Import rate: `manage.py import_images` on generated JPEGs, on the embedded default (SQLite).

    .venv/bin/python benchmarks/import_images.py --images 2000 --size 640x480

Runs in a scratch TAGRANK_VAR_DIR, so it never touches var/. Prints images/s and the peak RSS.
"""
from __future__ import annotations

import argparse
import io
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parent.parent


def make_images(folder: Path, count: int, width: int, height: int, seed: int = 0) -> int:
    """Smooth random images (JPEG, quality 90): photo-like file sizes, each unique."""
    rng = np.random.default_rng(seed)
    total = 0
    for index in range(count):
        coarse = rng.integers(0, 256, size=(height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
        image = Image.fromarray(coarse, mode="RGB").resize((width, height), Image.Resampling.BICUBIC)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        path = folder / f"{index // 1000:03d}" / f"img_{index:06d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buffer.getvalue())
        total += len(buffer.getvalue())
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", default="640x480")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        folder = scratch / "photos"
        total_bytes = make_images(folder, args.images, width, height)
        env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "MEDIA_ROOT"}}
        env["TAGRANK_VAR_DIR"] = str(scratch / "var")
        python = sys.executable
        subprocess.run([python, "manage.py", "migrate", "-v0"], cwd=REPO_ROOT, env=env, check=True)
        subprocess.run(
            [python, "-c", "import django; django.setup(); from labeling.models import Project; "
             "Project.objects.create(name='Bench', slug='bench')"],
            cwd=REPO_ROOT, env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"}, check=True,
        )
        started = time.perf_counter()
        result = subprocess.run(
            [python, "manage.py", "import_images", "bench", str(folder)],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True,
        )
        elapsed = time.perf_counter() - started
        peak_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(result.stdout.strip())
    print(f"images: {args.images} JPEG {width}x{height}, {total_bytes / args.images / 1024:.0f} KiB each")
    print(f"import: {elapsed:.1f} s wall including start-up, {args.images / elapsed:.1f} images/s")
    print(f"peak RSS of the import process: {peak_rss_mb:.0f} MB")


if __name__ == "__main__":
    main()
