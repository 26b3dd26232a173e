"""Benchmark: the image browser's keyset pages over 10^6 images on PostgreSQL.

    .venv/bin/python benchmarks/image_browser.py                   # 10^6 images
    .venv/bin/python benchmarks/image_browser.py --images 100000   # a quick run
    .venv/bin/python benchmarks/image_browser.py --only=-score,score,-comparisons --explain   # sorts, with plans

It migrates the database of ``--database-url`` (default tagrank_manager) and writes a scratch project with
bulk SQL: ``--images`` image rows (no files) with metadata ``{"cfg": i % 8}``, their comparison counters
(``i % 50``), an active model version scoring every image, and a tag on every tenth image. Then it times
``modeling.services.image_browser.browse`` (48 images a page, as the page shows): the first page and the
page reached by following 20 cursors, for each sort and for a few filters, as the median of 5 calls. The
scratch project is removed at the end.
"""
from __future__ import annotations

import json
import os
import statistics
import time

from bench_setup import benchmark_parser, start_django


SLUG = "bench-image-browser"


def parse_args():
    parser = benchmark_parser(__doc__, "tagrank_manager")
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--only", help="run only the cases with these filters (e.g. tag) or sorts, comma-separated "
                                       "(e.g. --only=-score,-comparisons)")
    parser.add_argument("--explain", action="store_true", help="print PostgreSQL's plan of each timed page's query")
    return parser.parse_args()


def remove() -> None:
    """Drop the scratch project with plain SQL (the ORM's cascade would load 10^6 images to delete them)."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT id FROM labeling_project WHERE slug = %s", [SLUG])
        found = cursor.fetchone()
        if found is None:
            return
        project_id = found[0]
        images = "SELECT id FROM labeling_image WHERE project_id = %s"
        cursor.execute(f"DELETE FROM modeling_imagescore WHERE image_id IN ({images})", [project_id])
        cursor.execute(f"DELETE FROM labeling_imagetag WHERE image_id IN ({images})", [project_id])
        cursor.execute("DELETE FROM labeling_imagestats WHERE project_id = %s", [project_id])
        cursor.execute("DELETE FROM labeling_image WHERE project_id = %s", [project_id])
    from labeling.models import Project

    Project.objects.filter(pk=project_id).delete()


def generate(count: int):
    from django.db import connection, transaction

    from labeling.models import Project
    from modeling.models import ModelVersion

    remove()
    project = Project.objects.create(name="Browser benchmark", slug=SLUG)
    version = ModelVersion.objects.create(project=project, encoder_id="tiny", is_active=True, status="active")
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO labeling_image (project_id, file, thumbnail, original_name, sha256, width, height,
                   external_id, caption, metadata, created_at)
               SELECT %s, 'images/b/' || g || '.jpg', '', 'photo_' || g || '.jpg', md5(g::text) || md5(g::text),
                      64, 48, '', '', jsonb_build_object('cfg', g %% 8), now()
               FROM generate_series(1, %s) g""",
            [project.pk, count],
        )
        cursor.execute(
            """INSERT INTO labeling_imagestats (image_id, project_id, comparison_count)
               SELECT id, project_id, id %% 50 FROM labeling_image WHERE project_id = %s""", [project.pk])
        cursor.execute(
            """INSERT INTO modeling_imagescore (model_version_id, image_id, mean, distribution, uncertainty)
               SELECT %s, id, 1 + (hashtext(id::text) & 65535) / 65535.0 * 9, '[]'::jsonb, 0
               FROM labeling_image WHERE project_id = %s""", [version.pk, project.pk])
        cursor.execute("INSERT INTO labeling_tag (project_id, name, created_at) VALUES (%s, 'rare', now()) RETURNING id",
                       [project.pk])
        tag_id = cursor.fetchone()[0]
        cursor.execute(
            """INSERT INTO labeling_imagetag (image_id, tag_id, source, created_at)
               SELECT id, %s, 'import', now() FROM labeling_image WHERE project_id = %s AND id %% 10 = 0""",
            [tag_id, project.pk])
    # VACUUM (outside the transaction), as autovacuum would: the rows an earlier run deleted otherwise stay in
    # the indexes, and the planner wades through them when it probes an index's ends (~0.1 s per query).
    with connection.cursor() as cursor:
        for table in ("labeling_image", "labeling_imagestats", "modeling_imagescore", "labeling_imagetag"):
            cursor.execute(f"VACUUM ANALYZE {table}")
    return project, time.perf_counter() - started


def plan(project, filters_kwargs: dict, cursor: str) -> str:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from modeling.services.image_browser import Filters, browse

    with CaptureQueriesContext(connection) as queries:
        browse(project, Filters(limit=48, cursor=cursor, **filters_kwargs))
    with connection.cursor() as cursor_:
        cursor_.execute("EXPLAIN " + queries.captured_queries[-1]["sql"])
        return "\n".join(row[0] for row in cursor_.fetchall())


def timed(project, filters_kwargs: dict, depth: int, explain: bool = False) -> dict:
    from modeling.services.image_browser import Filters, browse

    cursor = ""
    for _ in range(depth):
        cursor = browse(project, Filters(limit=48, cursor=cursor, **filters_kwargs)).next_cursor or ""
    times = []
    for _ in range(5):
        started = time.perf_counter()
        page = browse(project, Filters(limit=48, cursor=cursor, **filters_kwargs))
        times.append(time.perf_counter() - started)
    run = {"filters": filters_kwargs, "page": depth + 1, "rows": len(page.images),
           "median_ms": round(1000 * statistics.median(times), 1)}
    if explain:
        run["plan"] = plan(project, filters_kwargs, cursor)
    return run


def main():
    args = parse_args()
    start_django(args.database_url)
    project, seconds = generate(args.images)
    results = {"images": args.images, "generate_seconds": round(seconds, 1),
               "load_average_at_start": round(os.getloadavg()[0], 1), "runs": []}
    cases = [{"sort": "newest"}, {"sort": "-score"}, {"sort": "score"}, {"sort": "-comparisons"},
             {"sort": "newest", "tag": "rare"}, {"sort": "-score", "score_min": 9.5},
             {"sort": "newest", "comparisons_min": 40, "metadata_key": "cfg", "metadata_value": "3"}]
    if args.only:
        wanted = args.only.split(",")
        cases = [case for case in cases if any(only in case or only in case.values() for only in wanted)]
    try:
        for case in cases:
            for depth in (0, 20):
                run = timed(project, case, depth, args.explain)
                query_plan = run.pop("plan", "")
                results["runs"].append(run)
                print(json.dumps(run), flush=True)
                if query_plan:
                    print(query_plan, flush=True)
    finally:
        remove()
    results["load_average_at_end"] = round(os.getloadavg()[0], 1)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
