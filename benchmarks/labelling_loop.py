"""The labelling loop and the export, measured through HTTP against a real server on PostgreSQL.

What it does:

1. creates (or reuses) a benchmark database on PostgreSQL and migrates it;
2. for each project size N (10,000 and 100,000 images by default) writes the rows in bulk: images
   (one shared placeholder file name: pair serving never opens files), two tags each, an active model
   version scoring every image, a human score each, and 2·N earlier comparisons by other raters;
3. starts gunicorn on 127.0.0.1 (production settings: DEBUG off, persistent connections);
4. runs 10 and 50 concurrent clients, each a rater with an API token, each looping
   ``GET next-pair`` → ``POST comparisons`` for a bounded number of judgments, and records the latency
   of every request (median, p99) and the throughput;
5. exports the 100,000-image project (CSV and JSONL) from a fresh single-worker server and reports the
   time, the rate and the server's peak RSS (VmHWM) against its RSS before the export.

Run (takes several minutes, most of it writing the 100k rows):

    .venv/bin/python benchmarks/labelling_loop.py                 # prints a Markdown report
    .venv/bin/python benchmarks/labelling_loop.py --write-docs    # also writes docs/benchmarks.md

The throttles are raised for the run (TAGRANK_THROTTLE_SUBMIT): 50 clients on one machine would
otherwise be throttled, which is what production wants and not what this measures.
"""
from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import platform
import random
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

# REPO: the code served and measured (--repo changes it)
from bench_setup import REPO, benchmark_parser, cpu_ticks, memory_kib, process_cpu_ticks, stat_fields

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/tagrank_bench"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
SECTION = "## Labelling loop and export"


# --- Data -----------------------------------------------------------------------------------------


def setup_django(database_url: str) -> None:
    sys.path.insert(0, str(REPO))
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()


def ensure_database(database_url: str) -> None:
    import psycopg

    name = database_url.rsplit("/", 1)[1]
    admin_url = database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        exists = connection.execute("select 1 from pg_database where datname = %s", [name]).fetchone()
        if not exists:
            connection.execute(f'create database "{name}"')


def build_project(n_images: int, n_raters: int, seed: int = 1) -> dict:
    """Bulk-write a project of ``n_images``; returns its slug, the raters' tokens and the model version id."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django.utils import timezone
    from rest_framework.authtoken.models import Token

    from labeling.models import Comparison, Image, ImageTag, Membership, Project, Tag
    from labeling.services.image_stats import recount_image_stats
    from modeling.models import HumanScore, ImageScore, ModelVersion

    rng = random.Random(seed)
    slug = f"bench-{n_images}"
    User = get_user_model()
    Project.objects.filter(slug=slug).delete()
    project = Project.objects.create(name=f"Benchmark {n_images:,}", slug=slug, overlap=1)
    batch = 5000
    started = time.perf_counter()
    with transaction.atomic():
        for start in range(0, n_images, batch):
            Image.objects.bulk_create(
                [
                    Image(project=project, file="bench/placeholder.png", thumbnail="bench/placeholder.webp",
                          original_name=f"img_{i:06d}.jpg", sha256=f"{project.pk:08x}{i:056x}", width=1024,
                          height=768, external_id=f"ext-{i}")
                    for i in range(start, min(start + batch, n_images))
                ]
            )
        image_ids = list(Image.objects.filter(project=project).order_by("id").values_list("id", flat=True))
        tags = Tag.objects.bulk_create([Tag(project=project, name=f"tag {k}") for k in range(50)])
        for start in range(0, n_images, batch):
            ImageTag.objects.bulk_create(
                [
                    ImageTag(image_id=image_id, tag=tags[(index * 7 + offset) % 50])
                    for index, image_id in enumerate(image_ids[start:start + batch], start=start)
                    for offset in (0, 1)
                ]
            )
        version = ModelVersion.objects.create(project=project, encoder_id="tiny", status="active", is_active=True)
        now = timezone.now()
        for start in range(0, n_images, batch):
            chunk = image_ids[start:start + batch]
            ImageScore.objects.bulk_create(
                [
                    ImageScore(model_version=version, image_id=image_id, mean=1 + 9 * rng.random(),
                               distribution=_distribution(rng), uncertainty=rng.random())
                    for image_id in chunk
                ]
            )
            HumanScore.objects.bulk_create(
                [
                    HumanScore(project=project, image_id=image_id, mean=rng.gauss(0, 1), variance=rng.random(),
                               n_comparisons=2, fitted_at=now)
                    for image_id in chunk
                ]
            )
        # Earlier judgments by 20 other raters: 2 comparisons per image on average.
        history = [User.objects.get_or_create(username=f"bench-history-{k}")[0] for k in range(20)]
        for start in range(0, n_images * 2, batch):
            Comparison.objects.bulk_create(
                [
                    Comparison(project=project, image_a_id=a, image_b_id=b, outcome=rng.choice("ab"),
                               rater=history[k % 20], client_key=f"h{slug}-{k}", response_ms=900)
                    for k in range(start, min(start + batch, n_images * 2))
                    for a, b in [rng.sample(image_ids, 2)]
                ]
            )
        recount_image_stats(project)
        raters = []
        for k in range(n_raters):
            user, _ = User.objects.get_or_create(username=f"bench-rater-{k}")
            Membership.objects.create(project=project, user=user)
            raters.append(Token.objects.get_or_create(user=user)[0].key)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return {"slug": slug, "tokens": raters, "model_version": version.pk, "build_s": time.perf_counter() - started}


def existing_project(n_images: int, n_raters: int) -> dict | None:
    """A benchmark project an earlier run built, with enough raters, or None."""
    from rest_framework.authtoken.models import Token

    from labeling.models import Project

    project = Project.objects.filter(slug=f"bench-{n_images}").first()
    if project is None or project.images.count() != n_images:
        return None
    tokens = list(
        Token.objects.filter(user__memberships__project=project, user__username__startswith="bench-rater-")
        .order_by("user__id")
        .values_list("key", flat=True)
    )
    if len(tokens) < n_raters:
        return None
    version = project.model_versions.filter(is_active=True).values_list("pk", flat=True).first()
    return {"slug": project.slug, "tokens": tokens, "model_version": version, "build_s": 0.0}


def _distribution(rng) -> list[float]:
    weights = [rng.random() for _ in range(10)]
    total = sum(weights)
    return [round(w / total, 6) for w in weights]


# --- Server ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_static_collected: set[str] = set()


def collect_static(env: dict) -> None:
    """collectstatic once per var folder: with DEBUG off the pages need the static files' manifest."""
    folder = env.get("TAGRANK_VAR_DIR", "")
    if folder not in _static_collected:
        subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=REPO, env=env,
                       check=True, capture_output=True)
        _static_collected.add(folder)


class Server:
    """gunicorn on 127.0.0.1 with production settings, stopped by PID."""

    def __init__(self, database_url: str, workers: int, threads: int, environ: dict | None = None):
        self.port = free_port()
        self.workers, self.threads = workers, threads
        env = dict(os.environ)
        env.update(
            DATABASE_URL=database_url, DEBUG="false", SECRET_KEY="benchmark-only-" + uuid.uuid4().hex,
            ALLOWED_HOSTS="127.0.0.1", TAGRANK_THROTTLE_SUBMIT="1000000/min", TAGRANK_THROTTLE_NEXT_PAIR="1000000/min",
            LOG_LEVEL="WARNING",
            DATABASE_CONN_MAX_AGE="600", SESSION_COOKIE_SECURE="false", CSRF_COOKIE_SECURE="false",
        )
        env.update(environ or {})
        collect_static(env)
        # Production's settings (preloading, worker recycling), with the sizes and logging set here.
        config_file = REPO / "platform" / "gunicorn.conf.py"
        production_config = ["--config", str(config_file), "--access-logfile", "/dev/null"] if config_file.exists() else []
        self.log = tempfile.TemporaryFile()  # not a pipe: nobody reads it while serving, and a full pipe blocks
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "config.wsgi:application", *production_config,
             "--bind", f"127.0.0.1:{self.port}", "--workers", str(workers), "--threads", str(threads),
             "--worker-class", "gthread", "--log-level", "warning", "--keep-alive", "30"],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=self.log,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                connection.request("GET", "/healthz/")
                if connection.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError("gunicorn did not start: " + self.log_tail())

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()] if children.exists() else []

    def memory_kib(self, field_name: str) -> int:
        """Largest ``VmRSS``/``VmHWM`` among the workers, in KiB."""
        return max((memory_kib(field_name, pid) for pid in self.worker_pids()), default=0)

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far by the workers (independent of what else runs on the machine),
        those gunicorn has replaced included: ``max_requests`` recycles a worker every ~2,000 requests, and a
        reaped worker's time moves to the master's children's time (at 10 clients the live workers alone gave
        a negative difference)."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = sum(process_cpu_ticks(pid) for pid in self.worker_pids())
        return (total + process_cpu_ticks(self.process.pid, reaped_children=True)) / ticks

    def log_tail(self, chars: int = 2000) -> str:
        """The end of what gunicorn wrote to stderr (errors, tracebacks)."""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-chars:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def database_cpu_seconds() -> float:
    """User + system CPU time used so far by the PostgreSQL server's processes on this machine (readable as
    root; 0 elsewhere), those that ended in between (connections closed) included: their time is in the
    postmaster's children's time."""
    postgres = {}  # pid -> stat fields
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() == "postgres":
                postgres[int(entry.name)] = stat_fields(entry.name)
        except OSError:
            continue
    # The postmaster (the one whose parent is not postgres) also carries its ended backends' time.
    total = sum(cpu_ticks(fields, reaped_children=int(fields[1]) not in postgres) for fields in postgres.values())
    return total / os.sysconf("SC_CLK_TCK")


# --- Clients --------------------------------------------------------------------------------------


def client_process(port, slug, token, judgments, think_s, seed, barrier, results) -> None:
    """One rater in its own process (no GIL shared with the other clients): next-pair, then submit.

    ``think_s`` > 0 paces the rater like a person: a random pause (uniform 0..2·think_s) between getting a
    pair and answering. 0 is a closed loop with no pause: the most load the clients can make.
    """
    rng = random.Random(seed)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json", "Accept": "application/json"}
    next_times, submit_times, errors, empty = [], [], [], 0
    barrier.wait()
    if think_s:  # people do not all click in the same millisecond: paced raters start within one pause
        time.sleep(rng.uniform(0, 2 * think_s))
    for _ in range(judgments):
        started = time.perf_counter()
        connection.request("GET", f"/api/v1/projects/{slug}/next-pair/", headers=headers)
        response = connection.getresponse()
        body = response.read()
        next_times.append(time.perf_counter() - started)
        if response.status == 204:
            empty += 1
            continue
        if response.status != 200:
            errors.append(f"next-pair {response.status}: {body[:200]!r}")
            continue
        if think_s:
            time.sleep(rng.uniform(0, 2 * think_s))
        payload = json.dumps({"lease": json.loads(body)["lease"], "winner": rng.choice("ab"),
                              "client_key": uuid.uuid4().hex, "response_ms": 1500})
        started = time.perf_counter()
        connection.request("POST", f"/api/v1/projects/{slug}/comparisons/", body=payload, headers=headers)
        response = connection.getresponse()
        body = response.read()
        submit_times.append(time.perf_counter() - started)
        if response.status != 201:
            errors.append(f"submit {response.status}: {body[:200]!r}")
    connection.close()
    results.put((next_times, submit_times, errors, empty))


def run_clients(port: int, slug: str, tokens: list[str], clients: int, judgments_per_client: int,
                think_s: float = 0.0) -> dict:
    from django.db import connections

    connections.close_all()  # the forked clients must not share the parent's database connection
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(clients + 1), context.Queue()
    processes = [
        context.Process(target=client_process,
                        args=(port, slug, tokens[k], judgments_per_client, think_s, k, barrier, results))
        for k in range(clients)
    ]
    for process in processes:
        process.start()
    barrier.wait()
    started = time.perf_counter()
    collected = [results.get(timeout=1800) for _ in processes]
    elapsed = time.perf_counter() - started
    for process in processes:
        process.join()
    next_times = [t for c in collected for t in c[0]]
    submit_times = [t for c in collected for t in c[1]]
    errors = [e for c in collected for e in c[2]]
    return {
        "clients": clients,
        "think_s": think_s,
        "judgments": len(submit_times),
        "seconds": elapsed,
        "next_median_ms": 1000 * statistics.median(next_times),
        "next_p99_ms": 1000 * percentile(next_times, 99),
        "submit_median_ms": 1000 * statistics.median(submit_times),
        "submit_p99_ms": 1000 * percentile(submit_times, 99),
        "requests_per_s": (len(next_times) + len(submit_times)) / elapsed,
        "errors": errors[:5],
        "error_count": len(errors),
        "empty": sum(c[3] for c in collected),
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def warm_up(port: int, slug: str, tokens: list[str]) -> None:
    """A few judgments so that imports, connections and caches are warm before timing, then fresh planner
    statistics: the lease and candidate tables grew from nothing in seconds, faster than autovacuum's
    ANALYZE follows (in production they grow with the raters, and autovacuum keeps up)."""
    from django.db import connection

    run_clients(port, slug, tokens[:4], clients=4, judgments_per_client=25)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE labeling_paircandidate, labeling_pairlease, labeling_comparison, labeling_imagestats")


# --- Export ---------------------------------------------------------------------------------------


EXPORT_PATHS = {"scores": "/api/v1/projects/{slug}/scores/", "comparisons": "/api/v1/projects/{slug}/export/comparisons/"}


def measure_export(database_url: str, slug: str, token: str, output: str, what: str = "scores",
                   max_seconds: float | None = None) -> dict:
    """One export (``what``: scores or comparisons) read to the end from a fresh single-worker server, or for
    ``max_seconds`` at most (then ``complete`` is false and the rate is that of the part read)."""
    server = Server(database_url, workers=1, threads=1)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
        headers = {"Authorization": f"Token {token}"}
        connection.request("GET", "/healthz/", headers=headers)  # load the app before measuring memory
        connection.getresponse().read()
        rss_before = server.memory_kib("VmRSS")
        started = time.perf_counter()
        connection.request("GET", EXPORT_PATHS[what].format(slug=slug) + f"?format={output}", headers=headers)
        response = connection.getresponse()
        first_byte = time.perf_counter() - started
        size, rows = 0, 0
        complete = True
        while chunk := response.read(1 << 16):
            size += len(chunk)
            rows += chunk.count(b"\n")
            if max_seconds is not None and time.perf_counter() - started > max_seconds:
                complete = False
                break
        elapsed = time.perf_counter() - started
        assert response.status == 200, response.status
        peak = server.memory_kib("VmHWM")
    finally:
        server.stop()
    data_rows = rows - (1 if output == "csv" else 0)
    return {
        "export": what, "format": output, "complete": complete, "rows": data_rows, "bytes": size, "seconds": elapsed, "first_byte_s": first_byte,
        "rows_per_s": data_rows / elapsed, "rss_before_mib": rss_before / 1024, "peak_rss_mib": peak / 1024,
    }


# --- Report ---------------------------------------------------------------------------------------


def machine(database_url: str) -> str:
    cpu = "unknown CPU"
    try:
        cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text()).group(1).strip()
    except (OSError, AttributeError):
        pass
    memory = ""
    try:
        kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        memory = f", {kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, AttributeError):
        pass
    import django
    import psycopg

    with psycopg.connect(database_url) as connection:
        pg_version = connection.execute("show server_version").fetchone()[0]
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (f"{os.cpu_count()} CPU cores ({cpu}){memory}; Python {platform.python_version()}, Django {django.__version__}, "
            f"PostgreSQL {pg_version}, gunicorn gthread; clients and server on the same machine; load average "
            f"at the end of the run {load} (other work shares this machine)")


def run_options() -> list[str]:
    """The command-line options that shaped the measurement (not the ones that only write the report)."""
    options, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
        elif arg == "--report-from":
            skip = True
        elif arg != "--write-docs" and not arg.startswith("--report-from="):
            options.append(arg)
    return options


def report(args, loops: list[dict], exports: list[dict], builds: dict) -> str:
    lines = [
        SECTION,
        "",
        "Command: `" + " ".join([".venv/bin/python benchmarks/labelling_loop.py", *run_options()]) + "`",
        "",
        f"Machine: {machine(args.database_url)}.",
        "",
        f"Inputs: projects of {', '.join(f'{n:,}' for n in args.sizes)} images written in bulk (two tags each, "
        "a model score and a human score each, 2 earlier comparisons per image by other raters); overlap 1; "
        "an empty pair queue, so every pair comes from the fallback strategy (fewest comparisons, random "
        "partners), the slower path; left/right and winners random. "
        f"Server: gunicorn with `platform/gunicorn.conf.py` (the app preloaded), {args.workers} workers × "
        f"{args.threads} threads, DEBUG off, persistent database "
        "connections. Each client is a rater (its own process and token) looping `GET next-pair` → "
        f"`POST comparisons`: either as fast as it can ({args.judgments} judgments per run, split over the "
        f"clients), which measures saturation, or paced like a person, pausing uniformly 0–{2 * args.think:g} s "
        f"before answering and before its first request ({args.paced_judgments} judgments per run). Latencies are "
        "measured by the clients, "
        "over HTTP on 127.0.0.1.",
        "",
        "| images | clients | pacing | judgments | next-pair median | next-pair p99 | submit median | submit p99 | "
        "requests/s | CPU per judgment: server / database / clients | load | errors |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in loops:
        pacing = f"{row['think_s']:g} s pause" if row["think_s"] else "none (closed loop)"
        lines.append(
            f"| {row['images']:,} | {row['clients']} | {pacing} | {row['judgments']:,} | {row['next_median_ms']:.1f} ms | "
            f"{row['next_p99_ms']:.1f} ms | {row['submit_median_ms']:.1f} ms | {row['submit_p99_ms']:.1f} ms | "
            f"{row['requests_per_s']:.0f} | {row.get('server_cpu_ms_per_judgment', float('nan')):.1f} / "
            f"{row.get('database_cpu_ms_per_judgment', float('nan')):.1f} / "
            f"{row.get('client_cpu_ms_per_judgment', float('nan')):.1f} ms | "
            f"{row.get('load_average', float('nan')):.1f} | {row['error_count']} |"
        )
    lines += [
        "",
        "Export of every image (`GET /api/v1/projects/{slug}/scores/`), one request from a fresh single-worker "
        "server, read to the end by the client:",
        "",
        "| images | format | size | time | rows/s | time to first byte | server RSS before | server peak RSS |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in exports:
        lines.append(
            f"| {row['rows']:,} | {row['format']} | {row['bytes'] / 1e6:.1f} MB | {row['seconds']:.2f} s | "
            f"{row['rows_per_s']:,.0f} | {row['first_byte_s'] * 1000:.0f} ms | {row['rss_before_mib']:.0f} MiB | "
            f"{row['peak_rss_mib']:.0f} MiB |"
        )
    lines += [
        "",
        ("Writing the benchmark rows took " + ", ".join(f"{s:.0f} s for {n:,} images" for n, s in builds.items())
         + " (bulk inserts, not the import path; see the import section for that)." if builds else ""),
        "",
        "Against the anchors (`../shared/anchors.md`, Label Studio 1.23.2 on this kind of machine): its loop at "
        "100k tasks is 312 ms + 204 ms (median next + submit), 10 concurrent clients get 9 req/s with p99 "
        "5.3–5.8 s, and exporting 100k tasks takes 279 s at 748 MB peak RSS.",
        "",
    ]
    return "\n".join(lines)


def write_docs(section: str) -> None:
    """Replace this benchmark's section of docs/benchmarks.md, leaving the other sections (and its own
    ``###`` subsections, such as the scale run's) as they are."""
    text = DOCS.read_text()
    start = text.index(SECTION)
    ends = [at for at in (text.find("\n## ", start + len(SECTION)), text.find("\n### ", start)) if at >= 0]
    following = min(ends, default=-1)
    rest = "" if following < 0 else text[following + 1:]
    DOCS.write_text(text[:start] + section.rstrip() + "\n" + ("\n" + rest if rest else ""))


def start_refill_worker(database_url: str) -> subprocess.Popen:
    """A worker for the ``default`` queue (pair refills, human-score fits), stopped by PID after the run."""
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "worker", "worker", "-Q", "default", "--pool", "solo",
         "--loglevel", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=REPO, env={**os.environ, "DATABASE_URL": database_url}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--judgments", type=int, default=2000,
                        help="judgments per closed-loop run (no pause between judgments), split over the clients")
    parser.add_argument("--think", type=float, default=0.5,
                        help="mean pause in seconds of a paced rater between seeing a pair and answering")
    parser.add_argument("--paced-judgments", type=int, default=1000, help="judgments per paced run")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--reuse", action="store_true", help="reuse benchmark projects built by an earlier run")
    parser.add_argument("--no-export", action="store_true", help="skip the export measurement")
    parser.add_argument("--with-worker", action="store_true",
                        help="also run a Celery worker (queue default), so the pair refills that judgments "
                             "send run during the measurement (the broker from CELERY_BROKER_URL)")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--repo", type=Path, help="serve and measure the code of this tree (e.g. a `git archive` "
                        "of an earlier commit), with this harness")
    parser.add_argument("--report-from", type=Path, metavar="LOG",
                        help="only rebuild the report from the JSON lines a previous run printed (with its options)")
    args = parser.parse_args()
    if args.repo:
        global REPO
        REPO = args.repo.resolve()

    if args.report_from:
        setup_django(args.database_url)
        loops, exports, builds = [], [], {}
        for line in args.report_from.read_text().splitlines():
            if line.startswith("{"):
                row = json.loads(line)
                (exports if "format" in row else loops).append(row)
            elif match := re.match(r"built (\d+) images in ([\d.]+) s", line):
                builds[int(match.group(1))] = float(match.group(2))
        section = report(args, loops, exports, builds)
        print(section)
        if args.write_docs:
            write_docs(section)
        return

    ensure_database(args.database_url)
    setup_django(args.database_url)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    loops, exports, builds = [], [], {}
    for size in args.sizes:
        project = existing_project(size, n_raters=max(args.clients) + 4) if args.reuse else None
        if project is None:
            print(f"building a project of {size:,} images…", flush=True)
            project = build_project(size, n_raters=max(args.clients) + 4)
            builds[size] = project["build_s"]
            print(f"built {size} images in {project['build_s']:.1f} s", flush=True)
        server = Server(args.database_url, workers=args.workers, threads=args.threads)
        worker = start_refill_worker(args.database_url) if args.with_worker else None
        try:
            warm_up(server.port, project["slug"], project["tokens"][-4:])
            for think_s, judgments in ((0.0, args.judgments), (args.think, args.paced_judgments)):
                if not judgments:
                    continue
                for clients in args.clients:
                    cpu_before, database_before = server.cpu_seconds(), database_cpu_seconds()
                    clients_before = resource.getrusage(resource.RUSAGE_CHILDREN)
                    result = run_clients(server.port, project["slug"], project["tokens"], clients,
                                         max(1, judgments // clients), think_s=think_s)
                    clients_after = resource.getrusage(resource.RUSAGE_CHILDREN)
                    per_judgment = 1000 / max(1, result["judgments"])
                    result["server_cpu_ms_per_judgment"] = (server.cpu_seconds() - cpu_before) * per_judgment
                    result["database_cpu_ms_per_judgment"] = (database_cpu_seconds() - database_before) * per_judgment
                    result["client_cpu_ms_per_judgment"] = per_judgment * (
                        clients_after.ru_utime + clients_after.ru_stime - clients_before.ru_utime
                        - clients_before.ru_stime
                    )
                    result["load_average"] = os.getloadavg()[0]
                    result["images"] = size
                    loops.append(result)
                    print(json.dumps(result), flush=True)
        finally:
            server.stop()
            if worker is not None:
                worker.terminate()
                worker.wait(timeout=60)
        if size == max(args.sizes) and not args.no_export:
            manager_token = project["tokens"][0]
            from django.contrib.auth import get_user_model

            from labeling.models import Membership

            user = get_user_model().objects.get(auth_token__key=manager_token)
            Membership.objects.filter(user=user, project__slug=project["slug"]).update(role="manager")
            for output in ("csv", "jsonl"):
                result = measure_export(args.database_url, project["slug"], manager_token, output)
                exports.append(result)
                print(json.dumps(result), flush=True)
    section = report(args, loops, exports, builds)
    print()
    print(section)
    if args.write_docs:
        write_docs(section)
        print(f"written to {DOCS}")


if __name__ == "__main__":
    main()
