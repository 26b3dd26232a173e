"""Walk through the running demo as its users would, over HTTP only, and take screenshots.

What it does, against a server started by ``make demo`` (web + worker + beat):

1. two simulated raters (``rater``, ``rater2``) judge pairs through the REST API. Their hidden quality of
   an image falls with its distortion strength (from the image metadata), seen through Thurstone noise;
2. the manager asks for a retrain (``POST /api/v1/projects/{slug}/retrain/`` → 202 and a run id), and the
   script polls the run until a new model version is active and the dashboard report shows it;
3. it times an explanation (computed on the worker: the first request answers 202 with the url to poll, then it
   is cached per model version);
4. headless Chromium (Debian's, through Playwright) logs in as the manager and saves screenshots of the
   dashboard, the per-tag table, the score-versus-blur panel and an image's explanation page.

Run:

    make demo                                             # in one terminal
    .venv/bin/python benchmarks/demo_walkthrough.py       # in another; screenshots into var/walkthrough/
"""
from __future__ import annotations

import json
import random
import statistics
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import bench_api
from bench_setup import REPO, benchmark_parser  # and the repository on sys.path
from tests.browser import chromium_page  # Debian's Chromium, as the browser tests use it
from tests.browser import log_in as browser_log_in
from tests.browser import wait_until

ACCOUNTS = {"manager": "tagrank-manager", "rater": "tagrank-rater", "rater2": "tagrank-rater2"}


class Api(bench_api.Api):
    def get(self, path: str) -> dict:
        code, body = self.call("GET", path)
        if code != 200:
            sys.exit(f"GET {path}: HTTP {code}: {body}")
        return body

    def all_pages(self, path: str) -> list[dict]:
        """Every result of a paginated list, following its ``next`` links."""
        results = []
        while path:
            page = self.get(path)
            results += page["results"]
            path = page["next"] and urllib.parse.urlsplit(page["next"])._replace(scheme="", netloc="").geturl()
        return results


def log_in(base: str, username: str) -> Api:
    code, body = Api(base).call("POST", "/api/v1/auth/token/", {"username": username, "password": ACCOUNTS[username]})
    if code != 200:
        sys.exit(f"cannot log in as {username} at {base} (HTTP {code}: {body}); is `make demo` running?")
    return Api(base, body["token"])


def all_images(manager: Api, slug: str) -> list[dict]:
    return manager.all_pages(f"/api/v1/projects/{slug}/images/?page_size=200")


def rate(api: Api, slug: str, quality: dict[int, float], judgments: int, rng: random.Random, noise: float) -> int:
    """Judge up to ``judgments`` pairs; returns how many were stored."""
    stored = 0
    for _ in range(judgments):
        code, pair = api.call("GET", f"/api/v1/projects/{slug}/next-pair/")
        if code == 204:
            break
        if code != 200:
            sys.exit(f"next-pair: HTTP {code}: {pair}")
        seen_a = quality[pair["a"]["id"]] + rng.gauss(0, noise)
        seen_b = quality[pair["b"]["id"]] + rng.gauss(0, noise)
        winner = "tie" if abs(seen_a - seen_b) < 0.05 else ("a" if seen_a > seen_b else "b")
        code, body = api.call("POST", f"/api/v1/projects/{slug}/comparisons/", {
            "lease": pair["lease"], "winner": winner, "client_key": str(uuid.uuid4()),
            "response_ms": int(rng.uniform(900, 3000)),
        })
        if code == 400 and winner == "tie":  # a project without ties: answer the nearer side instead
            code, body = api.call("POST", f"/api/v1/projects/{slug}/comparisons/", {
                "lease": pair["lease"], "winner": "a" if seen_a >= seen_b else "b", "client_key": str(uuid.uuid4()),
            })
        if code not in (200, 201):
            sys.exit(f"submit: HTTP {code}: {body}")
        stored += 1
    return stored


def wait(what: str, check, timeout_s: float, every_s: float = 2.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every_s)
    sys.exit(f"timed out after {timeout_s:.0f} s waiting for {what}")


def retrain(manager: Api, slug: str, timeout_s: float) -> dict:
    code, accepted = manager.call("POST", f"/api/v1/projects/{slug}/retrain/")
    if code != 202:
        sys.exit(f"retrain: HTTP {code}: {accepted}")
    run_id, started = accepted["training_run"], time.monotonic()
    print(f"training run {run_id} accepted ({accepted['status']})", flush=True)

    def finished():
        run = manager.get(f"/api/v1/training-runs/{run_id}/")
        if run["status"] in ("failed", "cancelled"):
            sys.exit(f"training run {run_id} {run['status']}: {run.get('error')}")
        return run if run["status"] == "succeeded" else None

    run = wait(f"training run {run_id}", finished, timeout_s)
    trained_s = time.monotonic() - started

    def decided():  # promoted and rescored (active), or kept as a candidate by the promotion policy
        version = manager.get(f"/api/v1/model-versions/{run['model_version']}/")
        return version if version["status"] in ("active", "candidate", "failed", "retired") else None

    version = wait(f"model version {run['model_version']} to be promoted or kept back", decided, timeout_s)
    result = {"run": run_id, "version": version["id"], "status": version["status"], "encoder": version["encoder_id"],
              "reason": version["status_reason"], "trained_s": round(trained_s, 1),
              "decided_s": round(time.monotonic() - started, 1)}
    if version["status"] == "active":
        result["report"] = wait("the dashboard report of the new version",
                                lambda: (lambda r: r if r and r.get("model_version") == version["id"] else None)(
                                    manager.call("GET", f"/api/v1/projects/{slug}/agreement/")[1]), timeout_s)
        result["report_s"] = round(time.monotonic() - started, 1)
    else:
        result["report"] = manager.call("GET", f"/api/v1/projects/{slug}/agreement/")[1]
    return result


def explanation_of(manager: Api, image_id: int, timeout_s: float) -> tuple[dict, float, int]:
    """The explanation, polling while a worker computes it (202 with the url to poll): (body, seconds, polls)."""
    path, started, polls = f"/api/v1/images/{image_id}/explanation/", time.perf_counter(), 0
    deadline = time.monotonic() + timeout_s
    while True:
        code, body = manager.call("GET", path)
        if code == 200:
            return body, time.perf_counter() - started, polls
        if code != 202 or time.monotonic() > deadline:
            sys.exit(f"explanation of image {image_id}: HTTP {code}: {body}")
        polls += 1
        path = urllib.parse.urlsplit(body["url"])._replace(scheme="", netloc="").geturl()
        time.sleep(1.0)


def time_explanation(manager: Api, image_id: int, timeout_s: float) -> dict:
    """The first request (queued on the worker, polled until ready), then two answers from the cache."""
    body, first_s, polls = explanation_of(manager, image_id, timeout_s)
    cached = [explanation_of(manager, image_id, timeout_s)[1] for _ in range(2)]
    return {"first_request_s": round(first_s, 3), "polls": polls, "cached_median_s": round(statistics.median(cached), 3),
            "compute_seconds": round(body["compute_seconds"], 3), "score": round(body["score"], 3),
            "texts": [(t["text"], t["attention"] and round(t["attention"], 3), round(t["delta"], 3))
                      for t in body["texts"]]}


def screenshots(base: str, slug: str, image_id: int, out: Path) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    pages = {
        "dashboard.png": f"/projects/{slug}/dashboard/",
        "analysis-tags.png": f"/projects/{slug}/analyses/tags/",
        "analysis-blur.png": f"/projects/{slug}/analyses/metadata/?field=blur_sigma",
        "explanation.png": f"/images/{image_id}/",
    }
    saved = []
    with chromium_page() as page:
        browser_log_in(page, base, "manager", ACCOUNTS["manager"])
        for name, path in pages.items():
            response = page.goto(base + path)
            if response is None or response.status != 200:
                sys.exit(f"{path}: HTTP {response.status if response else '?'}")
            page.wait_for_load_state("load")
            # Galleries load thumbnails lazily; a full-page screenshot does not scroll, so load them all first.
            page.evaluate("document.querySelectorAll('img[loading=lazy]').forEach(img => { img.loading = 'eager'; })")
            wait_until(page, "() => [...document.images].every(img => img.complete)")  # polled: the CSP refuses eval
            page.screenshot(path=str(out / name), full_page=True)
            saved.append(str(out / name))
    return saved


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--slug", default="demo-photos")
    parser.add_argument("--judgments", type=int, default=150, help="judgments per rater")
    parser.add_argument("--noise", type=float, default=0.7, help="Thurstone noise, in distortion-strength units")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for training and rescoring")
    parser.add_argument("--out", type=Path, default=REPO / "var" / "walkthrough")
    parser.add_argument("--no-screenshots", action="store_true")
    args = parser.parse_args()

    manager = log_in(args.url, "manager")
    images = all_images(manager, args.slug)
    # The hidden quality: every distortion step costs one unit.
    quality = {image["id"]: -float(image["metadata"].get("distortion_strength", 0)) for image in images}
    rng = random.Random(7)
    started = time.monotonic()
    stored = {name: rate(log_in(args.url, name), args.slug, quality, args.judgments, rng, args.noise)
              for name in ("rater", "rater2")}
    print(f"stored {stored} judgments in {time.monotonic() - started:.1f} s", flush=True)

    trained = retrain(manager, args.slug, args.timeout)
    report = trained.pop("report")
    print(json.dumps(trained), flush=True)
    active_id = (report.get("model") or {}).get("active_version_id")
    version = next((v for v in report["model"]["versions"] if v["id"] == active_id), {}) if report else {}
    def brief(interval):  # an estimate with its interval; "n/a" where the report has none (too few judgments)
        if not interval or interval.get("value") is None:
            return "n/a"
        bounds = ", ".join("?" if interval.get(end) is None else f"{interval[end]:.3f}" for end in ("low", "high"))
        return f"{interval['value']:.3f} [{bounds}]"

    print(f"dashboard, active version {active_id}: held-out agreement {brief(version.get('heldout_agreement'))}, "
          f"human ceiling on the same pairs {brief((version.get('ceiling') or {}).get('human'))}, "
          f"SRCC with human scores {brief((version.get('human_correlation') or {}).get('srcc'))}; "
          f"{len(report.get('raters') or [])} raters in the table")

    blurred = max((i for i in images if i["metadata"].get("blur_sigma")), key=lambda i: i["metadata"]["blur_sigma"])
    explanation = time_explanation(manager, blurred["id"], args.timeout)
    print(f"explanation of image {blurred['id']} ({blurred['original_name']}):", json.dumps(explanation))

    blur = manager.get(f"/api/v1/projects/{args.slug}/metadata/blur_sigma/summary/")
    for group in blur.get("groups", []):
        print(f"blur_sigma {group.get('low')}..{group.get('high')}: {group['images']} images, "
              f"model {json.dumps(group.get('model'))}, human {json.dumps(group.get('human'))}")
    if not args.no_screenshots:
        for path in screenshots(args.url, args.slug, blurred["id"], args.out):
            print("screenshot:", path)


if __name__ == "__main__":
    main()
