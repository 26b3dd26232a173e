"""Benchmark: the dashboards at 10^5 images and 10^6 comparisons on PostgreSQL.

    .venv/bin/python benchmarks/dashboard.py                      # 10^5 images, 10^6 comparisons
    .venv/bin/python benchmarks/dashboard.py --images 10000 --comparisons 100000   # a quick run

It creates its own database (``--database``, default ``tagrank_bench_dashboard`` on the server of
``--server``, default postgres://postgres@127.0.0.1:5432), migrates it, and generates a project:

* images: rows with placeholder file names (no files; the galleries' thumbnails 404);
* raters: 200, judging random pairs of a Thurstone observer on a latent quality q ~ N(0, 1) with unit
  noise, 5% ties; a third of the comparisons are on pairs judged by three raters (the overlap that
  agreement needs); 2% are gold pairs; 10 raters are careless (fast, always the left image);
* three model versions (two retired, one active) with a score for every image;

all written with COPY. Then it times, in this process:

1. the human-score fit (``modeling.services.human_scores.fit_human_scores``), cold and warm-started;
2. the agreement task (``tagrank.metrics.compute_agreement``, run in-process: its service
   ``compute_and_store_report``), with the report's own per-phase timings;
3. the dashboard page and the agreement API served from the stored report: server time through
   Django's test client, over HTTP from a gunicorn worker, and the page's load in headless Chromium
   (from navigation start: HTML received, DOM interactive with the inline SVG charts parsed, and the
   load event).

The database is dropped at the end unless ``--keep``.
"""
from __future__ import annotations

import io
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta

import numpy as np
from bench_setup import REPO, benchmark_parser, start_django


SLUG = "bench-dashboard"


def parse_args():
    parser = benchmark_parser(__doc__)
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--comparisons", type=int, default=1_000_000)
    parser.add_argument("--raters", type=int, default=200)
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default="tagrank_bench_dashboard")
    parser.add_argument("--loads", type=int, default=20, help="page loads to time (each way)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def recreate_database(server: str, name: str) -> None:
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def drop_database(server: str, name: str) -> None:
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def copy_rows(table: str, columns: list[str], lines, bulk: bool = False) -> None:
    """COPY text lines (tab-separated, already escaped) into a table.

    ``bulk`` (for 10^6-10^7 generated rows, PostgreSQL superuser): skip the foreign-key triggers (the
    generator's ids are valid) and drop the table's non-unique indexes for the load, building them again
    after it: one sort per index instead of 10^7 random inserts into each."""
    from django.db import connection

    with connection.cursor() as cursor:
        indexes = []
        if bulk:
            cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND indexdef NOT LIKE "
                           "'CREATE UNIQUE%%'", [table])
            indexes = cursor.fetchall()
            cursor.execute("SET session_replication_role = replica")
            for name, _ in indexes:
                cursor.execute(f'DROP INDEX "{name}"')
        with cursor.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            buffer = io.StringIO()
            for count, line in enumerate(lines, start=1):
                buffer.write(line)
                if count % 50_000 == 0:
                    copy.write(buffer.getvalue())
                    buffer = io.StringIO()
            copy.write(buffer.getvalue())
        if bulk:
            cursor.execute("SET session_replication_role = DEFAULT")
            cursor.execute("SET maintenance_work_mem = '512MB'")
            for _, definition in indexes:
                cursor.execute(definition)
            cursor.execute("RESET maintenance_work_mem")


def create_project(slug: str, n_raters: int, overlap: int = 3):
    """The project, its manager (password ``bench-manager-pw``) and ``n_raters`` rater members."""
    from django.contrib.auth import get_user_model

    from labeling.models import Membership, Project

    project = Project.objects.create(name=f"Benchmark {slug}", slug=slug, overlap=overlap)
    User = get_user_model()
    manager = User.objects.create_user(f"{slug}-manager", password="bench-manager-pw")
    Membership.objects.create(project=project, user=manager, role=Membership.Role.MANAGER)
    raters = User.objects.bulk_create([User(username=f"{slug}-rater-{k}") for k in range(n_raters)])
    Membership.objects.bulk_create([Membership(project=project, user=rater) for rater in raters])
    return project, manager, np.array([rater.pk for rater in raters])


def copy_images(project, n: int, now) -> np.ndarray:
    """``n`` image rows with placeholder file names (no files); returns their ids, ascending."""
    from labeling.models import Image

    copy_rows(
        Image._meta.db_table,
        ["project_id", "file", "thumbnail", "original_name", "sha256", "width", "height", "external_id", "caption",
         "metadata", "created_at"],
        (f"{project.pk}\timages/bench/{i}.jpg\tthumbnails/bench/{i}.webp\tbench_{i}.jpg\t{project.pk:08x}{i:056x}\t"
         f"640\t480\t\t\t{{}}\t{now.isoformat()}\n" for i in range(n)), bulk=True,
    )  # fmt: skip
    return np.array(list(Image.objects.filter(project=project).order_by("id").values_list("id", flat=True)))


def synthetic_judgments(rng, quality: np.ndarray, m: int, n_raters: int) -> dict:
    """``m`` judgments of a Thurstone observer on ``quality`` (unit noise, about 5% ties) as arrays of indices
    into the images and raters: two thirds of the pairs judged once, a third by three different raters; 2%
    gold; raters 0-9 careless (always the left image, quickly)."""
    n = quality.shape[0]
    shared_pairs = m // 9
    single = m - 3 * shared_pairs
    first = rng.integers(n, size=single + shared_pairs)
    second = (first + rng.integers(1, n, size=first.shape[0])) % n
    first = np.concatenate([first[:single], np.repeat(first[single:], 3)])
    second = np.concatenate([second[:single], np.repeat(second[single:], 3)])
    raters_of = rng.integers(n_raters, size=m)
    raters_of[single:] = (np.repeat(rng.integers(n_raters, size=shared_pairs), 3)
                          + np.tile([0, 1, 2], shared_pairs)) % n_raters
    noise = rng.normal(0, 1, (2, m))
    difference = quality[first] + noise[0] - quality[second] - noise[1]
    outcome = np.where(difference > 0, "a", "b").astype(object)
    outcome[np.abs(difference) < 0.09] = "tie"
    careless = raters_of < 10
    outcome[careless] = "a"
    response = np.where(careless, rng.integers(200, 600, m), np.exp(rng.normal(8.0, 0.5, m)).astype(np.int64))
    gold = rng.random(m) < 0.02
    gold_correct = np.where(careless, rng.random(m) < 0.5, rng.random(m) < 0.9)
    return {"first": first, "second": second, "rater": raters_of, "outcome": outcome, "response_ms": response,
            "is_gold": gold, "gold_correct": gold_correct, "days_ago": rng.integers(0, 180, m)}


def copy_comparisons(project, image_ids: np.ndarray, rater_ids: np.ndarray, judgments: dict, now,
                     chunk: int = 1_000_000) -> None:
    """COPY ``synthetic_judgments`` into the comparisons, a chunk at a time (Python lists, not numpy scalars)."""
    from labeling.models import Comparison

    created = [(now - timedelta(days=days)).isoformat() for days in range(180)]
    gold_text = np.where(judgments["is_gold"], np.where(judgments["gold_correct"], "t", "f"), "\\N")

    def lines():
        for start in range(0, judgments["first"].shape[0], chunk):
            part = slice(start, start + chunk)
            columns = zip(image_ids[judgments["first"][part]].tolist(), image_ids[judgments["second"][part]].tolist(),
                          judgments["outcome"][part].tolist(), rater_ids[judgments["rater"][part]].tolist(),
                          judgments["days_ago"][part].tolist(), judgments["response_ms"][part].tolist(),
                          judgments["is_gold"][part].tolist(), gold_text[part].tolist())
            for k, (a, b, outcome, rater, days, response, gold, correct) in enumerate(columns, start=start):
                yield (f"{project.pk}\t{a}\t{b}\t{outcome}\t{rater}\t{created[days]}\t{response}\tbench-{k:09d}\t"
                       f"{'t' if gold else 'f'}\t{correct}\n")

    copy_rows(
        Comparison._meta.db_table,
        ["project_id", "image_a_id", "image_b_id", "outcome", "rater_id", "created_at", "response_ms", "client_key",
         "is_gold", "gold_correct"],
        lines(), bulk=True,
    )  # fmt: skip
    from labeling.services.rater_counts import recount_rater_days

    recount_rater_days(project)  # the bulk COPY runs with triggers off: the counters are built afterwards


def copy_model_versions(project, image_ids: np.ndarray, quality: np.ndarray, m: int, rng,
                        statuses=("retired", "retired", "active")) -> None:
    """Model versions (the last one best) with a score for every image, noisier for the older ones."""
    from modeling.models import ImageScore, ModelVersion

    n = image_ids.shape[0]
    ids = image_ids.tolist()
    distribution = json.dumps([0.1] * 10)
    for index, status in enumerate(statuses):
        version = ModelVersion.objects.create(
            project=project, encoder_id="openai/clip-vit-base-patch32", status=status, is_active=status == "active",
            n_comparisons=int(m * 0.9 * (index + 1) / len(statuses)),
        )  # fmt: skip
        noise = 1.0 - 0.25 * (index + 3 - len(statuses))
        model_score = np.clip(5.5 + 1.2 * (quality + rng.normal(0, noise, n)), 1, 10).tolist()
        copy_rows(
            ImageScore._meta.db_table, ["model_version_id", "image_id", "mean", "distribution", "uncertainty"],
            (f"{version.pk}\t{ids[i]}\t{model_score[i]:.4f}\t{distribution}\t0.2\n" for i in range(n)), bulk=True,
        )  # fmt: skip


def generate(args) -> dict:
    from django.db import connection
    from django.utils import timezone

    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    project, manager, rater_ids = create_project(SLUG, args.raters)
    now = timezone.now()
    image_ids = copy_images(project, args.images, now)
    quality = rng.normal(0, 1, args.images)
    copy_comparisons(project, image_ids, rater_ids, synthetic_judgments(rng, quality, args.comparisons, len(rater_ids)),
                     now)
    copy_model_versions(project, image_ids, quality, args.comparisons, rng)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return {"project": project, "manager": manager, "seconds": time.perf_counter() - started}


def timed(function, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return times


def summary(times: list[float]) -> dict:
    ordered = sorted(times)
    return {"median_ms": round(1000 * statistics.median(ordered), 1),
            "p95_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1),
            "n": len(ordered)}


def serve_and_time(args, session_cookie: str, url_path: str) -> dict:
    """The page over HTTP from one gunicorn worker, and its load in headless Chromium."""
    port = 8765
    env = dict(os.environ, DATABASE_URL=os.environ["DATABASE_URL"], DEBUG="true")
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers", "1",
         "--log-level", "warning"],
        cwd=REPO, env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{base}/healthz/", timeout=2).read()
                break
            except Exception:  # noqa: BLE001 (not up yet)
                time.sleep(0.2)
        request = urllib.request.Request(f"{base}{url_path}", headers={"Cookie": f"sessionid={session_cookie}"})

        def fetch():
            with urllib.request.urlopen(request, timeout=30) as response:
                assert response.status == 200
                return response.read()

        size = len(fetch())
        http = summary(timed(fetch, args.loads))
        http["html_bytes"] = size
        browser = None if args.no_browser else browser_load(base, session_cookie, url_path, min(args.loads, 10))
        return {"http": http, "browser": browser}
    finally:
        server.terminate()
        server.wait(timeout=30)


def browser_load(base: str, session_cookie: str, url_path: str, loads: int) -> dict:
    from playwright.sync_api import sync_playwright

    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.add_cookies([{"name": "sessionid", "value": session_cookie, "url": base}])
        page = context.new_page()
        timings = []
        for _ in range(loads + 1):  # the first load warms the static files' cache: not counted
            page.goto(f"{base}{url_path}", wait_until="load")
            assert page.locator("svg[data-chart=scatter] circle").count() > 0
            timings.append(page.evaluate(
                "() => { const t = performance.getEntriesByType('navigation')[0];"
                " return [t.responseEnd - t.startTime, t.domInteractive - t.startTime, t.loadEventEnd - t.startTime]; }"
            ))  # fmt: skip
        browser.close()
    html, interactive, loaded = (list(column) for column in zip(*timings[1:]))
    return {"html_received": summary([ms / 1000 for ms in html]),
            "dom_interactive": summary([ms / 1000 for ms in interactive]),
            "load_event": summary([ms / 1000 for ms in loaded])}


def main():
    args = parse_args()
    recreate_database(args.server, args.database)
    start_django(f"{args.server}/{args.database}")
    from django.test import Client

    from modeling.models import HumanScore
    from modeling.services import agreement, human_scores
    from worker.metrics_tasks import compute_agreement

    results = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
               "images": args.images, "comparisons": args.comparisons, "raters": args.raters,
               "load_average_at_start": round(os.getloadavg()[0], 1)}
    try:
        made = generate(args)
        project, manager = made["project"], made["manager"]
        results["generate_seconds"] = round(made["seconds"], 1)
        print(f"generated in {made['seconds']:.1f}s", flush=True)

        started = time.perf_counter()
        cold = human_scores.fit_human_scores(project)
        results["fit_cold_seconds"] = round(time.perf_counter() - started, 2)
        started = time.perf_counter()
        warm = human_scores.fit_human_scores(project)
        results["fit_warm_seconds"] = round(time.perf_counter() - started, 2)
        results["fit"] = {"cold": cold.summary(), "warm": warm.summary()}
        assert HumanScore.objects.filter(project=project).count() == args.images
        print(f"human scores: cold {results['fit_cold_seconds']}s, warm {results['fit_warm_seconds']}s", flush=True)

        started = time.perf_counter()
        outcome = compute_agreement(project.pk)  # the task's body, in this process
        results["agreement_task_seconds"] = round(time.perf_counter() - started, 2)
        report = agreement.latest_report(project)
        assert outcome[SLUG] == report.pk
        results["agreement_phases"] = report.data["timings"]
        results["report_json_bytes"] = len(json.dumps(report.data))
        headline = report.data["model"]["versions"][0]
        results["numbers"] = {
            "alpha": report.data["human"]["alpha"], "raw_agreement": report.data["human"]["raw_agreement"],
            "heldout_agreement": headline["heldout_agreement"], "ceiling": headline["ceiling"]["human"],
            "srcc": headline["human_correlation"]["srcc"],
            "flagged_raters": sum(1 for row in report.data["raters"] if row["flags"]),
        }  # fmt: skip
        print(f"agreement task {results['agreement_task_seconds']}s", flush=True)

        client = Client()
        client.force_login(manager)
        page = f"/projects/{SLUG}/dashboard/"
        api = f"/api/v1/projects/{SLUG}/agreement/"
        assert client.get(page).status_code == 200 and client.get(api).status_code == 200
        results["page_django_client"] = summary(timed(lambda: client.get(page), args.loads))
        results["api_django_client"] = summary(timed(lambda: client.get(api), args.loads))
        results["served"] = serve_and_time(args, client.cookies["sessionid"].value, page)
        results["load_average_at_end"] = round(os.getloadavg()[0], 1)
        print(json.dumps(results, indent=2))
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            drop_database(args.server, args.database)


if __name__ == "__main__":
    main()
