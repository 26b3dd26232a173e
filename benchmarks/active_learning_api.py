"""Active learning end to end: campaigns through the REST API of a running server, worker and beat.

    .venv/bin/python benchmarks/active_learning_api.py            # the full run, writes docs/ (about 20 min here)
    .venv/bin/python benchmarks/active_learning_api.py --quick    # 2 seeds, one set: a smoke run, prints only

The script starts everything itself in a temporary folder: gunicorn on 127.0.0.1 (a free port), a
Celery worker for the ``default`` queue (pair refills, human-score fits), one for ``gpu`` (features,
training, scoring) and beat, on the embedded default (SQLite + the filesystem broker), or on
PostgreSQL + Redis when ``DATABASE_URL`` / ``CELERY_BROKER_URL`` are set. Only the set-up (projects,
users, image files) is written directly; every judgment, retrain and score goes through REST.

Image sets with a known latent quality ``q`` (standardised to unit variance):

* ``ladder``: the demo's distortion ladder (``labeling.services.demo``), ``q = -distortion_strength``;
* ``degraded``: the generated degraded set (``modeling.ml.degraded_set``): crops of other scikit-image
  pictures under random blur, noise and JPEG levels, ``q = -(sum of the levels)``; the picture is the
  image's one content tag. Each seed draws its own images.

Raters: ``--raters`` Thurstone observers: a rater prefers a over b with probability Φ((q_a − q_b) / noise).
Campaigns: for each set, seed, strategy (``random``, ``round_robin``, ``active``) and model condition
(``none``; ``retrain``: the manager asks for a retrain after 0.5 judgments per image and the campaign
waits until that version is active), a fresh project with the same images and the same rater seed
(paired). At each budget (judgments per image) the manager asks for a refit (POST agreement/), waits
until the exported human scores include every judgment (``human_score_fitted_at`` not before the last
judgment's ``created_at``), and reads ``human_score`` from the scores export: the figure is its SRCC
against ``q``. Reported: mean SRCC ± s.e. over seeds, and active − random as the mean ± s.e. of
the paired difference.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
from scipy import stats

import bench_api
from bench_setup import REPO, scratch_environment

SECTION = "## Active learning end to end (REST, worker, beat)"
PASSWORD = "bench-password"


@dataclass
class BenchConfig:
    sets: tuple[str, ...] = ("ladder", "degraded")
    images: int = 48  # size of the degraded set
    ladder_photos: int = 3  # the ladder has 13 images per photograph
    seeds: int = 24  # paired seeds: 12 left standard errors of the paired differences up to 0.045
    raters: int = 3
    budgets: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0)  # judgments per image
    strategies: tuple[str, ...] = ("random", "round_robin", "active")
    models: tuple[str, ...] = ("none", "retrain")
    retrain_at: float = 0.5  # judgments per image before the mid-campaign retrain
    rolling_retrains: tuple[float, ...] = (0.5, 1.0, 2.0)  # model "rolling": retrained at each of these budgets
    noise: float = 1.0  # Thurstone noise in units of the latent quality's standard deviation
    parallel: int = 12  # campaigns rated at once (each one judgment at a time)
    encoder: str = ""  # TAGRANK_ENCODER for the mid-campaign model; empty: the project's default
    overlap: int = 1  # each pair judged once: judgments per image are all information
    timeout_s: float = 600.0  # for one retrain or one refit
    extra_env: dict = field(default_factory=dict)


# --- Image sets --------------------------------------------------------------------------------------


def png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def ladder_set(n_photos: int) -> list[dict]:
    from labeling.services.demo import DEMO_PHOTOS, DISTORTIONS, distort, load_photo

    images = []
    for photo_index, file_name in enumerate(list(DEMO_PHOTOS)[:n_photos]):
        photo = file_name.rsplit(".", 1)[0]
        clean = load_photo(file_name, max_side=192)
        images.append({"name": f"{photo}_original.png", "data": png(clean), "tag": photo, "latent": 0.0})
        for kind, (_, values) in DISTORTIONS.items():
            for strength, value in enumerate(values, start=1):
                image = distort(clean, kind, value, photo_index * 100 + strength)
                images.append({"name": f"{photo}_{kind}_{strength}.png", "data": png(image), "tag": photo,
                               "latent": -float(strength)})
    return images


def degraded_set(n: int, seed: int, size: int = 128) -> list[dict]:
    """The generated degraded set (``modeling.ml.degraded_set``): its latent quality, its content tag."""
    from modeling.ml.degraded_set import CONTENT_FILES, make_degraded_set

    made = make_degraded_set(n, seed=1000 + seed, size=size)
    return [{"name": f"d{seed}_{i:04d}.png", "data": png(image), "tag": CONTENT_FILES[k].rsplit(".", 1)[0],
             "latent": float(q)} for i, (image, q, k) in enumerate(zip(made.images, made.quality, made.content))]


# --- The running system ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_environment(work: Path, config: BenchConfig) -> None:
    os.environ.update({
        **scratch_environment(work, config.encoder),
        "DEBUG": "false",
        "SECRET_KEY": "benchmark-only-" + uuid.uuid4().hex,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        "TAGRANK_THROTTLE_AUTH": "100000/min",
        "TAGRANK_THROTTLE_SUBMIT": "100000/min",
        "TAGRANK_THROTTLE_NEXT_PAIR": "100000/min",  # three raters serve every campaign at once
        **config.extra_env,
    })


class Services:
    """gunicorn, two workers and beat, stopped by PID."""

    def __init__(self, work: Path):
        self.port = free_port()
        self.work = work
        self.processes: list[subprocess.Popen] = []
        celery = [sys.executable, "-m", "celery", "-A", "worker"]
        quiet = ["--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "WARNING"]
        self.start("web", [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind",
                           f"127.0.0.1:{self.port}", "--workers", "2", "--threads", "4", "--worker-class",
                           "gthread", "--log-level", "warning"])
        self.start("default", [*celery, "worker", "-Q", "default", "--concurrency", "2", "-n", "default@%h", *quiet])
        self.start("gpu", [*celery, "worker", "-Q", "gpu", "--pool", "solo", "-n", "gpu@%h", *quiet])
        self.start("beat", [*celery, "beat", "-s", str(work / "var" / "beat-schedule"), "--loglevel", "WARNING"])
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/healthz/", timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError("the server did not start; see " + str(work / "web.log"))

    def start(self, name: str, command: list[str]) -> None:
        log = open(self.work / f"{name}.log", "wb")
        self.processes.append(subprocess.Popen(command, cwd=REPO, env=dict(os.environ), stdout=log,
                                               stderr=subprocess.STDOUT))

    def check(self) -> None:
        for process in self.processes:
            if process.poll() is not None:
                raise RuntimeError(f"{' '.join(process.args[2:5])} exited ({process.returncode}); logs in {self.work}")

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


class Api(bench_api.Api):
    def ok(self, method: str, path: str, body: dict | None = None, raw: bool = False, codes=(200, 201, 202)):
        code, answer = self.call(method, path, body, raw)
        if code not in codes:
            raise RuntimeError(f"{method} {path}: HTTP {code}: {answer}")
        return answer


def log_in(base: str, username: str) -> Api:
    answer = Api(base).ok("POST", "/api/v1/auth/token/", {"username": username, "password": PASSWORD})
    return Api(base, answer["token"])


def create_users(n_raters: int) -> list[str]:
    from django.contrib.auth import get_user_model

    User = get_user_model()
    names = ["bench-manager"] + [f"bench-rater-{k}" for k in range(n_raters)]
    for name in names:
        user, _ = User.objects.get_or_create(username=name)
        user.set_password(PASSWORD)
        user.save()
    return names


def add_members_and_images(project, images: list[dict], users: list[str]) -> dict[int, float]:
    """The first user as the manager, the others as raters, and the images; returns {image id: latent quality}."""
    from django.contrib.auth import get_user_model

    from labeling.models import Membership
    from labeling.services.imports import store_image

    User = get_user_model()
    for k, name in enumerate(users):
        role = Membership.Role.MANAGER if k == 0 else Membership.Role.RATER
        Membership.objects.create(project=project, user=User.objects.get(username=name), role=role)
    latent = {}
    for item in images:
        image, _ = store_image(project, item["name"], item["data"], tags=[item["tag"]])
        latent[image.pk] = item["latent"]
    return latent


def create_project(slug: str, images: list[dict], strategy: str, config: BenchConfig, users: list[str],
                   extract: bool) -> dict[int, float]:
    """A project with the images, the manager and raters; returns {image id: latent quality}."""
    from labeling.models import Project
    import worker.dispatch as dispatch
    from modeling.models import TrainingSettings

    project = Project.objects.create(
        name=slug, slug=slug, pair_strategy=strategy, overlap=config.overlap, gold_rate=0.0,
        retrain_min_new_comparisons=10**9, retrain_max_age_hours=10**5,  # retrains only when asked
    )
    TrainingSettings.objects.update_or_create(project=project, defaults={"train_baseline": False})
    latent = add_members_and_images(project, images, users)
    if extract:  # features for the mid-campaign model (on the gpu worker)
        dispatch.send_images_imported(project.pk, list(latent))
    return latent


# --- One campaign ------------------------------------------------------------------------------------


def judge(api: Api, slug: str, latent: dict[int, float], noise: float, rng: np.random.Generator,
          latencies: list[float]) -> str | None:
    """One judgment by ``api``'s rater; its stored time (server clock), or None when no pair was served."""
    started = time.perf_counter()
    code, pair = api.call("GET", f"/api/v1/projects/{slug}/next-pair/")
    latencies.append(time.perf_counter() - started)
    if code == 204:
        return None
    if code != 200:
        raise RuntimeError(f"next-pair: HTTP {code}: {pair}")
    p_a = stats.norm.cdf((latent[pair["a"]["id"]] - latent[pair["b"]["id"]]) / noise)
    winner = "a" if rng.random() < p_a else "b"
    stored = api.ok("POST", f"/api/v1/projects/{slug}/comparisons/",
                    {"lease": pair["lease"], "winner": winner, "client_key": uuid.uuid4().hex, "response_ms": 1500})
    return stored["created_at"]


SERVICES: list = []  # the running Services, so that a wait notices one that died


def wait(what: str, check, timeout_s: float, every_s: float = 1.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for services in SERVICES:
            services.check()
        value = check()
        if value:
            return value
        time.sleep(every_s)
    raise RuntimeError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def fresh_score_rows(manager: Api, slug: str, last_judged_at: str | None, timeout_s: float) -> list[dict]:
    """Refit on the worker (POST agreement/), wait until the exported human scores saw every judgment, read the
    export. A fit stores only the rows that moved (``human_score_writes``), but it always moves the images of
    the judgments it saw first (their counts change): so the newest ``human_score_fitted_at`` not before the
    last judgment's ``created_at`` says a fit that saw it is stored, and the unmoved rows are that fit's too.
    (A report newer than the request is no sign: it counts the comparisons when computed, not when its
    scores were fitted.)"""
    manager.ok("POST", f"/api/v1/projects/{slug}/agreement/")
    judged_at = datetime.fromisoformat(last_judged_at) if last_judged_at else None

    def fresh_rows():
        text = manager.ok("GET", f"/api/v1/projects/{slug}/scores/?format=jsonl", raw=True)
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        fitted = [datetime.fromisoformat(row["human_score_fitted_at"]) for row in rows if row["human_score_fitted_at"]]
        fresh = judged_at is None or (len(fitted) == len(rows) and max(fitted) >= judged_at)
        return rows if fresh else None

    return wait(f"human scores of {slug} that include every judgment", fresh_rows, timeout_s)


def exported_srcc(manager: Api, slug: str, latent: dict[int, float], last_judged_at: str | None,
                  timeout_s: float) -> float:
    """SRCC against the truth of the exported human scores, once they saw every judgment (``fresh_score_rows``)."""
    rows = fresh_score_rows(manager, slug, last_judged_at, timeout_s)
    scores = np.array([row["human_score"] if row["human_score"] is not None else 0.0 for row in rows])
    truth = np.array([latent[row["image_id"]] for row in rows])
    return float(stats.spearmanr(scores, truth)[0])


def retrain(manager: Api, slug: str, timeout_s: float) -> dict:
    accepted = manager.ok("POST", f"/api/v1/projects/{slug}/retrain/")
    run_id, started = accepted["training_run"], time.monotonic()

    def finished():
        run = manager.ok("GET", f"/api/v1/training-runs/{run_id}/")
        if run["status"] in ("failed", "cancelled"):
            raise RuntimeError(f"training run {run_id} {run['status']}: {run.get('error')}")
        return run if run["status"] == "succeeded" else None

    run = wait(f"training run {run_id}", finished, timeout_s, every_s=2.0)

    def decided():
        version = manager.ok("GET", f"/api/v1/model-versions/{run['model_version']}/")
        return version if version["status"] in ("active", "candidate", "failed", "retired") else None

    version = wait("the new version's promotion", decided, timeout_s, every_s=2.0)
    return {"status": version["status"], "seconds": round(time.monotonic() - started, 1),
            "model_srcc": None}


def model_srcc(manager: Api, slug: str, latent: dict[int, float]) -> float | None:
    text = manager.ok("GET", f"/api/v1/projects/{slug}/scores/?format=jsonl", raw=True)
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    if not rows or rows[0].get("model_mean") is None:
        return None
    return float(stats.spearmanr([row["model_mean"] for row in rows], [latent[row["image_id"]] for row in rows])[0])


def run_campaign(url: str, campaign: dict, latent: dict[int, float], config: BenchConfig, users: list[str]) -> dict:
    slug, seed = campaign["slug"], campaign["seed"]
    manager = log_in(url, users[0])
    raters = [log_in(url, name) for name in users[1:]]
    rng = np.random.default_rng(seed)  # the same judgments' randomness for every strategy of a seed
    n_images, done, turn, latencies, last_judged_at = len(latent), 0, 0, [], None
    result = {**campaign, "srcc": {}, "judged": {}, "no_pair": 0, "retrain": None, "started": time.monotonic()}
    retrain_points = {"none": set(), "retrain": {config.retrain_at},
                      "rolling": set(config.rolling_retrains)}[campaign["model"]]
    checkpoints = sorted(set(config.budgets) | retrain_points)
    for budget in checkpoints:
        target = int(round(budget * n_images))
        stalled = 0
        while done < target and stalled < 30 * len(raters):
            if judged_at := judge(raters[turn % len(raters)], slug, latent, config.noise, rng, latencies):
                done, stalled, last_judged_at = done + 1, 0, judged_at
            else:
                stalled += 1  # nothing for this rater now: the next one, and after a round, a pause
                result["no_pair"] += 1
                if stalled % len(raters) == 0:
                    time.sleep(1.0)
            turn += 1
        result["judged"][budget] = done
        if budget in retrain_points:  # the last one is reported; "model_srcc_at" keeps each model's SRCC
            result["retrain"] = retrain(manager, slug, config.timeout_s)
            result["retrain"]["model_srcc"] = model_srcc(manager, slug, latent)
            result["model_srcc_at"] = {**result.get("model_srcc_at", {}), budget: result["retrain"]["model_srcc"]}
        if budget in config.budgets:
            result["srcc"][budget] = exported_srcc(manager, slug, latent, last_judged_at, config.timeout_s)
    result["comparisons"] = done
    result["seconds"] = round(time.monotonic() - result.pop("started"), 1)
    result["next_pair_ms"] = [round(1000 * v, 1) for v in np.percentile(latencies, [50, 99])] if latencies else None
    return result


# --- Report ------------------------------------------------------------------------------------------


def mean_se(values) -> tuple[float, float]:
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")


def summarise(results: list[dict], config: BenchConfig) -> dict:
    table = {}
    for image_set in config.sets:
        for model in config.models:
            for strategy in config.strategies:
                runs = sorted((r for r in results if (r["set"], r["model"], r["strategy"]) == (image_set, model, strategy)),
                              key=lambda r: r["seed"])
                if not runs:
                    continue
                row = {"seeds": len(runs)}
                for budget in config.budgets:
                    # A NaN (an export read before its refit: constant scores) leaves that seed out.
                    values = [r["srcc"][budget] for r in runs if np.isfinite(r["srcc"][budget])]
                    row["seeds"] = min(row["seeds"], len(values))
                    row[budget] = mean_se(values)
                    if strategy != "random":
                        base = {r["seed"]: r["srcc"][budget] for r in results
                                if (r["set"], r["model"], r["strategy"]) == (image_set, model, "random")}
                        paired = [r["srcc"][budget] - base[r["seed"]] for r in runs
                                  if r["seed"] in base and np.isfinite(r["srcc"][budget] - base[r["seed"]])]
                        if paired:
                            row[f"diff_{budget}"] = mean_se(paired)
                table[(image_set, model, strategy)] = row
    return table


def judgments_to_reach(curve: list[tuple[float, float]], level: float) -> float | None:
    """Judgments per image at which a (budget, SRCC) curve first reaches ``level`` (linear between budgets)."""
    for (b0, s0), (b1, s1) in zip([(0.0, 0.0)] + curve, curve):
        if s1 >= level:
            return b1 if s1 == s0 else b0 + (level - s0) * (b1 - b0) / (s1 - s0)
    return None


def markdown(results: list[dict], config: BenchConfig, command: str, machine: str, seconds: float,
             plot: str | None) -> str:
    table = summarise(results, config)
    took = "report rebuilt from the run's log" if seconds is None else f"{seconds / 60:.1f} min"
    lines = [SECTION, "", f"Command: `{command}` ({took}). Machine: {machine}.", "",
             f"Paired seeds (column n), {config.raters} Thurstone raters (noise {config.noise} latent SD), "
             f"overlap {config.overlap}, encoder `{encoder_name()}`; SRCC of the exported `human_score` against "
             "the latent quality, mean ± s.e. over seeds; Δ = paired difference to `random` of the same seed "
             "and condition (mean ± s.e.).", ""]
    budgets = config.budgets
    lines.append("| set | model | strategy | n | " + " | ".join(f"{b:g}/image" for b in budgets) + " |")
    lines.append("|---|---|---|---|" + "---|" * len(budgets))
    for (image_set, model, strategy), row in table.items():
        cells = []
        for b in budgets:
            m, se = row[b]
            cell = f"{m:.3f} ± {se:.3f}"
            if f"diff_{b}" in row:
                dm, dse = row[f"diff_{b}"]
                cell += f" (Δ {dm:+.3f} ± {dse:.3f})"
            cells.append(cell)
        lines.append(f"| {image_set} | {model} | {strategy} | {row['seeds']} | " + " | ".join(cells) + " |")
    retrains = [r["retrain"] for r in results if r["retrain"]]
    if retrains:
        active = sum(r["status"] == "active" for r in retrains)
        model = [r["model_srcc"] for r in retrains if r["model_srcc"] is not None]
        lines += ["", f"Mid-campaign retrains: {active} of {len(retrains)} became active; retrain to decision "
                      f"{np.median([r['seconds'] for r in retrains]):.0f} s (median); the model's own score vs the "
                      f"latent quality: SRCC {np.mean(model):.2f} (mean of {len(model)})." if model else ""]
    latencies = [r["next_pair_ms"] for r in results if r["next_pair_ms"]]
    if latencies:
        lines += ["", f"next-pair during these campaigns (all at once, one judgment at a time each): median of "
                      f"the campaigns' p50 {np.median([p[0] for p in latencies]):.0f} ms, worst p99 "
                      f"{max(p[1] for p in latencies):.0f} ms (timed by the client, loaded machine)."]
    for image_set in config.sets:
        for model in config.models:
            curves = {s: [(b, table[(image_set, model, s)][b][0]) for b in budgets]
                      for s in ("random", "active") if (image_set, model, s) in table}
            if len(curves) == 2:
                need = {s: judgments_to_reach(c, 0.90) for s, c in curves.items()}
                text = ", ".join(f"{s} {'not within ' + format(budgets[-1], 'g') if v is None else format(v, '.2f')}"
                                 for s, v in need.items())
                lines.append(f"\nJudgments per image to reach SRCC 0.90 ({image_set}, model {model}): {text}.")
    if plot:
        lines += ["", f"![SRCC against judgments per image]({plot})"]
    return "\n".join(lines) + "\n"


def plot(results: list[dict], config: BenchConfig, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = summarise(results, config)
    panels = [(s, m) for s in config.sets for m in config.models]
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), sharey=True, squeeze=False)
    for axis, (image_set, model) in zip(axes[0], panels):
        for strategy in config.strategies:
            row = table.get((image_set, model, strategy))
            if row:
                means = [row[b][0] for b in config.budgets]  # over the seeds with a value
                errors = [row[b][1] for b in config.budgets]
                axis.errorbar(config.budgets, means, yerr=errors, marker="o", capsize=3, label=strategy)
        axis.set_title(f"{image_set}, model: {model}")
        axis.set_xlabel("judgments per image")
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("SRCC of exported human_score")
    axes[0][0].legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


def write_section(text: str) -> None:
    docs = REPO / "docs" / "benchmarks.md"
    current = docs.read_text()
    pattern = re.compile(re.escape(SECTION) + r".*?(?=\n## |\Z)", re.S)
    docs.write_text(pattern.sub(lambda _: text.rstrip("\n") + "\n", current) if pattern.search(current)
                    else current.rstrip("\n") + "\n\n" + text)


def encoder_name() -> str:
    from modeling.services.feature_extraction import encoder_id_for

    return encoder_id_for()


def machine_text() -> str:
    load = os.getloadavg()
    backend = "PostgreSQL" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "SQLite"
    broker = "Redis" if os.environ.get("CELERY_BROKER_URL", "").startswith("redis") else "filesystem broker"
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores shared with other jobs "
            f"(load {load[0]:.1f} at the end), Python {platform.python_version()}, {backend} + {broker}")


# --- Main --------------------------------------------------------------------------------------------


def report_from(log: Path, config: BenchConfig, write: bool) -> None:
    """The report of the campaigns a run printed (e.g. a run stopped before its end: it says how many)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    results = []
    for line in log.read_text().splitlines():
        if line.startswith('{"slug"'):
            row = json.loads(line)
            image_set, model, rest = row["slug"].split("-", 2)
            strategy, seed = rest.rsplit("-s", 1)
            row.update(set=image_set, model=model, strategy=strategy.replace("-", "_"), seed=int(seed),
                       srcc={float(k): v for k, v in row["srcc"].items()})
            results.append(row)
    complete = {(r["set"], r["model"], r["seed"]) for r in results}
    complete = {key for key in complete
                if sum((r["set"], r["model"], r["seed"]) == key for r in results) == len(config.strategies)}
    results = [r for r in results if (r["set"], r["model"], r["seed"]) in complete]  # paired seeds only
    seeds = sorted({r["seed"] for r in results})
    print(f"{len(results)} campaigns with all strategies of their seed, seeds {seeds}")
    plot_path = REPO / "docs" / "img" / "active_learning_api.png"
    if write:
        plot(results, config, plot_path)
    import django

    django.setup()
    command = "python benchmarks/active_learning_api.py" + (f" --seeds {config.seeds}" if config.seeds != BenchConfig.seeds else "")
    text = markdown(results, config, command, machine_text(), None,
                    "img/active_learning_api.png" if write else None)
    print(text)
    if write:
        write_section(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one set, 2 seeds, no writing: a smoke run")
    parser.add_argument("--sets", nargs="+", choices=["ladder", "degraded"])
    parser.add_argument("--seeds", type=int)
    parser.add_argument("--images", type=int, help="size of the degraded set")
    parser.add_argument("--ladder-photos", type=int, help="photographs of the ladder (13 images each)")
    parser.add_argument("--raters", type=int)
    parser.add_argument("--models", nargs="+", choices=["none", "retrain", "rolling"],
                        help="none; retrain: once at 0.5 judgments per image; rolling: at 0.5, 1 and 2")
    parser.add_argument("--strategies", nargs="+", choices=["random", "round_robin", "active"])
    parser.add_argument("--parallel", type=int)
    parser.add_argument("--noise", type=float, help="the raters' Thurstone noise, in latent standard deviations")
    parser.add_argument("--budgets", type=float, nargs="+", help="judgments per image at which SRCC is read")
    parser.add_argument("--encoder", help="TAGRANK_ENCODER for the mid-campaign model (default: settings')")
    parser.add_argument("--no-write", action="store_true", help="print, do not touch docs/")
    parser.add_argument("--json", help="also save every campaign's result here")
    parser.add_argument("--report-from", metavar="LOG", type=Path,
                        help="only rebuild the report from the campaign lines a run printed (with its options)")
    args = parser.parse_args(argv)
    config = BenchConfig()
    if args.quick:
        config.sets, config.seeds, config.images, config.models = ("degraded",), 2, 60, ("none",)
    for name in ("sets", "seeds", "images", "ladder_photos", "raters", "models", "strategies", "parallel", "encoder",
                 "noise", "budgets"):
        if getattr(args, name):
            value = getattr(args, name)
            setattr(config, name, tuple(value) if isinstance(value, list) else value)
    write = not (args.quick or args.no_write)
    if args.report_from:
        report_from(args.report_from, config, write)
        return

    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="tagrank-al-"))
    prepare_environment(work, config)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    users = create_users(config.raters)
    campaigns, image_sets = [], {}
    for image_set in config.sets:
        for seed in range(config.seeds):
            images = ladder_set(config.ladder_photos) if image_set == "ladder" else degraded_set(config.images, seed)
            truth = np.array([item["latent"] for item in images])
            for item, z in zip(images, (truth - truth.mean()) / truth.std()):
                item["latent"] = float(z)
            image_sets[(image_set, seed)] = images
            for model in config.models:
                for strategy in config.strategies:
                    slug = f"{image_set}-{model}-{strategy}-s{seed}".replace("_", "-")
                    campaigns.append({"slug": slug, "set": image_set, "model": model, "strategy": strategy,
                                      "seed": seed})
    print(f"{len(campaigns)} campaigns, images made in {time.monotonic() - started:.0f} s ({work})", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the services on the way out
    services = Services(work)
    SERVICES.append(services)
    results, failed, lock = [], [], threading.Lock()
    try:
        def one(campaign):
            from django.db import connection

            # Set up in the campaign's thread, so that imports overlap with the other campaigns' rating.
            latent = create_project(campaign["slug"], image_sets[(campaign["set"], campaign["seed"])],
                                    campaign["strategy"], config, users, extract=campaign["model"] != "none")
            connection.close()
            try:
                result = run_campaign(services.url, campaign, latent, config, users)
            except Exception as error:  # noqa: BLE001 (reported; the other campaigns go on)
                print(f"campaign {campaign['slug']} failed: {error}", flush=True)
                with lock:
                    failed.append(campaign["slug"])
                return None
            with lock:
                results.append(result)
                print(json.dumps({k: result.get(k) for k in ("slug", "srcc", "judged", "no_pair", "retrain", "seconds",
                                                             "next_pair_ms", "model_srcc_at")}),
                      flush=True)
            return result

        # Interleave sets, seeds and strategies so that the slower retrain campaigns do not all come last.
        with ThreadPoolExecutor(config.parallel) as pool:
            list(pool.map(one, sorted(campaigns, key=lambda c: (c["seed"], c["model"] == "none"))))
    finally:
        services.stop()
    seconds = time.monotonic() - started
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    command = "python benchmarks/active_learning_api.py" + ("" if argv is None and len(sys.argv) == 1
                                                             else " " + " ".join(argv or sys.argv[1:]))
    plot_path = REPO / "docs" / "img" / "active_learning_api.png"
    if write:
        plot(results, config, plot_path)
    if failed:
        print(f"{len(failed)} campaigns failed: {failed}")
    text = markdown(results, config, command, machine_text(), seconds,
                    "img/active_learning_api.png" if write else None)
    print(text)
    if write:
        write_section(text)


if __name__ == "__main__":
    main()
