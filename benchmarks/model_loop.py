"""Benchmark: the model loop on Celery, from the trigger to an active model.

    .venv/bin/python benchmarks/model_loop.py                                  # 10,000 comparisons, 2,000 images
    .venv/bin/python benchmarks/model_loop.py --repo /tmp/base --repo .        # side by side: each tree's code in turn
    .venv/bin/python benchmarks/model_loop.py --images 10000 --comparisons 100000 \\
        --postgres postgres://postgres@127.0.0.1:5432/tagrank_bench            # a fresh database per tree, dropped after
    .venv/bin/python benchmarks/model_loop.py --profile /tmp/run.prof          # the training run under cProfile
    .venv/bin/python benchmarks/model_loop.py --loop-test                      # also times tests/modeling/test_loop.py

What is timed: a project with ``--images`` images whose features (and texts' embeddings) are already
cached, as the import's extraction task leaves them, and ``--comparisons`` comparisons from a
simulated rater. A real worker (``celery -A worker worker -Q default,gpu``, solo pool, started and
answering a ping before the clock starts) on the configured broker (the filesystem transport by
default) runs everything after ``tagrank.triggers.check`` is sent: the trigger check, the training
run, the held-out evaluation, saving the version, the rescoring and the switch. The stages come
from the timestamps the run writes to its log and the version's scoring timestamps.

``--repo DIR`` runs the loop with another tree's code (e.g. ``git archive`` of an earlier commit
extracted in /tmp): this script builds the same project in a new process with DIR first on the path
and starts the worker in DIR. Several ``--repo`` run one after the other, on the same inputs, and
the figures are printed side by side. Everything lives in a temporary folder (SQLite database,
media, broker), or in a new PostgreSQL database with ``--postgres``, so nothing else is touched.

``--profile FILE`` builds the project, then runs the training run and the rescoring in a fresh
process (cold, like a new worker's first task, imports included) under cProfile, without Celery,
and prints the top of the profile.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_setup import REPO, scratch_environment

RESULT = "RESULT "
# The run's stages, as its log names them (training_runs.RunReporter.stage), in order.
STAGES = [
    ("extracting missing features", "features check"),
    ("reading the dataset", "reading the dataset (database, feature store)"),
    ("training the tags model", "tags model training"),
    ("training the image-only baseline", "image-only baseline training"),
    ("evaluating on the held-out comparisons", "held-out evaluation (new version, baseline, champion)"),
    ("saving the model version", "saving the version (weights, scores), promotion"),
]


def prepare_environment(work: Path, database_url: str | None, encoder: str) -> dict:
    env = scratch_environment(work, encoder=encoder)
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
        (Image(project=project, file=f"bench/{k}.png", original_name=f"{k}.png",
               sha256=f"{project.pk:08d}{k:056d}", width=32, height=32) for k in range(n_images)),
        batch_size=5000,
    )
    tags = [Tag.objects.create(project=project, name=f"tag{k}") for k in range(20)]
    ImageTag.objects.bulk_create(
        (ImageTag(image=image, tag=tags[t]) for image in images for t in rng.choice(20, size=2, replace=False)),
        batch_size=5000,
    )
    # Features as the import's extraction task would have left them: the encoder on each picture, and
    # the embeddings of the texts (feature_extraction.extract_features embeds an image's tags too).
    encoder = feature_extraction.current_encoder()
    store = feature_extraction.feature_store(encoder.encoder_id)
    t0 = time.perf_counter()
    for start in range(0, n_images, 256):
        batch = images[start:start + 256]
        pictures = [PILImage.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in batch]
        store.put_images([i.pk for i in batch], encoder.encode_images(pictures))
    feature_extraction.ensure_text_features(store, [tag.name for tag in tags], lambda: encoder)
    extraction = time.perf_counter() - t0
    ImageFeatures.objects.bulk_create((ImageFeatures(image=i, encoder_id=encoder.encoder_id) for i in images),
                                      batch_size=5000)

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


def start_worker(log_path: Path, code: Path) -> subprocess.Popen:
    from worker.tasks import ping

    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "worker", "worker", "-Q", "default,gpu", "--pool", "solo",
         "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=code, env=dict(os.environ), stdout=open(log_path, "wb"), stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            ping.apply_async(args=["ready"]).get(timeout=5)
            return process
        except Exception:
            if process.poll() is not None:
                raise RuntimeError(log_path.read_text()[-3000:])
    raise RuntimeError("the worker did not start")


def stage_seconds(run) -> dict:
    """Seconds per stage of a finished run, from the timestamps of its log lines (relative to the claim)."""
    marks = []
    for line in run.log.splitlines():
        found = re.match(r"\[\s*([\d.]+)s\] (.*)", line)
        if not found:
            continue
        for prefix, label in STAGES:
            if found.group(2).startswith(prefix):
                marks.append((float(found.group(1)), label))
    end = (run.finished_at - run.started_at).total_seconds()
    out = {"claim → first stage (imports, configuration)": marks[0][0] if marks else None}
    for (t, label), following in zip(marks, [m[0] for m in marks[1:]] + [end]):
        out[label] = following - t
    return out


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
    validation = version.metrics["validation"]["tags"]
    return {
        "trigger_to_active_s": total,
        "queued_to_claimed_s": seconds(run.created_at, run.started_at),
        "training_run_s": seconds(run.started_at, run.finished_at),
        "stages": stage_seconds(run),
        "finished_to_scoring_s": seconds(run.finished_at, version.scoring_started_at),
        "scoring_s": seconds(version.scoring_started_at, version.scoring_finished_at),
        "tags_train_s": version.metrics["training_seconds"]["tags"],
        "baseline_train_s": version.metrics["training_seconds"]["image_only"],
        "images": version.scoring_total,
        "holdout_agreement": version.metrics["pairwise_agreement"],
        "baseline_agreement": version.metrics["baseline_pairwise_agreement"],
        "holdout_comparisons": version.metrics["counts"]["holdout_comparisons"],
        "training_comparisons": version.metrics["counts"]["training_comparisons"],
        "tags_steps": validation.get("steps"),
        "best_epoch": validation.get("best_epoch"),
        "last_epoch": version.metrics["history"]["tags"][-1]["epoch"] if version.metrics["history"]["tags"] else None,
    }


def profile_run(run_id: int, out: str) -> None:
    """In this fresh process: the training run and the rescoring, cold, under cProfile."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.enable()
    import django

    django.setup()
    from modeling.models import TrainingRun
    from modeling.services import scoring, training_runs

    result = training_runs.execute_run(run_id)
    t1 = time.perf_counter()
    rescored = scoring.rescore(result["model_version"])
    profiler.disable()
    print(f"training run {t1 - t0:.1f} s (from a cold start: imports included), rescoring and switch "
          f"{time.perf_counter() - t1:.1f} s: {result} {rescored}")
    run = TrainingRun.objects.get(pk=run_id)
    print("\n".join(line for line in run.log.splitlines() if line.startswith("[")))
    print(json.dumps(stage_seconds(run), indent=1))
    profiler.dump_stats(out)
    pstats.Stats(out).sort_stats("cumulative").print_stats(45)
    pstats.Stats(out).sort_stats("tottime").print_stats(20)


def one_tree(args) -> dict:
    """In a child process: build the project and time the loop with ``args.code``'s code."""
    code = Path(args.code).resolve()
    work = Path(tempfile.mkdtemp(prefix="tagrank-model-loop-"))
    prepare_environment(work, args.database_url, args.encoder)
    sys.path.insert(0, str(code))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    project, extraction = build_project(args.images, args.comparisons)
    print(f"{code}: {args.images} images featured in {extraction:.1f}s, {args.comparisons} comparisons stored",
          file=sys.stderr, flush=True)
    if args.profile:
        from modeling.services import training_runs

        run, _ = training_runs.request_training(project, dispatch=False)
        subprocess.run([sys.executable, str(Path(__file__).resolve()), "--profile-run", str(run.pk),
                        "--profile", args.profile], cwd=code, env=dict(os.environ, PYTHONPATH=str(code)), check=True)
        return {}
    worker = start_worker(work / "worker.log", code)
    load = os.getloadavg()
    try:
        result = run_loop(project, args.timeout)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    result.update(code=str(code), broker=settings.CELERY_BROKER_URL.split("@")[-1],
                  database=settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
                  load_before=load, load_after=os.getloadavg())
    return result


def time_loop_test() -> float:
    t0 = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MEDIA_ROOT", "TAGRANK_FEATURES_DIR")}
    # A private folder for the test database and the filesystem broker: no other test run steals its messages.
    env["TAGRANK_VAR_DIR"] = tempfile.mkdtemp(prefix="tagrank-loop-test-")
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/modeling/test_loop.py"],
                   cwd=REPO, env=env, check=True)
    return time.perf_counter() - t0


def postgres_database(url: str, suffix: str, drop: bool = False) -> str:
    """A fresh database named after the one in ``url`` plus ``suffix`` (created, or dropped); its URL."""
    import psycopg

    base, name = url.rsplit("/", 1)
    name = f"{name}_{suffix}"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop:
            connection.execute(f'CREATE DATABASE "{name}"')
    return f"{base}/{name}"


def fmt(value, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def markdown(results: list[dict], args) -> str:
    r0 = results[0]
    names = [Path(r["code"]).name or r["code"] for r in results]
    head = "| | " + " | ".join(f"`{n}`" for n in names) + " |\n|---|" + "---|" * len(results)
    row = lambda label, key, digits=1: f"| {label} | " + " | ".join(fmt(r.get(key), digits) for r in results) + " |"  # noqa: E731
    labels = list(dict.fromkeys(label for r in results for label in r["stages"]))
    lines = [
        f"{args.images:,} images, {args.comparisons:,} comparisons ({r0['training_comparisons']:,} for training, "
        f"{r0['holdout_comparisons']:,} held out); encoder `{args.encoder}`; {r0['database']}, broker `{r0['broker']}`; "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}.",
        "",
        head,
        row("**trigger → active model (s)**", "trigger_to_active_s"),
        row("queued → claimed (s)", "queued_to_claimed_s"),
        row("training run (s)", "training_run_s"),
        *(f"| &nbsp;&nbsp;{label} | " + " | ".join(fmt(r["stages"].get(label)) for r in results) + " |" for label in labels),
        row("run finished → rescoring started (s)", "finished_to_scoring_s"),
        row("rescoring and the switch (s)", "scoring_s"),
        row("tags model: steps", "tags_steps", 0),
        row("tags model: best epoch", "best_epoch", 2),
        row("tags model: last epoch", "last_epoch", 2),
        row("held-out pairwise agreement", "holdout_agreement", 3),
        row("image-only baseline's held-out agreement", "baseline_agreement", 3),
        "| load average before → after | " + " | ".join(
            f"{'/'.join(f'{v:.1f}' for v in r['load_before'])} → {'/'.join(f'{v:.1f}' for v in r['load_after'])}"
            for r in results) + " |",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--comparisons", type=int, default=10000)
    parser.add_argument("--encoder", default="tiny", help="TAGRANK_ENCODER (tiny, as in the earlier figures)")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--repo", action="append", type=Path, help="a tree whose code runs the loop (repeatable; "
                        "default: this one)")
    parser.add_argument("--postgres", help="PostgreSQL URL; each tree gets a fresh database named after it + _N")
    parser.add_argument("--profile", help="write a cProfile of the training run (in-process, no Celery) here")
    parser.add_argument("--loop-test", action="store_true", help="also time tests/modeling/test_loop.py")
    parser.add_argument("--code", help=argparse.SUPPRESS)           # the child: one tree
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    parser.add_argument("--profile-run", type=int, help=argparse.SUPPRESS)  # the child's child: the profiled run
    args = parser.parse_args()

    if args.profile_run:
        profile_run(args.profile_run, args.profile)
        return
    if args.code:
        print(RESULT + json.dumps(one_tree(args)), flush=True)
        return

    loop_test = time_loop_test() if args.loop_test else None
    results = []
    for k, code in enumerate(args.repo or [REPO]):
        database_url = postgres_database(args.postgres, str(k)) if args.postgres else None
        command = [sys.executable, str(Path(__file__).resolve()), "--code", str(code.resolve()),
                   "--images", str(args.images), "--comparisons", str(args.comparisons), "--encoder", args.encoder,
                   "--timeout", str(args.timeout)]
        if database_url:
            command += ["--database-url", database_url]
        if args.profile:
            command += ["--profile", str(Path(args.profile).resolve())]
        try:
            out = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout
        finally:
            if args.postgres:
                postgres_database(args.postgres, str(k), drop=True)
        if args.profile:
            print(out)
            continue
        results.append(json.loads(out.split(RESULT, 1)[1].splitlines()[0]))
        print(json.dumps(results[-1]), flush=True)
    if results:
        print(markdown(results, args))
    if loop_test is not None:
        print(f"The loop test (`pytest tests/modeling/test_loop.py`, worker start included): {loop_test:.0f} s wall time.")


if __name__ == "__main__":
    main()
