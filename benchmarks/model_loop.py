"""Benchmark: the model loop on Celery with the tiny encoder, from the trigger to an active model.

    .venv/bin/python benchmarks/model_loop.py                   # 10,000 comparisons, prints the figures
    .venv/bin/python benchmarks/model_loop.py --write           # also writes docs/benchmarks.md
    .venv/bin/python benchmarks/model_loop.py --loop-test       # also times tests/modeling/test_loop.py

What is timed: a project with ``--images`` images whose features are already cached (the import's
extraction step is done) and ``--comparisons`` comparisons from a simulated rater. A real worker
(``celery -A worker worker -Q default,gpu``, solo pool) on the configured broker (the filesystem
transport by default, ``CELERY_BROKER_URL`` when set) runs everything after ``tagrank.triggers.check``
is sent: the trigger check, the training run (tags model and image-only baseline, default
hyperparameters), the held-out evaluation, saving the version, rescoring every image and the switch.
The stages come from the timestamps the loop writes to the database. Everything lives in a
temporary folder (SQLite database, media, broker), so nothing of a running demo is touched.
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_setup import REPO, scratch_environment

SECTION = "## Model loop (Celery)"


def prepare_environment(work: Path, database_url: str | None) -> dict:
    env = scratch_environment(work, encoder="tiny")
    if database_url:
        env["DATABASE_URL"] = database_url
    os.environ.update(env)
    return env


def build_project(n_images: int, n_comparisons: int, seed: int = 0):
    """Images with cached features and tags, and comparisons by a noisy simulated rater."""
    import numpy as np
    from django.contrib.auth import get_user_model
    from PIL import Image as PILImage

    from labeling.models import Comparison, Image, ImageTag, Membership, Project, Tag
    from modeling.models import ImageFeatures
    from modeling.services import feature_extraction

    rng = np.random.default_rng(seed)
    project = Project.objects.create(name="Benchmark", slug=f"bench-{int(time.time())}",
                                     retrain_min_new_comparisons=n_comparisons)
    rater = get_user_model().objects.create_user(f"bench-rater-{project.pk}", password="x")
    Membership.objects.create(project=project, user=rater)
    images = Image.objects.bulk_create(
        Image(project=project, file=f"bench/{k}.png", original_name=f"{k}.png", sha256=f"{project.pk:08d}{k:056d}",
              width=32, height=32)
        for k in range(n_images)
    )
    tags = [Tag.objects.create(project=project, name=f"tag{k}") for k in range(20)]
    ImageTag.objects.bulk_create(
        ImageTag(image=image, tag=tags[t]) for image in images for t in rng.choice(20, size=2, replace=False)
    )
    # Features as the import's extraction task would have left them: the tiny encoder on each picture.
    encoder = feature_extraction.current_encoder()
    store = feature_extraction.feature_store(encoder.encoder_id)
    t0 = time.perf_counter()
    for start in range(0, n_images, 256):
        batch = images[start:start + 256]
        pictures = [PILImage.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in batch]
        store.put_images([i.pk for i in batch], encoder.encode_images(pictures))
    extraction = time.perf_counter() - t0
    ImageFeatures.objects.bulk_create(ImageFeatures(image=i, encoder_id=encoder.encoder_id) for i in images)

    quality = rng.normal(size=n_images)
    a = rng.integers(0, n_images, n_comparisons)
    b = (a + rng.integers(1, n_images, n_comparisons)) % n_images
    a_wins = rng.random(n_comparisons) < 1 / (1 + np.exp(-(quality[a] - quality[b]) * 2))
    Comparison.objects.bulk_create(
        (Comparison(project=project, image_a=images[i], image_b=images[j], outcome="a" if w else "b",
                    rater=rater, client_key=f"c{k}")
         for k, (i, j, w) in enumerate(zip(a, b, a_wins))),
        batch_size=2000,
    )
    return project, extraction


def start_worker(log_path: Path) -> subprocess.Popen:
    from worker.tasks import ping

    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "worker", "worker", "-Q", "default,gpu", "--pool", "solo",
         "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=REPO, env=dict(os.environ), stdout=open(log_path, "wb"), stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            ping.apply_async(args=["ready"]).get(timeout=5)
            return process
        except Exception:
            if process.poll() is not None:
                raise RuntimeError(log_path.read_text()[-3000:])
    raise RuntimeError("the worker did not start")


def run_loop(project, timeout: float) -> dict:
    from modeling.models import ModelVersion, TrainingRun
    from worker.tasks import check_triggers_task

    t0 = time.perf_counter()
    check_triggers_task.delay().get(timeout=120)
    while True:
        version = ModelVersion.objects.filter(project=project, is_active=True).first()
        if version is not None:
            break
        failed = TrainingRun.objects.filter(project=project, status=TrainingRun.Status.FAILED).first()
        if failed:
            raise RuntimeError(f"training failed: {failed.error}")
        if time.perf_counter() - t0 > timeout:
            raise RuntimeError("timed out")
        time.sleep(0.2)
    total = time.perf_counter() - t0
    run = version.training_run
    seconds = lambda a, b: (b - a).total_seconds()  # noqa: E731
    return {
        "trigger_to_active_s": total,
        "queued_to_claimed_s": seconds(run.created_at, run.started_at),
        "training_run_s": seconds(run.started_at, run.finished_at),
        "tags_train_s": version.metrics["training_seconds"]["tags"],
        "baseline_train_s": version.metrics["training_seconds"]["image_only"],
        "scoring_s": seconds(version.scoring_started_at, version.scoring_finished_at),
        "finished_to_scoring_s": seconds(run.finished_at, version.scoring_started_at),
        "images": version.scoring_total,
        "rescoring_images_per_s": version.scoring_total / max(seconds(version.scoring_started_at,
                                                                       version.scoring_finished_at), 1e-9),
        "holdout_agreement": version.metrics["pairwise_agreement"],
        "baseline_agreement": version.metrics["baseline_pairwise_agreement"],
        "holdout_comparisons": version.metrics["counts"]["holdout_comparisons"],
        "training_comparisons": version.metrics["counts"]["training_comparisons"],
        "best_epoch": version.metrics["validation"]["tags"].get("best_epoch"),
    }


def time_loop_test() -> float:
    t0 = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MEDIA_ROOT", "TAGRANK_FEATURES_DIR")}
    # A private folder for the test database and the filesystem broker: no other test run steals its messages.
    env["TAGRANK_VAR_DIR"] = tempfile.mkdtemp(prefix="tagrank-loop-test-")
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/modeling/test_loop.py"],
                   cwd=REPO, env=env, check=True)
    return time.perf_counter() - t0


def load_average() -> str:
    try:
        return ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def markdown(r: dict, args, broker: str, loop_test: float | None, load_before: str) -> str:
    lines = [
        SECTION,
        "",
        "Command: `.venv/bin/python benchmarks/model_loop.py --loop-test --write` (tiny encoder, "
        f"broker `{broker}`, SQLite, one worker with the solo pool serving `default,gpu`, default hyperparameters).",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"load average before the run {load_before} (the machine was shared with other work).",
        "",
        f"Project: {args.images:,} images with cached features, {args.comparisons:,} comparisons "
        f"({r['training_comparisons']:,} for training, {r['holdout_comparisons']:,} held out).",
        "",
        "| Step | Seconds |",
        "|---|---|",
        f"| **Trigger to active model** (`tagrank.triggers.check` sent → `is_active`) | **{r['trigger_to_active_s']:.1f}** |",
        f"| queued → claimed by the worker | {r['queued_to_claimed_s']:.1f} |",
        f"| training run (read data, tags model, baseline, held-out evaluation, save) | {r['training_run_s']:.1f} |",
        f"| of which: tags model training | {r['tags_train_s']:.1f} |",
        f"| of which: image-only baseline training | {r['baseline_train_s']:.1f} |",
        f"| run finished → rescoring started | {r['finished_to_scoring_s']:.1f} |",
        f"| rescoring {r['images']:,} images (bulk inserts) and the switch | {r['scoring_s']:.1f} |",
        "",
        f"Rescoring rate, from cached features, through the task: **{r['rescoring_images_per_s']:.0f} images/s**.",
        f"Held-out pairwise agreement of the trained version {r['holdout_agreement']:.3f} "
        f"(image-only baseline {r['baseline_agreement']:.3f}); best epoch {r['best_epoch']}.",
    ]
    if loop_test is not None:
        lines += ["", f"The loop test (`pytest tests/modeling/test_loop.py`, worker start included): "
                      f"**{loop_test:.0f} s** wall time."]
    return "\n".join(lines) + "\n"


def write_section(text: str) -> None:
    path = REPO / "docs" / "benchmarks.md"
    doc = path.read_text()
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    doc = pattern.sub(lambda _: text + "\n", doc) if pattern.search(doc) else doc.rstrip("\n") + "\n\n" + text
    path.write_text(doc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--comparisons", type=int, default=10000)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--database-url", help="default: a fresh SQLite file in the temporary folder")
    parser.add_argument("--loop-test", action="store_true", help="also time tests/modeling/test_loop.py")
    parser.add_argument("--write", action="store_true", help="write the section into docs/benchmarks.md")
    args = parser.parse_args()

    load_before = load_average()
    loop_test = time_loop_test() if args.loop_test else None
    work = Path(tempfile.mkdtemp(prefix="tagrank-model-loop-"))
    prepare_environment(work, args.database_url)
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    project, extraction = build_project(args.images, args.comparisons)
    print(f"{args.images} images featured in {extraction:.1f}s ({args.images / extraction:.0f} images/s), "
          f"{args.comparisons} comparisons stored", flush=True)
    worker = start_worker(work / "worker.log")
    try:
        result = run_loop(project, args.timeout)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    broker = settings.CELERY_BROKER_URL.split("@")[-1]
    text = markdown(result, args, broker, loop_test, load_before)
    print(text)
    if args.write:
        write_section(text)
        print("written to docs/benchmarks.md")


if __name__ == "__main__":
    main()
