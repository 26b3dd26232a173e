"""Benchmark: the preference-pairs export of 10^6 judgments, beside the comparisons export, on PostgreSQL.

    .venv/bin/python benchmarks/export_preferences.py                       # 10^6 judgments
    .venv/bin/python benchmarks/export_preferences.py --comparisons 100000  # a quick run

The scratch project is the one ``benchmarks/export_comparisons.py`` writes (bulk SQL: ``--images`` image rows
without files, 20 raters, ``--comparisons`` judgments, a third of them ties), with a caption (the prompt) on
every image. In this process each export is read to the end exactly as its API view streams it (the
``core.streaming`` writers over ``data_exports.comparison_chunks`` and
``preference_pairs.judgment_chunks`` / ``pair_chunks``), counting bytes; reported: rows/s, the time to the
first chunk, this process's CPU seconds and its resident memory before and at its peak (reset before each
run through /proc/self/clear_refs). The project's overlap is 2, so every preference row carries the pair's
agreement. The scratch project is removed at the end unless ``--keep``.
"""
from __future__ import annotations

from bench_setup import start_django
from export_comparisons import measure_stream, scratch_project_parser

RUNS = [  # (label, export, format)
    ("comparisons", "comparisons", "jsonl"),
    ("preferences per judgment", "judgment", "jsonl"),
    ("preferences per judgment", "judgment", "parquet"),
    ("preferences per pair", "pair", "jsonl"),
]


def parse_args():
    return scratch_project_parser(__doc__, "tagrank_genimg").parse_args()


def export_once(project, export: str, output: str) -> dict:
    from core import streaming
    from labeling.services import data_exports
    from labeling.services import preference_pairs

    if export == "comparisons":
        columns, chunks = data_exports.COMPARISON_COLUMNS, data_exports.comparison_chunks(project)
    else:
        request = preference_pairs.PreferenceRequest(unit=export, base_url="https://tagrank.example")
        columns = preference_pairs.columns(export, False)
        chunks = (preference_pairs.judgment_chunks if export == "judgment" else preference_pairs.pair_chunks)(
            project, request)
    rows = 0

    def counting():
        nonlocal rows
        for chunk in chunks:
            chunk = list(chunk)
            rows += len(chunk)
            yield chunk

    measured = measure_stream(lambda: streaming.WRITERS[output](columns, counting()))
    return {"format": output, "rows": rows, **measured,
            "rows_per_s": round(rows / measured["seconds"]) if measured["seconds"] else None}


def main():
    args = parse_args()
    start_django(args.database_url)
    from django.db import connection

    from export_comparisons import generate, report_runs

    project, generate_seconds = generate(args)
    project.overlap = 2
    project.save(update_fields=["overlap"])
    with connection.cursor() as cursor:
        cursor.execute("UPDATE labeling_image SET caption = 'a prompt number ' || (id %% 997) WHERE project_id = %s",
                       [project.pk])
    report_runs(args, project, generate_seconds,
                ({"export": label, **export_once(project, export, output)} for label, export, output in RUNS))


if __name__ == "__main__":
    main()
