"""Profile of the rating hot path: ``GET next-pair`` and ``POST comparisons``, in process, on PostgreSQL.

For each request it counts the SQL statements (and which ones), the CPU time of the process, and with
``--cprofile`` where that time goes. The requests go through Django's test client, so every middleware,
authentication, throttle, permission check and serializer runs; only gunicorn and the socket do not.

    .venv/bin/python benchmarks/hot_path_profile.py                       # 10^5 images, 300 judgments
    .venv/bin/python benchmarks/hot_path_profile.py --cprofile --top 40   # plus the functions by own time
    .venv/bin/python benchmarks/hot_path_profile.py --repo /tmp/before    # the code of another tree

The project is the one ``benchmarks/labelling_loop.py`` builds (``bench-N``), written on first use.
"""
from __future__ import annotations

import argparse
import collections
import cProfile
import io
import json
import os
import pstats
import re
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/tagrank_hot")
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--judgments", type=int, default=300)
    parser.add_argument("--repo", type=Path, default=HERE.parent, help="the tree whose code is profiled")
    parser.add_argument("--cprofile", action="store_true")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--save-profile", type=Path, help="with --cprofile: also write the pstats file here")
    args = parser.parse_args()

    repo = args.repo.resolve()
    sys.path.insert(0, str(repo))
    os.chdir(repo)
    os.environ.update(
        DATABASE_URL=args.database_url, DJANGO_SETTINGS_MODULE="config.settings", DEBUG="false",
        ALLOWED_HOSTS="testserver", LOG_LEVEL="WARNING", DATABASE_CONN_MAX_AGE="600",
        TAGRANK_THROTTLE_SUBMIT="1000000/min", TAGRANK_THROTTLE_NEXT_PAIR="1000000/min",
        SECRET_KEY="profile-only", SESSION_COOKIE_SECURE="false", CSRF_COOKIE_SECURE="false",
    )
    import labelling_loop  # this folder's builder (on sys.path, as the script's), whichever tree is profiled

    labelling_loop.ensure_database(args.database_url)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    call_command("migrate", verbosity=0)
    built = labelling_loop.existing_project(args.images, 1) or labelling_loop.build_project(args.images, 1)
    client = Client(HTTP_AUTHORIZATION=f"Token {built['tokens'][0]}")
    base = f"/api/v1/projects/{built['slug']}"

    def next_pair():
        response = client.get(f"{base}/next-pair/")
        assert response.status_code == 200, (response.status_code, response.content[:300])
        return response.json()

    def submit(pair):
        response = client.post(
            f"{base}/comparisons/", json.dumps({"lease": pair["lease"], "winner": "a",
                                                "client_key": pair["lease"]}), content_type="application/json")
        assert response.status_code == 201, (response.status_code, response.content[:300])

    for _ in range(20):  # warm caches, connections and imports
        submit(next_pair())

    # The hot-path SQL runs on psycopg cursors directly, not Django's: count it too.
    try:
        from core import prepared_sql as direct_sql
    except ImportError:  # a tree from before core/prepared_sql.py
        from labeling.services import pair_sql as direct_sql

    direct = collections.Counter()
    plain_execute = direct_sql.execute

    def counted_execute(sql, params):
        direct[_statement_kind(sql)] += 1
        return plain_execute(sql, params)

    direct_sql.execute = counted_execute
    floor = []
    for _ in range(args.judgments):
        started = time.process_time()
        assert client.get("/healthz/").status_code == 200
        floor.append((time.process_time() - started) * 1000)

    cpu = collections.defaultdict(list)
    statements = collections.defaultdict(list)
    kinds = collections.defaultdict(collections.Counter)
    profiler = cProfile.Profile(time.process_time) if args.cprofile else None  # CPU time, not waits
    for _ in range(args.judgments):
        for name in ("next-pair", "submit"):
            direct.clear()
            with CaptureQueriesContext(connection) as captured:
                started = time.process_time()
                if profiler:
                    profiler.enable()
                if name == "next-pair":
                    pair = next_pair()
                else:
                    submit(pair)
                if profiler:
                    profiler.disable()
                cpu[name].append((time.process_time() - started) * 1000)
            statements[name].append(len(captured.captured_queries) + sum(direct.values()))
            for query in captured.captured_queries:
                kinds[name][_statement_kind(query["sql"])] += 1
            kinds[name].update(direct)

    print(f"# {repo} · {args.images:,} images · {args.judgments} judgments · load {os.getloadavg()[0]:.1f}")
    print(f"floor (GET /healthz/, all middleware, no database): CPU median {statistics.median(floor):.2f} ms")
    for name in ("next-pair", "submit"):
        print(f"{name}: CPU median {statistics.median(cpu[name]):.2f} ms, mean {statistics.fmean(cpu[name]):.2f} ms "
              f"(client and server in one process, database excluded); "
              f"statements median {statistics.median(statements[name]):.0f}, mean {statistics.fmean(statements[name]):.2f}")
        for kind, count in kinds[name].most_common():
            print(f"    {count / args.judgments:5.2f}  {kind}")
    if profiler and args.save_profile:
        profiler.dump_stats(args.save_profile)
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(args.top)
        print(out.getvalue())
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(args.top)
        print(out.getvalue())


def _statement_kind(sql: str) -> str:
    """A statement reduced to its verb and tables, so that equal statements group together."""
    sql = re.sub(r"\s+", " ", sql.strip())
    verb = sql.split(" ", 1)[0].upper()
    tables = sorted(set(re.findall(r'(?:FROM|JOIN|INTO|UPDATE) "?(\w+)"?', sql, re.I)))
    return f"{verb} {', '.join(tables)}"[:120]


if __name__ == "__main__":
    main()
