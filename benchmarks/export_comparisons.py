"""Benchmark: the streamed export of 10^6 comparisons (CSV, JSON Lines, Parquet) on PostgreSQL.

    .venv/bin/python benchmarks/export_comparisons.py                    # 10^6 comparisons
    .venv/bin/python benchmarks/export_comparisons.py --comparisons 100000   # a quick run

It migrates the database of ``--database-url`` (default postgres://postgres@127.0.0.1:5432/tagrank_manager)
and writes a scratch project with bulk SQL (``INSERT … SELECT generate_series``): ``--images`` image rows
(no files), 20 raters, ``--comparisons`` comparisons on pairs spread over the images, every tenth with
a judged lease and every fiftieth a gold judgment. Then, in this process, it reads each format's
export to the end, counting bytes, by each path of ``--paths``: ``fast``, what the API view streams
(``data_exports.comparison_export``: on PostgreSQL, ``core.pg_export``'s COPY ranges), and ``generic``,
the ``core.streaming`` writers over ``data_exports.comparison_chunks`` (the path before it, and SQLite's); and reports rows/s, the time to the
first chunk, the CPU seconds of this process and of its PostgreSQL backend, and its resident memory before and at its
peak during the export (the peak is reset before each format through /proc/self/clear_refs). The
scratch project is removed at the end unless ``--keep``.
"""
from __future__ import annotations

import itertools
import json
import os
import time

from bench_setup import (
    backend_cpu_seconds, benchmark_parser, machine_with_postgres, memory_kib, reset_peak, start_django,
)


SLUG = "bench-export-comparisons"


def scratch_project_parser(doc: str, database: str):
    """A parser with the options ``generate`` and ``report_runs`` read: the scratch project's size and ``--keep``."""
    parser = benchmark_parser(doc, database)
    parser.add_argument("--comparisons", type=int, default=1_000_000)
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--keep", action="store_true")
    return parser


def parse_args():
    parser = scratch_project_parser(__doc__, "tagrank_manager")
    parser.add_argument("--formats", default="csv,jsonl,parquet")
    parser.add_argument("--paths", default="generic,fast", help="generic, fast or both")
    parser.add_argument("--reuse", action="store_true", help="export the project a --keep run left, if it is there")
    return parser.parse_args()


def remove(project_id: int) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM labeling_pairlease WHERE project_id = %s", [project_id])
        cursor.execute("DELETE FROM labeling_comparison WHERE project_id = %s", [project_id])
    from labeling.models import Project

    Project.objects.filter(pk=project_id).delete()


def generate(args):
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from labeling.models import Membership, Project

    old = Project.objects.filter(slug=SLUG).first()
    if old is not None:
        remove(old.pk)
    User = get_user_model()
    project = Project.objects.create(name="Export benchmark", slug=SLUG)
    raters = []
    for index in range(20):
        user, _ = User.objects.get_or_create(username=f"bench-export-rater-{index}")
        Membership.objects.get_or_create(project=project, user=user)
        raters.append(user.pk)
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO labeling_image (project_id, file, thumbnail, original_name, sha256, width, height,
                   external_id, caption, metadata, created_at)
               SELECT %s, 'images/bench/' || g || '.jpg', '', 'photo_' || g || '.jpg', md5(g::text) || md5(g::text),
                      640, 480, 'ext-' || g, '', '{}'::jsonb, now()
               FROM generate_series(1, %s) g""",
            [project.pk, args.images],
        )
        cursor.execute("SELECT min(id) FROM labeling_image WHERE project_id = %s", [project.pk])
        first = cursor.fetchone()[0]
        n = args.images
        cursor.execute(
            """INSERT INTO labeling_comparison (project_id, image_a_id, image_b_id, outcome, rater_id, created_at,
                   response_ms, client_key, is_gold, gold_correct)
               SELECT %(project)s, %(first)s + g %% %(n)s, %(first)s + (g %% %(n)s + 1 + (g / %(n)s) %% (%(n)s - 1)) %% %(n)s,
                      (ARRAY['a','b','tie'])[1 + g %% 3], (%(raters)s::int[])[1 + g %% 20],
                      now() - (g || ' seconds')::interval, 500 + g %% 4000, 'bench-' || g,
                      g %% 50 = 0, CASE WHEN g %% 50 = 0 THEN g %% 100 = 0 END
               FROM generate_series(1, %(count)s) g""",
            {"project": project.pk, "first": first, "n": n, "raters": raters, "count": args.comparisons},
        )
        cursor.execute(
            """INSERT INTO labeling_pairlease (token, project_id, rater_id, image_a_id, image_b_id, state, created_at,
                   expires_at, comparison_id)
               SELECT gen_random_uuid(), project_id, rater_id, image_a_id, image_b_id, 'judged', created_at,
                      created_at + interval '5 minutes', id
               FROM labeling_comparison WHERE project_id = %s AND id %% 10 = 0""",
            [project.pk],
        )
        cursor.execute("ANALYZE labeling_comparison; ANALYZE labeling_pairlease; ANALYZE labeling_image")
    return project, time.perf_counter() - started


def measure_stream(make_pieces) -> dict:
    """Start an export (``make_pieces()``, its str or bytes pieces) and read it to the end: bytes, seconds, the
    time to the first chunk, the CPU seconds of this process and of its PostgreSQL backend, and its resident
    memory before and at its peak (the peak reset first)."""
    reset_peak()
    rss_before = memory_kib("VmRSS")
    cpu_before, database_before = time.process_time(), backend_cpu_seconds()
    started = time.perf_counter()
    first_chunk = None
    size = 0
    for index, piece in enumerate(make_pieces()):
        size += len(piece.encode() if isinstance(piece, str) else piece)
        if index == 1 and first_chunk is None:
            first_chunk = time.perf_counter() - started
    seconds = time.perf_counter() - started
    return {
        "bytes": size, "seconds": round(seconds, 2), "first_chunk_s": round(first_chunk or 0, 3),
        "process_cpu_s": round(time.process_time() - cpu_before, 2),
        "database_cpu_s": round(backend_cpu_seconds() - database_before, 2),
        "rss_before_mib": round(rss_before / 1024), "peak_rss_mib": round(memory_kib("VmHWM") / 1024),
    }


def export_once(project, output: str, path: str) -> dict:
    from core import streaming
    from labeling.services import data_exports

    if path == "fast":
        measured = measure_stream(lambda: data_exports.comparison_export(project, output))
    else:
        measured = measure_stream(lambda: streaming.WRITERS[output](data_exports.COMPARISON_COLUMNS,
                                                                    data_exports.comparison_chunks(project)))
    return {"path": path, "format": output, **measured}


def report_runs(args, project, generate_seconds: float, runs) -> None:
    """Print each run of ``runs`` (dicts, made as they are drawn) as it ends, then the whole as JSON; the
    scratch project is removed at the end unless ``--keep``."""
    results = {
        "machine": machine_with_postgres(),
        "comparisons": args.comparisons, "images": args.images, "generate_seconds": round(generate_seconds, 1),
        "load_average_at_start": round(os.getloadavg()[0], 1), "runs": [],
    }
    try:
        for run in runs:
            results["runs"].append(run)
            print(json.dumps(run), flush=True)
    finally:
        if not args.keep:
            remove(project.pk)
    results["load_average_at_end"] = round(os.getloadavg()[0], 1)
    print(json.dumps(results, indent=2))


def main():
    args = parse_args()
    start_django(args.database_url)
    from labeling.models import Project

    project = Project.objects.filter(slug=SLUG).first() if args.reuse else None
    if project is not None:
        args.comparisons, args.images = project.comparisons.count(), project.images.count()
        generate_seconds = 0.0
    else:
        project, generate_seconds = generate(args)

    def runs():
        for output, path in itertools.product(args.formats.split(","), args.paths.split(",")):
            run = export_once(project, output, path)
            yield {**run, "rows_per_s": round(args.comparisons / run["seconds"])}

    report_runs(args, project, generate_seconds, runs())


if __name__ == "__main__":
    main()
