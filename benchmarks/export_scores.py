"""Benchmark: the scores export of 10^5 images (CSV, JSON Lines, Parquet) on PostgreSQL, both paths side by side.

    .venv/bin/python benchmarks/export_scores.py                    # 10^5 images
    .venv/bin/python benchmarks/export_scores.py --images 10000     # a quick run

It migrates the database of ``--database-url`` (default postgres://postgres@127.0.0.1:5432/tagrank_manager)
and writes a scratch project with bulk SQL (``INSERT … SELECT generate_series``), shaped like
``labelling_loop.py``'s: ``--images`` image rows (no files) with a caption and metadata, two tags each out
of 50, an active model version scoring every image (mean, ten-bin distribution, uncertainty), a human
score each, and per-image counters. Then, in this process, it reads each format's export to the end by
each path of ``--paths``: ``fast``, what the API view streams (``modeling.services.exports.export_pieces``:
on PostgreSQL the CSV is ``core.pg_export``'s COPY ranges; JSON Lines and Parquet stay generic), and
``generic``, the ``core.streaming`` writers over ``exports.export_rows``; and, with ``--before REV``, ``before``:
REV's CSV fast path (its ``exports.csv_query`` and ``core.pg_export``, from ``git archive``) on the same data,
its bytes checked against this code's. The tables are vacuumed after writing, as autovacuum leaves them
once the import has settled (index-only scans need the visibility map). It reports seconds, rows/s,
the CPU seconds of this process and of its PostgreSQL backend and its peak RSS (reset before each run). The scratch
project is removed at the end unless ``--keep``.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import statistics
import sys
import time

from bench_setup import (
    backend_cpu_seconds, benchmark_parser, machine_with_postgres, memory_kib, reset_peak, revision_tree,
    start_django,
)

SLUG = "bench-export-scores"


def parse_args():
    parser = benchmark_parser(__doc__, "tagrank_manager")
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--formats", default="csv,jsonl,parquet")
    parser.add_argument("--paths", default="generic,fast", help="generic, fast or both")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each format and path")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--before", metavar="REV", help="also time REV's CSV fast path (path \"before\")")
    return parser.parse_args()


def generate(images: int):
    from django.db import connection, transaction

    from labeling.models import Project
    from modeling.models import ModelVersion

    old = Project.objects.filter(slug=SLUG).first()
    if old is not None:
        remove(old)
    project = Project.objects.create(name="Scores export benchmark", slug=SLUG)
    version = ModelVersion.objects.create(project=project, encoder_id="tiny", status="active", is_active=True)
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        params = {"project": project.pk, "version": version.pk, "n": images}
        cursor.execute(
            """INSERT INTO labeling_image (project_id, file, thumbnail, original_name, sha256, width, height,
                   external_id, caption, metadata, created_at)
               SELECT %(project)s, 'images/bench/' || g || '.jpg', '', 'photo_' || g || '.jpg',
                      md5(g::text) || md5(g::text), 640, 480, 'ext-' || g, 'a caption, number ' || g,
                      jsonb_build_object('seed', g, 'cfg_scale', 7.5, 'sampler', 'ddim'), now()
               FROM generate_series(1, %(n)s) g""",
            params,
        )
        cursor.execute(
            "INSERT INTO labeling_tag (project_id, name, created_at) SELECT %(project)s, 'tag ' || k, now() "
            "FROM generate_series(0, 49) k",
            params,
        )
        cursor.execute(
            """INSERT INTO labeling_imagetag (image_id, tag_id, source, created_at)
               SELECT i.id, t.id, 'import', now()
               FROM labeling_image i CROSS JOIN generate_series(0, 1) o
               JOIN labeling_tag t ON t.project_id = i.project_id AND t.name = 'tag ' || ((i.id * 7 + o) %% 50)
               WHERE i.project_id = %(project)s""",
            params,
        )
        cursor.execute(
            """INSERT INTO modeling_imagescore (model_version_id, image_id, mean, distribution, uncertainty)
               SELECT %(version)s, i.id, 1 + 9 * random(),
                      '[0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.2, 0.1, 0.05, 0.02]'::jsonb, random()
               FROM labeling_image i WHERE i.project_id = %(project)s""",
            params,
        )
        cursor.execute(
            """INSERT INTO modeling_humanscore (project_id, image_id, mean, variance, n_comparisons, fitted_at)
               SELECT %(project)s, i.id, random() * 4 - 2, random(), 2, now()
               FROM labeling_image i WHERE i.project_id = %(project)s""",
            params,
        )
        cursor.execute(
            """INSERT INTO labeling_imagestats (image_id, project_id, comparison_count)
               SELECT i.id, %(project)s, (i.id %% 5) FROM labeling_image i WHERE i.project_id = %(project)s
               ON CONFLICT (image_id) DO NOTHING""",
            params,
        )
    with connection.cursor() as cursor:  # outside the transaction: VACUUM cannot run in one
        cursor.execute("VACUUM ANALYZE labeling_image, labeling_imagetag, labeling_tag, modeling_imagescore, "
                       "modeling_humanscore, labeling_imagestats")
    return project, version.pk, time.perf_counter() - started


def remove(project) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for table, column in (("modeling_imagescore", "model_version_id IN (SELECT id FROM modeling_modelversion "
                               "WHERE project_id = %s)"), ("modeling_humanscore", "project_id = %s"),
                              ("labeling_imagestats", "project_id = %s"),
                              ("labeling_imagetag", "image_id IN (SELECT id FROM labeling_image WHERE project_id = %s)"),
                              ("labeling_image", "project_id = %s"), ("labeling_tag", "project_id = %s")):
            cursor.execute(f"DELETE FROM {table} WHERE {column}", [project.pk])
    project.delete()


def revision_modules(revision: str) -> tuple:
    """REV's ``core.pg_export`` and ``modeling.services.exports``, imported under other names beside this code's
    (its exports module imports this code's ``core``, but only for the ``Query`` it builds)."""
    import importlib.util
    import shutil

    paths = {"before_pg_export": "core/pg_export.py", "before_exports": "modeling/services/exports.py"}
    folder = revision_tree(revision, tuple(paths.values()))
    modules = []
    try:
        for name, path in paths.items():
            spec = importlib.util.spec_from_file_location(name, folder / path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module  # dataclasses look their module up
            spec.loader.exec_module(module)
            modules.append(module)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return tuple(modules)


def export_once(project, version_id: int, output: str, path: str, before: tuple | None = None) -> dict:
    from core import streaming
    from modeling.services import exports

    reset_peak()
    cpu_before, database_before = time.process_time(), backend_cpu_seconds()
    started = time.perf_counter()
    if path == "before":
        pg_export_before, exports_before = before
        pieces = pg_export_before.iter_csv(exports_before.csv_query(project, version_id))
    elif path == "fast":
        pieces = exports.export_pieces(output, project, version_id)
    else:
        pieces = streaming.WRITERS[output](*exports.export_rows(output, project, version_id))
    digest, size = hashlib.sha256(), 0
    for piece in pieces:
        piece = piece.encode() if isinstance(piece, str) else piece
        digest.update(piece)
        size += len(piece)
    seconds = time.perf_counter() - started
    return {
        "path": path, "format": output, "bytes": size, "sha256": digest.hexdigest()[:16], "seconds": round(seconds, 3),
        "process_cpu_s": round(time.process_time() - cpu_before, 2),
        "database_cpu_s": round(backend_cpu_seconds() - database_before, 2),
        "peak_rss_mib": round(memory_kib("VmHWM") / 1024),
    }


def main():
    args = parse_args()
    start_django(args.database_url)
    project, version_id, generate_seconds = generate(args.images)
    results = {
        "machine": machine_with_postgres(), "images": args.images, "generate_seconds": round(generate_seconds, 1),
        "load_average_at_start": round(os.getloadavg()[0], 1), "runs": [],
    }
    before = revision_modules(args.before) if args.before else None
    paths = args.paths.split(",") + (["before"] if before else [])
    try:
        for _, output, path in itertools.product(range(args.repeat), args.formats.split(","), paths):
            if path == "before" and output != "csv":
                continue
            run = export_once(project, version_id, output, path, before)
            run["rows_per_s"] = round(args.images / run["seconds"])
            results["runs"].append(run)
            print(json.dumps(run), flush=True)
    finally:
        if not args.keep:
            remove(project)
    results["load_average_at_end"] = round(os.getloadavg()[0], 1)
    for (output, path), runs in itertools.groupby(sorted(results["runs"], key=lambda run: (run["format"], run["path"])),
                                                  key=lambda run: (run["format"], run["path"])):
        seconds = [run["seconds"] for run in runs]
        results.setdefault("summary", []).append({
            "format": output, "path": path, "runs": len(seconds), "median_s": round(statistics.median(seconds), 3),
            "mean_s": round(statistics.mean(seconds), 3),
            "standard_error_s": round(statistics.stdev(seconds) / len(seconds) ** 0.5, 3) if len(seconds) > 1 else None,
        })
    if before:
        digests = {(run["path"], run["sha256"]) for run in results["runs"] if run["format"] == "csv"
                   and run["path"] in ("fast", "before")}
        results["before_bytes_identical"] = len({digest for _, digest in digests}) == 1
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
