"""Import rate: `manage.py import_images` against bare Pillow decode + thumbnail of the same files.

    .venv/bin/python benchmarks/import_images.py --images 2000 --size 640x480 \
        --postgres postgres://postgres@127.0.0.1:5432/tagrank_perf

In one run, on the same generated JPEGs and with the same number of processes: bare Pillow (read,
decode at reduced size where the format allows, 384-px LANCZOS thumbnail, WebP encode in memory; no
hashing, no storage, no database) and then the Tagrank import, on SQLite (a scratch TAGRANK_VAR_DIR)
and, with --postgres, on that database (a new project, deleted afterwards). The bare run is repeated
before each import and each import is compared with the bare run just before it, because other load on
the machine moves both. Prints images/s, the ratio, the peak RSS of the largest process, the load
average around each figure, and the CPU time per image of each process tree (workers included).

--repo runs another checkout's manage.py (e.g. the code before a change); --profile FILE writes a
cProfile of the import command's main process (with --workers 1 that is all of the work).
"""
from __future__ import annotations

import argparse
import io
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parent.parent
THUMBNAIL_SIZE = 384  # settings.TAGRANK_IMPORT["thumbnail_size"]


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


def bare_thumbnail(path: Path) -> int:
    """The least work that yields the same thumbnail: Pillow alone, same filter and WebP settings."""
    with Image.open(path) as image:
        image.draft("RGB", (THUMBNAIL_SIZE, THUMBNAIL_SIZE))
        image = image.convert("RGB")
    image.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.LANCZOS, reducing_gap=2.0)
    out = io.BytesIO()
    image.save(out, format="WEBP", quality=82, method=2)
    return len(out.getvalue())


def run_bare(folder: Path, workers: int) -> None:
    """Entry point of the bare subprocess: all files through a pool of ``workers`` processes."""
    paths = sorted(folder.rglob("*.jpg"))
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        total = sum(pool.map(bare_thumbnail, paths, chunksize=16))
    print(f"bare {len(paths)} files {time.perf_counter() - started:.3f}s thumbnails {total} bytes")


def run_and_measure(command: list[str], env: dict, cwd: Path) -> dict:
    """Run one subprocess tree and wait for it with wait4, which reports that tree's own peak RSS."""
    load = os.getloadavg()
    started = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=err)
        out = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)  # not Popen.wait: wait4 also returns the tree's rusage
        elapsed = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            sys.exit(f"{' '.join(command)} failed:\n{err.read().decode()[-3000:]}")
    process.returncode = os.waitstatus_to_exitcode(status)
    return {"wall": elapsed, "rss_mb": usage.ru_maxrss / 1024, "out": out.decode(), "load": load,
            "load_after": os.getloadavg(), "cpu": usage.ru_utime + usage.ru_stime}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes for both sides")
    parser.add_argument("--postgres", help="also import into this PostgreSQL database (URL)")
    parser.add_argument("--no-sqlite", action="store_true", help="only the PostgreSQL import")
    parser.add_argument("--repo", type=Path, default=REPO_ROOT, help="checkout whose manage.py imports")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the import's main process here")
    parser.add_argument("--bare-only", type=Path, help=argparse.SUPPRESS)  # the bare subprocess
    args = parser.parse_args()
    if args.bare_only:
        run_bare(args.bare_only, args.workers)
        return
    width, height = (int(v) for v in args.size.split("x"))
    python = sys.executable
    repo = args.repo.resolve()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        folder = scratch / "photos"
        total_bytes = make_images(folder, args.images, width, height)
        print(f"images: {args.images} JPEG {width}x{height}, {total_bytes / args.images / 1024:.0f} KiB each; "
              f"{args.workers} processes each side; code: {repo}")
        base_env = {k: v for k, v in os.environ.items()
                    if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "MEDIA_ROOT"}}
        targets = [] if args.no_sqlite else [("SQLite", None)]
        if args.postgres:
            targets.append(("PostgreSQL", args.postgres))
        for label, database_url in targets:
            env = dict(base_env, TAGRANK_VAR_DIR=str(scratch / f"var-{label}"), DJANGO_SETTINGS_MODULE="config.settings",
                       DEBUG=base_env.get("DEBUG", "true"))
            if database_url:
                env["DATABASE_URL"] = database_url
            slug = f"bench-import-{os.getpid()}"
            subprocess.run([python, "manage.py", "migrate", "-v0"], cwd=repo, env=env, check=True)
            subprocess.run([python, "-c", "import django; django.setup(); from labeling.models import Project; "
                            f"Project.objects.create(name='Bench {slug}', slug='{slug}')"], cwd=repo, env=env, check=True)
            bare = run_and_measure([python, str(Path(__file__).resolve()), "--bare-only", str(folder),
                                    "--workers", str(args.workers)], env, REPO_ROOT)
            bare_inner = float(re.search(r"files ([\d.]+)s", bare["out"]).group(1))
            command = [python, "manage.py", "import_images", slug, str(folder)]
            if args.workers != (os.cpu_count() or 1):
                command += ["--workers", str(args.workers)]
            if args.profile:
                command = [python, "-m", "cProfile", "-o", str(args.profile.resolve()), *command[1:]]
            tagrank = run_and_measure(command, env, repo)
            match = re.search(r"in ([\d.]+)s", tagrank["out"])
            inner = float(match.group(1)) if match else tagrank["wall"]
            subprocess.run([python, "-c", "import django; django.setup(); from labeling.models import Project; "
                            f"Project.objects.filter(slug='{slug}').delete()"], cwd=repo, env=env, check=True)
            n = args.images
            print(f"\n{label}: {tagrank['out'].strip()}")
            print(f"  bare Pillow : {n / bare['wall']:6.1f} images/s wall ({n / bare_inner:.1f} without start-up), "
                  f"peak RSS {bare['rss_mb']:.0f} MiB, load {fmt(bare['load'])} -> {fmt(bare['load_after'])}")
            print(f"  Tagrank     : {n / tagrank['wall']:6.1f} images/s wall ({n / inner:.1f} without start-up), "
                  f"peak RSS {tagrank['rss_mb']:.0f} MiB, load {fmt(tagrank['load'])} -> {fmt(tagrank['load_after'])}")
            print(f"  ratio Tagrank/bare: {bare['wall'] / tagrank['wall']:.2f} wall, {bare_inner / inner:.2f} without start-up")
            # CPU seconds of the whole process tree (workers included) are far less moved by other load
            # than wall time; cores / CPU per image is the rate this work would reach on free cores.
            cores = args.workers
            print(f"  CPU per image (tree, incl. start-up): bare {1000 * bare['cpu'] / n:.1f} ms, "
                  f"Tagrank {1000 * tagrank['cpu'] / n:.1f} ms; ratio {bare['cpu'] / tagrank['cpu']:.2f}; "
                  f"on {cores} free cores: bare {cores * n / bare['cpu']:.0f}/s, Tagrank {cores * n / tagrank['cpu']:.0f}/s")


def fmt(load: tuple) -> str:
    return "/".join(f"{v:.1f}" for v in load)


if __name__ == "__main__":
    main()
