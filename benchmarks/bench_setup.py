"""Set-up shared by the benchmark scripts: the repository on sys.path, Django on a database, memory readings.

One way to import: the scripts run as ``python benchmarks/x.py``, so Python puts this folder on sys.path, and
a script imports its helpers and the other scripts by file name (``from bench_setup import REPO``,
``from bench_docs import replace_docs_section``, ``from active_learning import judge``); importing this module
first puts the repository on sys.path for the project's packages (``modeling``, ``labeling``, ``tests``).
Tests import benchmark modules by file name too (pytest's ``pythonpath`` in pyproject.toml names this folder).
A script that measures another checkout (``--repo``) puts that tree first on sys.path itself.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
# DEBUG is off unless set (config/settings.py): scratch runs use the development settings, as `make demo`
# does; a benchmark that times production settings sets DEBUG=false and a SECRET_KEY for its servers.
os.environ.setdefault("DEBUG", "true")


def benchmark_parser(doc: str, database: str | None = None) -> argparse.ArgumentParser:
    """A script's argument parser, described by the first paragraph of its docstring ``doc``; with ``database``,
    it takes ``--database-url``, by default that database on the local PostgreSQL."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    if database is not None:
        parser.add_argument("--database-url", default=f"postgres://postgres@127.0.0.1:5432/{database}")
    return parser


def synthetic_data_parser(doc: str, *, images: int, comparisons: int, database: str) -> argparse.ArgumentParser:
    """``benchmark_parser`` for a script that writes a synthetic project into its own PostgreSQL database: the
    project's size, the server and the database, whether to keep it afterwards, and the seed."""
    parser = benchmark_parser(doc)
    parser.add_argument("--images", type=int, default=images)
    parser.add_argument("--comparisons", type=int, default=comparisons)
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default=database)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def revision_tree(revision: str, paths: tuple[str, ...] = ()) -> Path:
    """A temporary folder holding ``revision``'s code (``git archive``; only ``paths`` when given), laid out as
    the repository is, for a benchmark's "before" side; the caller removes it."""
    folder = Path(tempfile.mkdtemp(prefix="tagrank-before-"))
    archive = subprocess.run(["git", "-C", str(REPO), "archive", revision, *paths], capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def scratch_environment(work: Path, encoder: str | None = None) -> dict[str, str]:
    """Settings that keep a run's files under ``work`` (var, media, cached features), with quiet logs."""
    return {
        "TAGRANK_VAR_DIR": str(work / "var"),
        "MEDIA_ROOT": str(work / "media"),
        "TAGRANK_FEATURES_DIR": str(work / "media" / "features"),
        **({"TAGRANK_ENCODER": encoder} if encoder else {}),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "LOG_LEVEL": "WARNING",
    }


def start_django(database_url: str, **environ: str) -> None:
    """Point the settings at ``database_url`` (and any other ``environ`` values), set Django up and migrate."""
    os.environ["DATABASE_URL"] = database_url
    os.environ.update(environ)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def machine_with_postgres() -> str:
    """This machine for a results file: architecture, cores, Python, and the version of Django's PostgreSQL."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        server = cursor.fetchone()[0]
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, PostgreSQL {server}"


def memory_kib(field: str, pid: int | str = "self") -> int:
    """A field of /proc/PID/status in KiB (VmRSS: resident now, VmHWM: the peak); 0 where there is none."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def reset_peak(pid: int | str = "self") -> None:
    """Reset a process's VmHWM to its current RSS (Linux clear_refs), so the next peak is this step's."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass


def stat_fields(pid: int | str) -> list[str]:
    """``/proc/PID/stat`` after the command name: [0] state, [1] ppid, ... [11] utime, [12] stime, [13] cutime,
    [14] cstime (fields 3 onwards of proc(5)). Raises OSError if the process is gone."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_ticks(fields: list[str], reaped_children: bool = False) -> int:
    """User + system clock ticks of a process from its ``stat_fields``; with ``reaped_children``, plus those of
    its children that ended and were waited for."""
    return int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if reaped_children else 0)


def process_cpu_ticks(pid: int | str, reaped_children: bool = False) -> int:
    """``cpu_ticks`` of a process by pid, 0 if it is gone."""
    try:
        return cpu_ticks(stat_fields(pid), reaped_children)
    except OSError:
        return 0


def backend_cpu_seconds() -> float:
    """User + system CPU seconds used so far by this Django connection's PostgreSQL backend (same machine, read
    from /proc; 0 where it cannot be read)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    return process_cpu_ticks(pid) / os.sysconf("SC_CLK_TCK")
