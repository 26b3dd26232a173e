"""Scale run: one project of 10^6 images and 10^7 comparisons on PostgreSQL, measured through the running system.

    .venv/bin/python benchmarks/scale_run.py                                         # 10^6 images, 10^7 comparisons
    .venv/bin/python benchmarks/scale_run.py --images 100000 --comparisons 1000000   # a quick try

It recreates its own database (``--database``, default ``tagrank_scale`` on ``--server``) and writes, with COPY:
image rows (placeholder file names: pair serving and the pages never open files), two of 50 tags per image,
their comparison counters, three model versions (two retired, one active) scoring every image, and the
comparisons of 200 raters (``dashboard.synthetic_judgments``: a Thurstone observer, a third of the pairs
judged by three raters, 2% gold, 10 careless raters). No human scores: the first fit writes them.

Then, against gunicorn (``labelling_loop.Server``, production settings) and one Celery worker on the
``default`` queue (``--broker``, results on ``--results``), in this order:

1. the human-score fit (task ``tagrank.metrics.fit_human_scores``), the pair-queue refill (task
   ``tagrank.selection.refill``, which refits and selects) and the agreement report behind the dashboard
   (task ``tagrank.metrics.compute_agreement``): each sent through the broker and timed until its result
   comes back, with the worker's peak RSS during it;
   Then the incremental step: the same tasks on a worker with ``TAGRANK_INCREMENTAL_FIT=false`` (the loop before
   the comparison cache) and on a fresh one with it on, ``--append`` comparisons appended before each but the
   first (``INCREMENTAL_TASKS``); and the refills step: the refill on a worker that refits first whatever the
   fit costs, then on one that selects from the stored scores past ``RefillPolicy.refit_budget_seconds``
   (``REFILL_VARIANTS``), each cold and then warm after ``--append`` comparisons; and, when asked for, the fits
   step: the human-score fit on a worker of ``--before``'s code and on one of this code, each cold and then
   warm after ``--append`` comparisons, twice (``FIT_TASKS``), and the agreements step: the agreement report on
   a fresh worker of each;
2. ``--raters`` paced raters (``labelling_loop.run_clients``), ``--judgments`` judgments in all: next-pair and
   submit median and p99, with the worker refilling the queue as the judgments ask for it;
3. the manager's pages and their API over HTTP with a session (``--loads`` each): median and p95;
4. the scores and comparisons exports, CSV, from a fresh single-worker server (``labelling_loop.measure_export``):
   time and the server's peak RSS;
5. the database's size and its largest tables.

Each step prints a JSON line; the end prints a Markdown table. The database is dropped unless ``--keep``.
"""
from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from bench_setup import (
    machine_with_postgres, memory_kib, reset_peak, revision_tree, start_django, synthetic_data_parser,
)
from dashboard import (
    copy_comparisons,
    copy_images,
    copy_model_versions,
    copy_rows,
    create_project,
    drop_database,
    recreate_database,
    summary,
    synthetic_judgments,
    timed,
)
from labelling_loop import Server, measure_export, run_clients, start_refill_worker, warm_up

SLUG = "scale"
TAGS = 50


def parse_args():
    parser = synthetic_data_parser(__doc__, images=1_000_000, comparisons=10_000_000, database="tagrank_scale")
    parser.add_argument("--history-raters", type=int, default=200, help="raters of the generated comparisons")
    parser.add_argument("--raters", type=int, default=10, help="paced raters in the loop")
    parser.add_argument("--judgments", type=int, default=300, help="judgments in the loop, over all raters")
    parser.add_argument("--think", type=float, default=0.5, help="a rater's mean pause before answering, seconds")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers (4 threads each)")
    parser.add_argument("--loads", type=int, default=10, help="loads of each manager page")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/8")
    parser.add_argument("--results", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--task-timeout", type=float, default=3600, help="seconds to wait for one worker task")
    parser.add_argument("--export-seconds", type=float, help="stop reading an export after this long (default: "
                        "read it to the end); the report then gives the rate of the part read")
    parser.add_argument("--steps", default="fit,refill,agreement,incremental,refills,io,counts,loop,pages,export,size")
    parser.add_argument("--repeats", type=int, default=3, help="repetitions of each part of the io and closed steps")
    parser.add_argument("--closed", type=int, default=3_000_000, help="closed pairs in the queue for the closed step")
    parser.add_argument("--pages-before", metavar="REVISION", help="also load the manager pages from a server running "
                        "this git revision's code (a `git archive` of it), before the current code's, same data")
    parser.add_argument("--before", metavar="REVISION", help="the fits and agreements steps' \"before\": a worker "
                        "running this git revision's code (a `git archive` of it)")
    parser.add_argument("--append", type=int, default=500, help="comparisons appended before each task of the "
                        "incremental step (as judgments arriving between refills)")
    parser.add_argument("--reuse", action="store_true", help="keep the data an earlier --keep run wrote")
    args = parser.parse_args()
    if {"fits", "agreements"} & set(args.steps.split(",")) and not args.before:
        parser.error("the fits and agreements steps need --before")
    return args


def load() -> float:
    return round(os.getloadavg()[0], 1)


# --- Data -------------------------------------------------------------------------------------------


def generate(args) -> dict:
    """The project, written with COPY; returns the seconds each table took."""
    from django.db import connection
    from django.utils import timezone

    from labeling.models import ImageStats, ImageTag, Tag

    rng = np.random.default_rng(args.seed)
    now = timezone.now()
    seconds = {}
    started = time.perf_counter()
    project, _, rater_ids = create_project(SLUG, args.history_raters)
    image_ids = copy_images(project, args.images, now)
    seconds["images"] = time.perf_counter() - started

    started = time.perf_counter()
    tags = [tag.pk for tag in Tag.objects.bulk_create([Tag(project=project, name=f"tag {k}") for k in range(TAGS)])]
    ids = image_ids.tolist()
    copy_rows(ImageTag._meta.db_table, ["image_id", "tag_id", "source", "created_at"],
              (f"{ids[i]}\t{tags[(7 * i + offset) % TAGS]}\timport\t{now.isoformat()}\n"
               for i in range(len(ids)) for offset in (0, 1)), bulk=True)  # fmt: skip
    seconds["image tags"] = time.perf_counter() - started

    started = time.perf_counter()
    quality = rng.normal(0, 1, args.images)
    judgments = synthetic_judgments(rng, quality, args.comparisons, len(rater_ids))
    copy_comparisons(project, image_ids, rater_ids, judgments, now)
    seconds["comparisons"] = time.perf_counter() - started

    started = time.perf_counter()
    counts = (np.bincount(judgments["first"], minlength=args.images)
              + np.bincount(judgments["second"], minlength=args.images)).tolist()
    copy_rows(ImageStats._meta.db_table, ["image_id", "project_id", "comparison_count"],
              (f"{ids[i]}\t{project.pk}\t{counts[i]}\n" for i in range(len(ids))), bulk=True)
    seconds["image counters"] = time.perf_counter() - started

    started = time.perf_counter()
    copy_model_versions(project, image_ids, quality, args.comparisons, rng)
    seconds["model scores"] = time.perf_counter() - started

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")  # as autovacuum would after a load: statistics and visibility map
    seconds["vacuum analyze"] = time.perf_counter() - started
    return {key: round(value, 1) for key, value in seconds.items()}


def loop_raters(project, n: int) -> list[str]:
    """API tokens of ``n`` rater members who have judged nothing yet."""
    from django.contrib.auth import get_user_model

    from labeling.models import Membership

    User = get_user_model()
    tokens = []
    for k in range(n):
        user, _ = User.objects.get_or_create(username=f"{SLUG}-loop-{k}")
        Membership.objects.get_or_create(project=project, user=user)
        tokens.append(api_token(user))
    return tokens


def api_token(user) -> str:
    from rest_framework.authtoken.models import Token

    return Token.objects.get_or_create(user=user)[0].key


# --- Worker tasks ------------------------------------------------------------------------------------


def worker_task(worker: subprocess.Popen, name: str, timeout: float, *args, **kwargs) -> dict:
    """Send a task through the broker and wait for its result; the worker's RSS before and its peak during it."""
    import worker.dispatch as dispatch

    reset_peak(worker.pid)
    rss_before = memory_kib("VmRSS", worker.pid)
    started = time.perf_counter()
    result = dispatch.task(name, *args, **kwargs).apply_async()
    outcome, error = None, None
    try:
        outcome = result.get(timeout=timeout, propagate=True)
    except Exception as failure:  # noqa: BLE001 (a failed or timed-out task is a finding, reported as such)
        error = f"{type(failure).__name__}: {failure}"[:300]
    return {"step": name, "seconds": round(time.perf_counter() - started, 2), "result": outcome, "error": error,
            "worker_rss_before_mib": round(rss_before / 1024),
            "worker_peak_rss_mib": round(memory_kib("VmHWM", worker.pid) / 1024), "load": load()}


def append_comparisons(project, n: int, rng) -> int:
    """``n`` new comparisons (random pairs and winners by the history raters), appended with COPY as judgments
    arriving between two refills would be. Returns the number written."""
    from django.utils import timezone

    from labeling.models import Comparison, Membership
    from modeling.services.human_scores import project_image_ids

    image_ids = project_image_ids(project)
    raters = np.array(list(Membership.objects.filter(project=project, role="rater").values_list("user_id", flat=True)))
    first = rng.integers(0, len(image_ids), n)
    second = (first + rng.integers(1, len(image_ids), n)) % len(image_ids)
    now, tag = timezone.now().isoformat(), uuid.uuid4().hex[:8]
    copy_rows(Comparison._meta.db_table,
              ["project_id", "image_a_id", "image_b_id", "outcome", "rater_id", "created_at", "client_key", "is_gold"],
              (f"{project.pk}\t{image_ids[i]}\t{image_ids[j]}\t{'a' if rng.random() < 0.5 else 'b'}\t"
               f"{raters[rng.integers(len(raters))]}\t{now}\tappend-{tag}-{k}\tf\n"
               for k, (i, j) in enumerate(zip(first.tolist(), second.tolist()))))  # fmt: skip
    return n


INCREMENTAL_TASKS = (  # (task, comparisons appended before it)
    ("tagrank.metrics.fit_human_scores", 0), ("tagrank.selection.refill", 1), ("tagrank.selection.refill", 1),
    ("tagrank.metrics.fit_human_scores", 1),
)
@dataclass(frozen=True)
class Variant:
    """One side of a side-by-side step: its worker's extra environment, whether tasks after its first find a
    warm cache, and the folder of the code it runs (None: this code)."""

    name: str
    environ: dict
    warms: bool = True
    code: Path | None = None


INCREMENTAL_VARIANTS = (
    Variant("before: no cache", {"TAGRANK_INCREMENTAL_FIT": "false"}, warms=False),
    Variant("after: incremental", {"TAGRANK_INCREMENTAL_FIT": "true"}),
)


def incremental(args, database_url: str, project) -> list[dict]:
    """The model loop's tasks side by side: a worker with ``TAGRANK_INCREMENTAL_FIT=false`` (every task reads
    all comparisons, reads and writes every score: the loop before the cache), then a fresh worker with it
    on (the first task fills the cache, the next read only the appended rows and write only moved scores)."""
    return on_fresh_workers(args, database_url, project, INCREMENTAL_VARIANTS, INCREMENTAL_TASKS,
                            np.random.default_rng(args.seed + 1))


REFILL_VARIANTS = (  # the second with the default policy
    Variant("before: refit first", {"TAGRANK_PAIR_QUEUE": json.dumps({"refit_budget_seconds": 1e12})}),
    Variant("after: stored scores past the budget", {}),
)
REFILL_TASKS = (("tagrank.selection.refill", 0), ("tagrank.selection.refill", 1))


def refills(args, database_url: str, project) -> list[dict]:
    """The refill side by side: on a fresh worker that refits before selecting whatever the fit costs (the code
    before ``RefillPolicy.refit_budget_seconds``), then on a fresh worker with the default budget, which selects
    from the stored scores once the stored fit took longer (run the ``fit`` step first). Each worker refills
    twice: cold (just started), then warm after ``--append`` comparisons (folded in, on the stored path)."""
    return on_fresh_workers(args, database_url, project, REFILL_VARIANTS, REFILL_TASKS,
                            np.random.default_rng(args.seed + 2))


FIT_TASKS = (("tagrank.metrics.fit_human_scores", 0), ("tagrank.metrics.fit_human_scores", 1),
             ("tagrank.metrics.fit_human_scores", 1))
AGREEMENT_TASKS = (("tagrank.metrics.compute_agreement", 0), ("tagrank.metrics.compute_agreement", 1))


def before_and_after(args, database_url: str, project, tasks) -> list[dict]:
    """``tasks`` side by side: on a fresh worker running ``--before``'s code, then on a fresh worker of this
    code (the steps fits: the human-score fit cold, then warm after ``--append`` comparisons, twice; and
    agreements: the agreement report of a fresh worker, then again after ``--append`` comparisons)."""
    import shutil

    from django.conf import settings

    before = revision_tree(args.before)
    try:
        # The earlier code reads this code's var folder: the same files.
        variants = (Variant(f"before: {args.before}", {"TAGRANK_VAR_DIR": str(settings.VAR_DIR)}, code=before),
                    Variant("current code", {}))
        return on_fresh_workers(args, database_url, project, variants, tasks, np.random.default_rng(args.seed + 3))
    finally:
        shutil.rmtree(before, ignore_errors=True)


def fits(args, database_url: str, project) -> list[dict]:
    return before_and_after(args, database_url, project, FIT_TASKS)


def agreements(args, database_url: str, project) -> list[dict]:
    """The reports' own timings (``timings``: load, humans, human_scores, model, charts) join each row."""
    from modeling.models import AgreementReport

    rows = before_and_after(args, database_url, project, AGREEMENT_TASKS)
    for row in rows:
        if isinstance(row.get("result"), dict) and isinstance(row["result"].get(project.slug), int):
            row["timings"] = AgreementReport.objects.get(pk=row["result"][project.slug]).data.get("timings")
            print(json.dumps({"variant": row["variant"], "timings": row["timings"]}), flush=True)
    return rows


def on_fresh_workers(args, database_url: str, project, variants: tuple[Variant, ...], tasks, rng) -> list[dict]:
    """Each variant on a worker of its own (its environment and code), running ``tasks`` ((task, appends)
    pairs) in order, ``--append`` comparisons appended before each task whose ``appends`` is set. A row per
    task."""
    import labelling_loop

    rows = []
    for variant in variants:
        this_code = labelling_loop.REPO
        labelling_loop.REPO = variant.code or this_code
        os.environ.update(variant.environ)
        try:
            worker = start_refill_worker(database_url)
        finally:
            labelling_loop.REPO = this_code
        try:
            worker_task(worker, "tagrank.ping", 300)
            for position, (name, appends) in enumerate(tasks):
                appended = append_comparisons(project, args.append, rng) if appends else 0
                kwargs = {"force": True} if name == "tagrank.selection.refill" else {}
                row = worker_task(worker, name, args.task_timeout, project.pk, **kwargs)
                row.update(variant=variant.name, appended=appended, warm=position > 0 and variant.warms)
                rows.append(row)
                print(json.dumps(row, default=str), flush=True)
        finally:
            worker.kill()
            worker.wait(timeout=60)
            for name in variant.environ:
                os.environ.pop(name, None)
    return rows


def _old_store(project, image_ids, mean, variance, counts, fitted_at) -> None:
    """The store before ``human_score_writes``: every row in one INSERT … unnest … ON CONFLICT statement."""
    from django.db import connection, transaction

    from modeling.models import HumanScore

    table = HumanScore._meta.db_table

    def csv(values):
        return ",".join(map(repr, values.tolist()))

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {table} (project_id, image_id, mean, variance, n_comparisons, fitted_at)
                SELECT %s, image_id, mean, variance, n_comparisons, %s
                FROM unnest(string_to_array(%s, ',')::bigint[], string_to_array(%s, ',')::float8[],
                            string_to_array(%s, ',')::float8[], string_to_array(%s, ',')::integer[])
                    AS fitted (image_id, mean, variance, n_comparisons)
                ON CONFLICT (image_id) DO UPDATE SET mean = EXCLUDED.mean, variance = EXCLUDED.variance,
                    n_comparisons = EXCLUDED.n_comparisons, fitted_at = EXCLUDED.fitted_at
                WHERE {table}.fitted_at <= EXCLUDED.fitted_at""",
            [project.pk, fitted_at, csv(image_ids), csv(mean), csv(variance), csv(counts)],
        )  # fmt: skip


def io_parts(args, project) -> list[dict]:
    """The reads and writes the incremental loop saves, timed in this process (``--repeats`` times each):
    reading every comparison against reading those past the watermark after ``--append`` new ones; reading the
    stored scores for the warm start against the copy; writing every score (before: one unnest statement;
    now: COPY into staging + upsert) against writing the 1% that moved."""
    from django.test import override_settings
    from django.utils import timezone

    from modeling.services import comparison_cache, human_score_writes, human_scores

    rng = np.random.default_rng(args.seed + 2)
    times: dict[str, list[float]] = {}

    def clock(name, call):
        started = time.perf_counter()
        result = call()
        times.setdefault(name, []).append(time.perf_counter() - started)
        return result

    image_ids = human_scores.project_image_ids(project)
    if human_scores.stored_posterior(project, image_ids) is None:  # no fit yet (``--steps`` without fit): a flat one
        human_score_writes.write_scores(project, image_ids, np.zeros(len(image_ids)), np.ones(len(image_ids)),
                                        np.zeros(len(image_ids), dtype=np.int64), timezone.now())
    for _ in range(args.repeats):
        comparison_cache.forget()
        with override_settings(TAGRANK_INCREMENTAL_FIT=False):
            clock("read every comparison (before)", lambda: human_scores.load_comparisons(project))
        human_scores.load_comparisons(project)  # fills the cache
        append_comparisons(project, args.append, rng)
        clock(f"read the comparisons past the watermark, +{args.append:,} (after)",
              lambda: human_scores.load_comparisons(project))
        human_score_writes.forget()
        means = clock("read the stored scores for the warm start (before)",
                      lambda: human_scores.stored_means(project, image_ids))
        clock("warm start from the copy (after: a version check)", lambda: human_scores.stored_means(project, image_ids))
        stored = human_scores.stored_posterior(project, image_ids)
        variance, counts = np.nan_to_num(stored[1], nan=1.0), np.zeros(len(image_ids), dtype=np.int64)
        mean = means.copy()
        clock(f"write every score, {len(image_ids):,} rows, one unnest statement (before)",
              lambda: _old_store(project, image_ids, mean, variance, counts, timezone.now()))
        human_score_writes.forget()
        clock(f"write every score, {len(image_ids):,} rows, COPY + upsert (after, no copy)",
              lambda: human_score_writes.write_scores(project, image_ids, mean, variance, counts, timezone.now()))
        human_scores.stored_means(project, image_ids)  # the copy, current again
        moved = rng.choice(len(image_ids), max(1, len(image_ids) // 100), replace=False)
        mean = mean.copy()
        mean[moved] += 1e-2  # past human_score_writes.MOVED_SHARE of any score's standard deviation here
        written = clock("write the moved scores, 1% of rows (after)",
                        lambda: human_score_writes.write_scores(project, image_ids, mean, variance, counts,
                                                                timezone.now()))
        assert written == len(moved), (written, len(moved))
    return mean_rows("io", times)


def _old_closed_pair_test(closed, image_ids: np.ndarray):
    """``pair_selection.closed_pair_test`` before it read columns: the rows as tuples, then the same sorted keys."""
    pairs = np.array(list(closed.values_list("image_low_id", "image_high_id")), dtype=np.int64).reshape(-1, 2)
    n = len(image_ids)
    low, high = np.searchsorted(image_ids, pairs[:, 0]), np.searchsorted(image_ids, pairs[:, 1])
    known = (low < n) & (high < n)
    return np.sort(low[known] * n + high[known])


def closed_pairs(args, project) -> list[dict]:
    """Reading the queue's closed pairs, as every active refill does (``pair_selection.closed_pair_test``):
    ``--closed`` closed pairs of random images written in a transaction that is rolled back, read ``--repeats``
    times each way, alternating: a tuple per row (before) and as columns (now)."""
    from django.db import connection, transaction

    from labeling.models import PairCandidate
    from modeling.services import human_scores
    from modeling.services.pair_selection import closed_pair_test

    rng = np.random.default_rng(args.seed + 4)
    image_ids = human_scores.project_image_ids(project)
    first, second = rng.integers(0, len(image_ids), (2, int(args.closed * 1.1)))
    pairs = np.unique(np.stack([np.minimum(first, second), np.maximum(first, second)], axis=1)[first != second], axis=0)
    pairs = pairs[rng.permutation(len(pairs))[:args.closed]]
    times: dict[str, list[float]] = {}
    with transaction.atomic():
        with connection.cursor() as cursor, cursor.cursor.copy(
                "COPY labeling_paircandidate (project_id, image_low_id, image_high_id, priority, source, judgments, "
                "is_open, created_at, updated_at) FROM STDIN") as copy:
            for low, high in zip(image_ids[pairs[:, 0]].tolist(), image_ids[pairs[:, 1]].tolist()):
                copy.write(f"{project.pk}\t{low}\t{high}\t0\tactive\t3\tf\tnow\tnow\n")
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE labeling_paircandidate")
        closed = PairCandidate.objects.filter(project=project, is_open=False)
        for _ in range(args.repeats):
            for part, read in (
                ("a tuple per row (before)", lambda: _old_closed_pair_test(closed, image_ids)),
                ("as columns (now: closed_pair_test)", lambda: closed_pair_test(project, image_ids)),
            ):
                started = time.perf_counter()
                read()
                times.setdefault(f"read {len(pairs):,} closed pairs, {part}", []).append(time.perf_counter() - started)
        transaction.set_rollback(True)
    return mean_rows("closed", times)


def mean_rows(step: str, times: dict[str, list[float]]) -> list[dict]:
    """A row per part of ``step``: the mean of its ``times`` and its standard error, printed as it goes."""
    rows = []
    for part, values in times.items():
        values = np.array(values)
        se = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0.0
        rows.append({"step": step, "part": part, "mean_s": round(float(values.mean()), 3), "se_s": round(float(se), 3),
                     "repeats": len(values), "load": load()})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def count_queries(args, project) -> list[dict]:
    """What the project, progress and models pages ask, timed in this process before (counting the comparisons, as
    those pages did) and after (reading the per-rater, per-day counters), alternating, ``--repeats`` × 3 times."""
    from datetime import timedelta

    from django.db.models import Avg, Count, Max, Q
    from django.db.models.functions import TruncDate
    from django.utils import timezone

    from labeling.models import Comparison
    from labeling.services import rater_counts

    comparisons = Comparison.objects.filter(project=project)
    since = timezone.now() - timedelta(days=30)
    rater = comparisons.values_list("rater_id", flat=True).first()
    pairs = {
        "all of the project's judgments": (
            lambda: comparisons.count(), lambda: rater_counts.project_total(project)),
        "one rater's judgments": (
            lambda: comparisons.filter(rater_id=rater).count(), lambda: rater_counts.rater_total(project, rater)),
        "per rater: judgments, sides, gold, last, mean time": (
            lambda: list(comparisons.values("rater").annotate(
                n=Count("id"), last=Max("created_at"), mean_ms=Avg("response_ms"),
                gold_judged=Count("id", filter=Q(is_gold=True)),
                gold_correct=Count("id", filter=Q(is_gold=True, gold_correct=True)),
                left=Count("id", filter=Q(outcome="a")), right=Count("id", filter=Q(outcome="b"))).order_by()),
            lambda: rater_counts.per_rater(project)),
        "per day, last 30 days": (
            lambda: list(comparisons.filter(created_at__gte=since).annotate(day=TruncDate("created_at"))
                         .values("day").annotate(n=Count("*")).order_by("day")),
            lambda: rater_counts.per_day(project, since.date())),
    }
    rows = []
    for name, (before, after) in pairs.items():
        times = {"before": [], "after": []}
        for _ in range(3 * args.repeats):
            for label, call in (("before", before), ("after", after)):
                started = time.perf_counter()
                call()
                times[label].append(time.perf_counter() - started)
        row = {"step": "counts", "query": name, "load": load()}
        for label, values in times.items():
            values = np.array(values) * 1000
            row[f"{label}_ms"] = round(float(values.mean()), 1)
            row[f"{label}_se_ms"] = round(float(values.std(ddof=1) / np.sqrt(len(values))), 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


# --- Loop and pages ----------------------------------------------------------------------------------


def rating_loop(args, server: Server, project, tokens: list[str]) -> dict:
    from django.db.models import Count

    from labeling.models import PairLease

    warm_up(server.port, SLUG, tokens[-4:])
    since = time.time()
    cpu_before = server.cpu_seconds()
    result = run_clients(server.port, SLUG, tokens, args.raters, max(1, args.judgments // args.raters), think_s=args.think)
    result["server_cpu_ms_per_judgment"] = round(1000 * (server.cpu_seconds() - cpu_before) / max(1, result["judgments"]), 1)
    leases = (PairLease.objects.filter(project=project, created_at__gte=datetime.fromtimestamp(since, timezone.utc))
              .values("candidate__source").annotate(n=Count("id")))
    result["leases_by_source"] = {row["candidate__source"] or "none": row["n"] for row in leases}
    result["step"], result["load"] = "loop", load()
    for key in ("next_median_ms", "next_p99_ms", "submit_median_ms", "submit_p99_ms", "requests_per_s", "seconds"):
        result[key] = round(result[key], 1)
    return result


MANAGER_PAGES = [
    "/projects/{slug}/", "/projects/{slug}/dashboard/", "/projects/{slug}/progress/", "/projects/{slug}/models/",
    "/projects/{slug}/browse/", "/projects/{slug}/browse/?sort=-score", "/api/v1/projects/{slug}/agreement/",
    "/api/v1/projects/{slug}/progress/",
]


def pages_of_revision(args, database_url: str, manager) -> list[dict]:
    """The manager pages served by ``--pages-before``'s code (extracted with ``git archive``) on the same data."""
    import shutil

    import labelling_loop

    folder = revision_tree(args.pages_before)
    current, labelling_loop.REPO = labelling_loop.REPO, folder
    try:
        # Its own var folder: its static files are collected there (and the old code's manifest is its own).
        server = Server(database_url, workers=args.workers, threads=4,
                        environ={"SECRET_KEY": os.environ["SECRET_KEY"], "TAGRANK_VAR_DIR": str(folder / "var")})
        try:
            return manager_pages(args, server, manager, variant=f"before: {args.pages_before}")
        finally:
            server.stop()
    finally:
        labelling_loop.REPO = current
        shutil.rmtree(folder, ignore_errors=True)


def manager_pages(args, server: Server, manager, variant: str | None = None) -> list[dict]:
    """Each page ``--loads`` times over one keep-alive connection with the manager's session."""
    from django.test import Client

    client = Client()
    client.force_login(manager)
    headers = {"Cookie": f"sessionid={client.cookies['sessionid'].value}", "Accept": "text/html,application/json"}
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
    rows = []
    for template in MANAGER_PAGES:
        path = template.format(slug=SLUG)
        statuses, sizes = set(), set()

        def fetch():
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            statuses.add(response.status)
            sizes.add(len(response.read()))

        started = time.perf_counter()
        fetch()  # the first load, separately: caches and connections are cold
        first = time.perf_counter() - started
        row = {"step": "page", "path": path, "first_ms": round(1000 * first, 1), **summary(timed(fetch, args.loads)),
               "status": sorted(statuses), "bytes": max(sizes), "load": load(), "variant": variant}
        if statuses - {200}:
            row["server_log"] = server.log_tail(600)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


# --- Size ------------------------------------------------------------------------------------------


def database_size(name: str) -> dict:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_database_size(%s)", [name])
        total = cursor.fetchone()[0]
        cursor.execute(
            """SELECT c.relname, pg_total_relation_size(c.oid), pg_relation_size(c.oid), c.reltuples::bigint
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE c.relkind = 'r' AND n.nspname = 'public' ORDER BY 2 DESC LIMIT 8""")
        tables = [{"table": t, "total_mib": round(s / 2**20), "heap_mib": round(h / 2**20), "rows": r}
                  for t, s, h, r in cursor.fetchall()]
    return {"step": "size", "database_mib": round(total / 2**20), "tables": tables}


# --- Report ----------------------------------------------------------------------------------------


def markdown(rows: list[dict]) -> str:
    lines = ["| step | figure | load |", "|---|---|---:|"]
    for row in rows:
        step = row["step"]
        if step == "generate":
            figure = ", ".join(f"{k} {v:.0f} s" for k, v in row["seconds"].items())
        elif step.startswith("tagrank."):
            if row.get("variant"):
                step = f"{row['variant']}: {step}" + (f" after +{row['appended']:,} comparisons" if row["appended"] else
                                                      " (first task of a fresh worker)")
            result = row.get("result")
            detail = result[0] if isinstance(result, list) and result else (
                next(iter(result.values()), {}) if isinstance(result, dict) else {})
            reads = (f"; {detail['comparisons_read']:,} comparisons read, {detail['scores_written']:,} scores written"
                     if isinstance(detail, dict) and detail.get("comparisons_read") is not None else "")
            if isinstance(detail, dict) and detail.get("posterior") == "stored":
                reads = f"; from the stored scores, {detail['comparisons_folded_in']:,} comparisons folded in"
            if row.get("timings"):
                reads = "; " + ", ".join(f"{part} {seconds:.1f} s" for part, seconds in row["timings"].items())
            figure = (f"{row['seconds']:.1f} s{reads}, worker peak RSS {row['worker_peak_rss_mib']:,} MiB "
                      f"(before {row['worker_rss_before_mib']:,} MiB)" + (f"; error {row['error']}" if row["error"] else ""))
        elif step == "loop":
            figure = (f"{row['judgments']} judgments, {row['clients']} raters: next-pair {row['next_median_ms']} / "
                      f"{row['next_p99_ms']} ms, submit {row['submit_median_ms']} / {row['submit_p99_ms']} ms (median / "
                      f"p99); {row['server_cpu_ms_per_judgment']} ms server CPU per judgment; leases "
                      f"{row['leases_by_source']}; errors {row['error_count']}")
        elif step == "counts":
            figure = (f"{row['query']}: before (counting comparisons) {row['before_ms']:,.1f} ± {row['before_se_ms']:,.1f}"
                      f" ms, after (counters) {row['after_ms']:,.1f} ± {row['after_se_ms']:,.1f} ms")
        elif step in ("io", "closed"):
            figure = f"{row['part']}: {row['mean_s']:.3f} ± {row['se_s']:.3f} s (mean ± s.e., {row['repeats']} runs)"
        elif step == "page":
            if row.get("variant"):
                step = f"page ({row['variant']})"
            figure = (f"`{row['path']}` {row['median_ms']} / {row['p95_ms']} ms (median / p95), first {row['first_ms']} "
                      f"ms, {row['bytes']:,} B, status {row['status']}")
        elif step == "export":
            figure = (f"{row['export']} {row['format']}{'' if row['complete'] else ' (stopped early)'}: {row['rows']:,} rows, {row['bytes'] / 1e6:,.0f} MB in "
                      f"{row['seconds']:.1f} s ({row['rows_per_s']:,.0f} rows/s), server RSS {row['rss_before_mib']:.0f}"
                      f" → peak {row['peak_rss_mib']:.0f} MiB")
        elif step == "size":
            figure = f"{row['database_mib']:,} MiB; " + ", ".join(
                f"{t['table']} {t['total_mib']:,} MiB" for t in row["tables"])
        else:
            continue
        lines.append(f"| {step} | {figure} | {row.get('load', '')} |")
    return "\n".join(lines)


def main():
    args = parse_args()
    # A stop (timeout, kill) runs the finally blocks below, which stop the server and the worker.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    steps = set(args.steps.split(","))
    database_url = f"{args.server}/{args.database}"
    os.environ.update(CELERY_BROKER_URL=args.broker, CELERY_RESULT_BACKEND=args.results, LOG_LEVEL="WARNING",
                      SECRET_KEY=os.environ.get("SECRET_KEY") or "benchmark-only-" + uuid.uuid4().hex)
    if not args.reuse:
        recreate_database(args.server, args.database)
    start_django(database_url)
    from django.contrib.auth import get_user_model

    from labeling.models import Project

    rows = [{"step": "start", "machine": machine_with_postgres(), "images": args.images,
             "comparisons": args.comparisons, "load": load()}]
    print(json.dumps(rows[0]), flush=True)
    worker = None
    try:
        if not args.reuse:
            started = time.perf_counter()
            seconds = generate(args)
            rows.append({"step": "generate", "seconds": seconds, "total_s": round(time.perf_counter() - started, 1),
                         "load": load()})
            print(json.dumps(rows[-1]), flush=True)
        project = Project.objects.get(slug=SLUG)
        manager = get_user_model().objects.get(username=f"{SLUG}-manager")
        tokens = loop_raters(project, args.raters)
        manager_token = api_token(manager)
        worker = start_refill_worker(database_url)
        worker_task(worker, "tagrank.ping", 300)  # started and connected: its start-up is not timed below
        for step, name, kwargs in (("fit", "tagrank.metrics.fit_human_scores", {}),
                                   ("refill", "tagrank.selection.refill", {"force": True}),
                                   ("agreement", "tagrank.metrics.compute_agreement", {})):
            if step in steps:
                rows.append(worker_task(worker, name, args.task_timeout, project.pk, **kwargs))
                print(json.dumps(rows[-1], default=str), flush=True)
        for step, side_by_side in (("fits", fits), ("agreements", agreements), ("incremental", incremental),
                                   ("refills", refills)):
            if step in steps:  # on workers of their own: two workers on one queue would share the tasks
                worker.kill()
                worker.wait(timeout=60)
                rows += side_by_side(args, database_url, project)
                worker = start_refill_worker(database_url)
                worker_task(worker, "tagrank.ping", 300)
        if "io" in steps:
            rows += io_parts(args, project)
        if "counts" in steps:
            rows += count_queries(args, project)
        if "closed" in steps:
            rows += closed_pairs(args, project)
        if steps & {"loop", "pages"}:
            server = Server(database_url, workers=args.workers, threads=4,
                            environ={"SECRET_KEY": os.environ["SECRET_KEY"]})
            try:
                if "loop" in steps:
                    rows.append(rating_loop(args, server, project, tokens))
                    print(json.dumps(rows[-1]), flush=True)
                # A refill the judgments sent may still run: stop it (a cold stop), the pages are timed without it.
                worker.kill()
                worker.wait(timeout=60)
                if "pages" in steps:
                    if args.pages_before:
                        rows += pages_of_revision(args, database_url, manager)
                    rows += manager_pages(args, server, manager, variant="current code" if args.pages_before else None)
            finally:
                server.stop()
        worker.kill()
        worker.wait(timeout=60)
        worker = None
        if "export" in steps:
            for what in ("scores", "comparisons"):
                result = measure_export(database_url, SLUG, manager_token, "csv", what=what,
                                        max_seconds=args.export_seconds)
                rows.append({"step": "export", **result, "load": load()})
                print(json.dumps(rows[-1]), flush=True)
        if "size" in steps:
            rows.append(database_size(args.database))
            print(json.dumps(rows[-1]), flush=True)
    finally:
        if worker is not None:
            worker.kill()
            worker.wait(timeout=60)
        from django.db import connections

        connections.close_all()
        if not args.keep:
            drop_database(args.server, args.database)
    print()
    print(markdown(rows))


if __name__ == "__main__":
    main()
