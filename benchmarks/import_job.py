"""Benchmark: a bulk import job of a 10^4-image zip archive on PostgreSQL.

    .venv/bin/python benchmarks/import_job.py                  # 10,000 images
    .venv/bin/python benchmarks/import_job.py --images 1000    # a quick run

It writes ``--images`` small JPEGs (``--size``, default 128x96, smooth gradients with noise, quality
85) into one zip, migrates the database of ``--database-url`` (default tagrank_manager), creates a
scratch project and the job exactly as the API does (``labeling.services.import_jobs.create_job``),
then runs the job in this process with the function the worker task calls (``run_job``): every
member is read from the archive, validated with Pillow, hashed, stored with its WebP thumbnail, and
the job's position and counters are written after each image. Media go to a temporary folder. It
reports the wall time, images/s and the process's resident memory before and at its peak; then it
runs the job's archive again as a second job, in which every image is a duplicate (skipped by
content hash), and times that too. The scratch project is removed at the end.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
import time
import zipfile
from pathlib import Path

from bench_setup import benchmark_parser, machine_with_postgres, memory_kib, start_django


SLUG = "bench-import-job"


def parse_args():
    parser = benchmark_parser(__doc__, "tagrank_manager")
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--size", default="128x96")
    return parser.parse_args()


def memory_mib(field: str) -> int:
    return round(memory_kib(field) / 1024)


def write_archive(path: Path, count: int, size: tuple[int, int]) -> int:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    width, height = size
    ys, xs = np.mgrid[0:height, 0:width]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for index in range(count):
            base = rng.uniform(0, 255, size=3)
            slope = rng.uniform(-1, 1, size=(2, 3))
            pixels = base + xs[..., None] * slope[0] + ys[..., None] * slope[1] + rng.normal(0, 8, (height, width, 3))
            buffer = io.BytesIO()
            Image.fromarray(np.clip(pixels, 0, 255).astype("uint8")).save(buffer, format="JPEG", quality=85)
            archive.writestr(f"shoot/{index // 1000:02d}/img_{index:05d}.jpg", buffer.getvalue())
    return path.stat().st_size


class Upload:
    """What the API hands create_job: a file with ``chunks()``."""

    def __init__(self, path: Path):
        self.path, self.name = path, path.name

    def chunks(self):
        with open(self.path, "rb") as handle:
            while piece := handle.read(1 << 20):
                yield piece


def main():
    args = parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="tagrank-import-bench-"))
    start_django(args.database_url, MEDIA_ROOT=str(scratch / "media"),
                 TAGRANK_IMPORT_ARCHIVE_DIR=str(scratch / "archives"))

    from labeling.models import ImportJob, Project
    from labeling.services import import_jobs

    width, height = (int(v) for v in args.size.split("x"))
    started = time.perf_counter()
    archive = scratch / "images.zip"
    archive_bytes = write_archive(archive, args.images, (width, height))
    write_seconds = time.perf_counter() - started
    Project.objects.filter(slug=SLUG).delete()
    project = Project.objects.create(name="Import benchmark", slug=SLUG)
    results = {
        "machine": machine_with_postgres(),
        "images": args.images, "size": args.size, "archive_mib": round(archive_bytes / 2**20, 1),
        "archive_write_seconds": round(write_seconds, 1), "load_average_at_start": round(os.getloadavg()[0], 1),
        "runs": [],
    }
    try:
        for label in ("new images", "all duplicates"):
            rss_before = memory_mib("VmRSS")
            Path("/proc/self/clear_refs").write_text("5")
            started = time.perf_counter()
            job = import_jobs.create_job(project, None, archive=Upload(archive))
            import_jobs.run_job(job.pk)
            seconds = time.perf_counter() - started
            job = ImportJob.objects.get(pk=job.pk)
            run = {"run": label, "status": job.status, "done": job.done, "skipped": job.skipped, "failed": job.failed,
                   "seconds": round(seconds, 1), "images_per_s": round(job.position / seconds, 1),
                   "rss_before_mib": rss_before, "peak_rss_mib": memory_mib("VmHWM")}
            results["runs"].append(run)
            print(json.dumps(run), flush=True)
    finally:
        Project.objects.filter(pk=project.pk).delete()
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)
    results["load_average_at_end"] = round(os.getloadavg()[0], 1)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
