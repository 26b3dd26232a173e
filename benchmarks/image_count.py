"""Benchmark: counting a project's unarchived images at 10^6 images on PostgreSQL, without and with the partial index
``image_unarchived`` (labeling/models/catalogue.py), side by side on the same data.

    .venv/bin/python benchmarks/image_count.py                                   # 10^6 images, 10^6 comparisons
    .venv/bin/python benchmarks/image_count.py --images 100000 --comparisons 100000 --loads 6   # a quick try

It recreates its own database (``--database``, default ``tagrank_image_count`` on ``--server``) and writes, with
COPY, the scale run's rows (``scale_run.py``'s image rows and the comparisons of 200 raters, ``dashboard.py``),
without tags or model scores: the progress page reads the image count and the per-rater, per-day counters,
which ``--comparisons`` fills for every rater and day as well as 10^7 would. Then VACUUM ANALYZE (the
visibility map that an index-only scan needs).

Then ``--rounds`` times, each variant in turn (the index dropped: the code before it; the index built):

1. EXPLAIN (ANALYZE, BUFFERS) of the count as Django issues it (``campaign_target.active_images``) and of the
   judgment path's count of at most k images (printed for the first round);
2. in this process, ``--repeats`` times each: the count; ``judgment_target_met`` at a per-image target, the code
   before (the full count) and now (at most k images); the project list's query, before (a join over the images)
   and now (a count per project in a subquery);
3. the progress page and the progress API over HTTP from gunicorn (production settings, one keep-alive
   connection with the manager's session), ``--loads`` times each.

Timings of the rounds are pooled per variant: median and p95. The database is dropped unless ``--keep``.
"""
from __future__ import annotations

import http.client
import json
import math
import os
import time
import uuid

import numpy as np
from bench_setup import machine_with_postgres, start_django, synthetic_data_parser
from dashboard import copy_comparisons, copy_images, create_project, drop_database, recreate_database, summary
from dashboard import synthetic_judgments
from labelling_loop import Server

SLUG = "image-count"
INDEX = "image_unarchived"
VARIANTS = ("no index (before)", "partial index (after)")
PAGES = ["/projects/{slug}/progress/", "/api/v1/projects/{slug}/progress/"]


def parse_args():
    parser = synthetic_data_parser(__doc__, images=1_000_000, comparisons=1_000_000, database="tagrank_image_count")
    parser.add_argument("--raters", type=int, default=200)
    parser.add_argument("--per-image", type=float, default=20.0, help="the per-image target of the judgment path")
    parser.add_argument("--rounds", type=int, default=2, help="each variant this many times, alternating")
    parser.add_argument("--loads", type=int, default=10, help="loads of each page per round")
    parser.add_argument("--repeats", type=int, default=10, help="in-process queries per round")
    return parser.parse_args()


def load() -> float:
    return round(os.getloadavg()[0], 1)


def generate(args):
    from django.db import connection
    from django.utils import timezone

    rng = np.random.default_rng(args.seed)
    now = timezone.now()
    started = time.perf_counter()
    project, manager, rater_ids = create_project(SLUG, args.raters)
    image_ids = copy_images(project, args.images, now)
    judgments = synthetic_judgments(rng, rng.normal(0, 1, args.images), args.comparisons, len(rater_ids))
    copy_comparisons(project, image_ids, rater_ids, judgments, now)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")  # as autovacuum would after a load: statistics and visibility map
    return project, manager, round(time.perf_counter() - started, 1)


def set_index(present: bool) -> float:
    """Build or drop the partial index; returns the seconds it took."""
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        if present:
            cursor.execute(f'CREATE INDEX IF NOT EXISTS "{INDEX}" ON labeling_image (project_id) WHERE archived_at IS NULL')
        else:
            cursor.execute(f'DROP INDEX IF EXISTS "{INDEX}"')
        cursor.execute("ANALYZE labeling_image")
    return round(time.perf_counter() - started, 1)


def explain(queryset_call) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the one query ``queryset_call`` issues."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        queryset_call()
    sql = captured.captured_queries[-1]["sql"]
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
        return sql + "\n" + "\n".join(row[0] for row in cursor.fetchall())


def in_process(args, project, manager) -> dict[str, list[float]]:
    """The count; the judgment path's test at a per-image target and the project list's counts, as the code before
    did them and as it does now."""
    from django.db.models import Count, Q

    from labeling import access
    from labeling.models import Image
    from labeling.services import campaign_target, rater_counts

    projects = access.projects_for(manager).filter(archived_at=None)

    def met_before():  # the code before: the target from the full count (campaign_target at main, 91acea5)
        target = math.ceil(project.target_judgments_per_image
                           * Image.objects.filter(project=project, archived_at=None).count())
        return rater_counts.project_total(project) >= target

    calls = {"count": lambda: campaign_target.active_images(project).count(),
             "judgment_target_met, before (full count)": met_before,
             "judgment_target_met, now (at most k images)": lambda: campaign_target.judgment_target_met(project),
             "project list's query, before (a join, 91acea5)": lambda: list(projects.annotate(
                 image_count=Count("images", filter=Q(images__archived_at=None), distinct=True))),
             "project list's query, now (a subquery)": lambda: list(campaign_target.with_active_image_counts(projects))}
    assert met_before() == campaign_target.judgment_target_met(project)
    times = {name: [] for name in calls}
    for _ in range(args.repeats):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - started)
    return times


def pages(args, server: Server, manager) -> dict[str, list[float]]:
    from django.test import Client

    client = Client()
    client.force_login(manager)
    headers = {"Cookie": f"sessionid={client.cookies['sessionid'].value}", "Accept": "text/html,application/json"}
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
    times = {}
    for template in PAGES:
        path = template.format(slug=SLUG)
        connection.request("GET", path, headers=headers)  # a first load, untimed: caches and connections
        response = connection.getresponse()
        response.read()
        assert response.status == 200, (path, response.status, server.log_tail())
        times[path] = []
        for _ in range(args.loads):
            started = time.perf_counter()
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            response.read()
            times[path].append(time.perf_counter() - started)
    connection.close()
    return times


def main():
    args = parse_args()
    database_url = f"{args.server}/{args.database}"
    os.environ.update(LOG_LEVEL="WARNING", SECRET_KEY=os.environ.get("SECRET_KEY") or "benchmark-only-" + uuid.uuid4().hex)
    recreate_database(args.server, args.database)
    start_django(database_url)
    from labeling.models import Project
    from labeling.services import campaign_target, rater_counts

    print(json.dumps({"step": "start", "machine": machine_with_postgres(), "images": args.images,
                      "comparisons": args.comparisons, "load": load()}), flush=True)
    server = None
    try:
        project, manager, seconds = generate(args)
        print(json.dumps({"step": "generate", "seconds": seconds, "load": load()}), flush=True)
        Project.objects.filter(pk=project.pk).update(target_judgments_per_image=args.per_image,
                                                     stop_at_judgment_target=True)
        project.refresh_from_db()
        server = Server(database_url, workers=2, threads=4, environ={"SECRET_KEY": os.environ["SECRET_KEY"]})
        timings = {variant: {} for variant in VARIANTS}
        for round_ in range(args.rounds):
            for variant in VARIANTS:
                seconds = set_index(variant == VARIANTS[1])
                if round_ == 0:
                    judgments = rater_counts.project_total(project)
                    k = math.floor(judgments / args.per_image) + 2  # as campaign_target._per_image_target_met
                    print(f"\n--- {variant} (index built/dropped in {seconds} s)")
                    print(explain(lambda: campaign_target.active_images(project).count()))
                    print(f"\n{judgments:,} judgments, {args.per_image} per image: at most k = {k:,} images")
                    print(explain(lambda: campaign_target.active_images(project)[:k].count()), flush=True)
                for part in (in_process(args, project, manager), pages(args, server, manager)):
                    for name, values in part.items():
                        timings[variant].setdefault(name, []).extend(values)
                print(json.dumps({"step": "round", "round": round_, "variant": variant, "load": load()}), flush=True)
        rows = ["| what | " + " | ".join(f"{v}: median / p95 ms" for v in VARIANTS) + " |", "|---|---:|---:|"]
        for name in timings[VARIANTS[0]]:
            cells = [summary(timings[variant][name]) for variant in VARIANTS]
            rows.append(f"| {name} (n = {cells[0]['n']}) | "
                        + " | ".join(f"{c['median_ms']} / {c['p95_ms']}" for c in cells) + " |")
        print(f"\nload {load()}\n" + "\n".join(rows))
    finally:
        if server is not None:
            server.stop()
        from django.db import connections

        connections.close_all()
        if not args.keep:
            drop_database(args.server, args.database)


if __name__ == "__main__":
    main()
