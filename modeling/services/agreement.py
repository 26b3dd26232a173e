"""The dashboards' numbers: do the humans agree with each other, and does the model agree with them?

Computed by a task (``tagrank.metrics.compute_agreement``) and stored as an ``AgreementReport``;
pages and the API only read the latest report. Everything runs on numpy arrays read in bulk
(``human_scores.load_comparisons``, ``columns.fetch_columns``): no comparison becomes a Python object.

Definitions (shown on the dashboard as well):

- A *pair* is an unordered pair of images. Each judgment of it is one of three categories: the image
  with the lower id wins, tie, the other image wins. Where a rater judged a pair more than once, their
  latest judgment counts for agreement.
- *Raw agreement*: the probability that two judgments of the same pair by different raters are the
  same category (Krippendorff's observed agreement, over pairs with at least two judgments).
- *Krippendorff's alpha*: nominal level, from the ``krippendorff`` package: 1 means perfect agreement,
  0 agreement at chance given how often each category is used.
- *Agreement with the majority*: a rater's judgment against the strict majority of the other
  (included) raters' judgments of the same pair.
- *Held-out pairwise agreement*: the share of held-out comparisons whose winner the model scores
  higher (ties in the outcome left out, a tie in the scores counts half), as ``modeling.ml.metrics``.
- *Human ceiling*: on held-out pairs judged by several raters, how often one rater's judgment agrees
  with the majority of the others (their half-and-half counts half). The model's agreement on exactly
  those judgments is shown beside it. With few raters per pair this estimate is conservative.
- Confidence intervals are percentile bootstraps (seeded, so a report is reproducible) that resample
  the units the number is made of: pairs for agreement, images for correlations.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, replace

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, Max
from django.utils import timezone

from labeling.models import Comparison, Image, Membership, Project
from labeling.services import rater_counts as rater_day_counts
from labeling.services.comparisons import rater_counts
from modeling.ml.agreement_stats import (
    FlagThresholds,
    PairJudgments,
    disagreeing_pairs,
    group_pairs,
    histogram,
    human_ceiling_judgments,
    human_correlation,
    inter_rater_agreement,
    latest_per_rater,
    model_agreement_panels,
    uncertain_images,
    value_counts,
)
from modeling.ml.intervals import CONFIDENCE, N_RESAMPLES, RESAMPLE_BUDGET, SEED, no_estimate, proportion
from modeling.ml.json_values import finite, plain_json
from modeling.models import AgreementReport, CriterionScore, HumanScore, ImageScore, ModelVersion, is_demo_encoder
from modeling.services import agreement_sampling, criterion_scores, human_scores, report_fit_start
from modeling.services.datasets import HOLDOUT_DEFINITION

log = logging.getLogger(__name__)

REPORT_SCHEMA = 1
N_RESAMPLES_CORRELATION = 200  # each re-ranks every image: fewer, for the correlations' intervals
MAX_SCORED_VERSIONS = 10  # the most recent versions evaluated from their stored scores
MAX_SCATTER_POINTS = 600  # beyond this the scatter shows a seeded random sample (correlations use all)
REPORTS_KEPT = 20  # older reports of a project are deleted


def flag_thresholds() -> FlagThresholds:
    return replace(FlagThresholds(), **getattr(settings, "TAGRANK_RATER_FLAGS", {}))


# --- The rater table ------------------------------------------------------------------------------


FLAG_LABELS = {
    "too_fast": "Too fast",
    "one_side": "Always one side",
    "gold": "Disagrees with gold",
}


# --- Model against humans -------------------------------------------------------------------------


POSTER_METRICS = ["error_mean", "error_std", "lcc", "srcc", "kl", "emd", "pairwise_agreement", "n_references"]
POSTER_MODELS = ("tags", "image_only")


def poster_table(metrics: dict) -> dict | None:
    """The poster's rows (Error, LCC, SRCC, KL, EMD) for the tags model and the image-only baseline.

    Read from the version's evaluation at training time (``metrics["holdout"]``: held-out reference
    ratings and comparisons, see ``modeling.services.training_runs``); None where the project has no
    held-out reference ratings (no AVA-style import).
    """
    holdout = (metrics or {}).get("holdout") if isinstance(metrics, dict) else None
    if not isinstance(holdout, dict):
        return None
    rows = {}
    for model in POSTER_MODELS:
        if isinstance(holdout.get(model), dict):
            rows[model] = {name: finite(holdout[model].get(name)) for name in POSTER_METRICS}
    has_reference = any(row["error_mean"] is not None or row["emd"] is not None for row in rows.values())
    return rows if has_reference else None


def training_heldout_agreement(metrics: dict) -> float | None:
    """The held-out pairwise agreement recorded when the version was trained (versions without scores)."""
    if not isinstance(metrics, dict):
        return None
    return finite(metrics.get("pairwise_agreement"))


# --- Assembling and storing a report --------------------------------------------------------------


def fingerprint(project: Project, criterion: str | None = None) -> dict:
    """What a report depends on; the periodic task recomputes only when it changed."""
    comparisons = Comparison.objects.filter(project=project).aggregate(n=Count("id"), last=Max("id"))
    versions = list(
        ModelVersion.objects.filter(project=project).order_by("pk").values_list("pk", "status", "is_active")
    )
    if criterion is None:
        last_fit = HumanScore.objects.filter(project=project).aggregate(at=Max("fitted_at"))["at"]
    else:
        last_fit = CriterionScore.objects.filter(project=project, criterion=criterion).aggregate(
            at=Max("fitted_at"))["at"]
    return {
        "comparisons": comparisons["n"],
        "last_comparison": comparisons["last"],
        "excluded": sorted(human_scores.excluded_rater_ids(project)),
        "versions": [list(row) for row in versions],
        "images": Image.objects.filter(project=project).count(),
        "human_scores_fitted_at": last_fit.isoformat() if last_fit else None,
    }


def latest_report(project: Project, criterion: str | None = None) -> AgreementReport | None:
    """The newest report of the primary criterion, or of a secondary ``criterion`` (``criterion_scores.resolve``)."""
    return (AgreementReport.objects.filter(project=project, criterion=criterion or "")
            .order_by("-computed_at", "-id").first())


def compute_and_store_reports(project: Project, *, only_if_changed: bool = False) -> dict:
    """The reports of every criterion the project asks (the primary one alone in a one-question project):
    {criterion key, or None for the primary: the new report, or None where skipped}."""
    done = {None: compute_and_store_report(project, only_if_changed=only_if_changed)}
    for criterion in criterion_scores.secondary(project):
        done[criterion] = compute_and_store_report(project, only_if_changed=only_if_changed, criterion=criterion)
    return done


def compute_and_store_report(project: Project, *, only_if_changed: bool = False, seed: int = SEED,
                             n_resamples: int = N_RESAMPLES, criterion: str | None = None) -> AgreementReport | None:
    """Compute the project's dashboard numbers (of a secondary ``criterion``'s answers, else of the outcomes)
    and store them as a new report (None if skipped)."""
    current = fingerprint(project, criterion)
    if only_if_changed:
        previous = latest_report(project, criterion)
        if previous is not None and previous.data.get("fingerprint") == current:
            return None
    data = compute_report_data(project, seed=seed, n_resamples=n_resamples, criterion=criterion)
    data["fingerprint"] = current
    with transaction.atomic():
        report = AgreementReport.objects.create(
            project=project, model_version_id=data["model"]["chart_version_id"],
            n_comparisons=data["totals"]["comparisons"], data=data, criterion=criterion or "",
        )  # fmt: skip
        stale = (AgreementReport.objects.filter(project=project, criterion=criterion or "")
                 .order_by("-computed_at", "-id")[REPORTS_KEPT:])
        AgreementReport.objects.filter(pk__in=list(stale.values_list("pk", flat=True))).delete()
    log.info("agreement report %s for %s in %.1fs", report.pk, project.slug, data["timings"]["total"])
    return report


def compute_report_data(project: Project, *, seed: int = SEED, n_resamples: int = N_RESAMPLES,
                        criterion: str | None = None) -> dict:
    """Every number the dashboards show, as plain JSON: of the judgments' outcomes (the primary criterion), or
    of a secondary ``criterion``'s answers (judgments without one left out) against its own human scores."""
    timings: dict[str, float] = {}
    started = clock = time.perf_counter()

    def lap(name):
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 3)
        clock = now

    options = {"n_resamples": n_resamples, "seed": seed}
    thresholds = flag_thresholds()
    everything = human_scores.load_comparisons(project, include_excluded=True)
    if criterion is not None:
        everything = criterion_scores.criterion_comparisons(project, criterion, everything)
    excluded = set(human_scores.excluded_rater_ids(project))
    included = ~np.isin(everything.rater_id, list(excluded)) if excluded else np.ones(everything.n_comparisons, bool)
    image_ids = everything.image_ids
    lap("load")

    # Humans with each other: the numbers made of pairs from a sample of them in a very large project.
    sample = agreement_sampling.draw(everything, included)
    judged = sample.judged
    pairs = group_pairs(judged.a_index, judged.b_index, judged.outcome)
    latest = latest_per_rater(pairs.pair_index, judged.rater_id)
    agreeing = sample.included & latest
    counts = value_counts(pairs.pair_index[agreeing], pairs.category[agreeing], pairs.n_pairs)
    human = inter_rater_agreement(counts, **options)
    used = everything.select(included) if excluded else everything  # (a copy of every column otherwise)
    left = int(np.count_nonzero(used.outcome == 1.0))
    right = int(np.count_nonzero(used.outcome == 0.0))
    human["left_share_decided"] = proportion(left, left + right)
    human["tie_share"] = (used.n_comparisons - left - right) / used.n_comparisons if used.n_comparisons else None
    raters = agreement_sampling.rater_table(everything, sample, pairs, latest, thresholds, rater_counts(project))
    _add_rater_names(project, raters, excluded)
    lap("humans")

    # The human scores: comparisons only (so the model is not compared with its own prior), and the
    # stored posterior (with the model prior: what the export and the pair selection use).
    stored = (human_scores.stored_posterior(project, image_ids) if criterion is None
              else criterion_scores.stored_posterior(project, criterion, image_ids))
    start = report_fit_start.start(project.pk, criterion, image_ids,
                                   fallback=None if stored is None else np.nan_to_num(stored[0]))
    fit = human_scores.fit_project_posterior(project, use_model_prior=False, comparisons=used, warm_start=start)
    report_fit_start.keep(project.pk, criterion, image_ids,
                          fit.posterior.mean if fit.reliability is None else fit.reliability.first_fit.mean)
    human_mean, human_counts = fit.posterior.mean, fit.counts
    _add_rater_weights(raters, fit.reliability)
    stored_mean, stored_variance = _stored_or_fitted(stored, fit)
    lap("human_scores")

    # The model against the humans.
    heldout = sample.included & judged.heldout
    heldout_latest = heldout & latest
    ceiling_rows, ceiling_agree = human_ceiling_judgments(pairs, heldout_latest)
    versions, chart_version, chart_scores = _version_panels(
        project, judged, heldout, pairs, ceiling_rows, ceiling_agree, human_mean, human_counts, options,
        sample.images,
    )
    active = next((version for version in versions if version["is_active"]), None)
    lap("model")

    # Charts.
    image_urls = _ImageUrls()
    charts = {
        "agreement_by_version": [
            {
                "version_id": version["id"], "label": version["label"], "created_at": version["created_at"],
                "agreement": version["heldout_agreement"]["value"], "low": version["heldout_agreement"]["low"],
                "high": version["heldout_agreement"]["high"], "ceiling": version["ceiling"]["human"]["value"],
                "model_on_ceiling_pairs": version["ceiling"]["model"]["value"], "source": version["source"],
            }
            for version in sorted(versions, key=lambda version: version["id"])
            if version["heldout_agreement"]["value"] is not None
        ],  # fmt: skip
        "comparisons_per_day": _comparisons_per_day(project),
        "histogram": {
            "model": histogram(chart_scores, 1.0, 10.0) if chart_scores is not None else None,
            "human": _human_histogram(stored_mean, human_counts),
        },
        "scatter": None,
        "disagreeing_pairs": [],
        "uncertain_images": [],
    }
    if chart_scores is not None:
        charts["scatter"] = _scatter(chart_scores, human_mean, human_counts, image_ids, image_urls, seed)
        charts["disagreeing_pairs"] = _gallery_pairs(
            chart_scores, pairs, agreeing, image_ids, human_mean, image_urls
        )  # fmt: skip
    uncertain = uncertain_images(stored_variance, human_counts)
    charts["uncertain_images"] = [
        {
            "image_id": int(image_ids[index]), "human_mean": finite(stored_mean[index]),
            "human_sd": finite(math.sqrt(stored_variance[index])), "comparisons": int(human_counts[index]),
            "model_mean": finite(chart_scores[index]) if chart_scores is not None else None,
        }
        for index in uncertain
    ]  # fmt: skip
    image_urls.fill(charts)
    lap("charts")

    encoder_id = chart_version["encoder_id"] if chart_version else settings.TAGRANK_ENCODER
    timings["total"] = round(time.perf_counter() - started, 3)
    # Only projects with several criteria name the one read: a one-question project's report is as before.
    named = {"criterion": criterion or criterion_scores.primary(project)} if project.criteria else {}
    return plain_json({
        **named,
        "schema": REPORT_SCHEMA,
        "computed_at": timezone.now().isoformat(),
        "settings": {
            "n_resamples": n_resamples, "n_resamples_correlation": N_RESAMPLES_CORRELATION,
            "resample_budget": RESAMPLE_BUDGET, "confidence": CONFIDENCE, "seed": seed,
            "holdout_definition": HOLDOUT_DEFINITION,
            "flag_thresholds": asdict(thresholds), "alpha_level": "nominal",
        },
        "totals": {
            "images": everything.n_images, "comparisons": everything.n_comparisons,
            "comparisons_used": used.n_comparisons, "heldout_comparisons": int(np.count_nonzero(included & everything.heldout)),
            "raters": len(raters), "excluded_raters": len(excluded),
            "gold_comparisons": int(np.count_nonzero(everything.gold >= 0)),
            "compared_images": int(np.count_nonzero(human_counts)),
        },
        "encoder": {"id": encoder_id, "is_demo": is_demo_encoder(encoder_id)},
        "sample": sample.description,
        "human": human,
        "raters": raters,
        "model": {
            "active_version_id": active["id"] if active else None,
            "chart_version_id": chart_version["id"] if chart_version else None,
            "versions": versions,
        },
        "coverage": _coverage(human_counts),
        "charts": charts,
        "timings": timings,
    })  # fmt: skip


def _coverage(counts: np.ndarray) -> list[dict]:
    """How many images have 0, 1, 2–4, 5–9, 10–19 and 20 or more comparisons: where the data is thin."""
    bands = [(0, 0), (1, 1), (2, 4), (5, 9), (10, 19), (20, None)]
    rows = []
    for low, high in bands:
        mask = counts >= low if high is None else (counts >= low) & (counts <= high)
        label = f"{low}+" if high is None else (str(low) if low == high else f"{low}–{high}")
        rows.append({"comparisons": label, "images": int(np.count_nonzero(mask))})
    return rows


def _version_panels(project, comparisons, heldout, pairs, ceiling_rows, ceiling_agree, human_mean, human_counts,
                    options, images=None) -> tuple[list[dict], dict | None, np.ndarray | None]:
    """The model panel of each version, newest first; the chart version and its scores (or None). The
    correlations are over ``images`` (indices; None: every image)."""
    sampled = slice(None) if images is None else images
    scored_counts = dict(
        ImageScore.objects.filter(model_version__project=project).values("model_version")
        .annotate(n=Count("id")).values_list("model_version", "n")
    )  # fmt: skip
    versions = list(
        ModelVersion.objects.filter(project=project).exclude(status=ModelVersion.Status.FAILED)
        .order_by("-created_at", "-id").values("id", "created_at", "status", "is_active", "encoder_id",
                                               "n_comparisons", "metrics")
    )  # fmt: skip
    with_scores = [version["id"] for version in versions if scored_counts.get(version["id"])]
    evaluated = with_scores[:MAX_SCORED_VERSIONS]
    active_ids = [version["id"] for version in versions if version["is_active"] and version["id"] in with_scores]
    chart_id = active_ids[0] if active_ids else (with_scores[0] if with_scores else None)
    if chart_id is not None and chart_id not in evaluated:
        evaluated.append(chart_id)
    model_means = {version_id: human_scores.model_scores(version_id, comparisons.image_ids)[0]
                   for version_id in evaluated}
    agreement_panels = model_agreement_panels(model_means, comparisons, heldout, pairs, ceiling_rows, ceiling_agree,
                                              **options)

    panels = []
    for version in versions:
        panel = {
            "id": version["id"], "label": f"v{version['id']}", "created_at": version["created_at"].isoformat(),
            "status": version["status"], "is_active": version["is_active"], "encoder_id": version["encoder_id"],
            "trained_on": version["n_comparisons"], "scored_images": scored_counts.get(version["id"], 0),
            "poster": poster_table(version["metrics"]),
        }  # fmt: skip
        if version["id"] in model_means:
            panel.update(agreement_panels[version["id"]])
            # Correlation intervals re-rank every resample: only for the version in view.
            panel["human_correlation"] = human_correlation(
                model_means[version["id"]][sampled], human_mean[sampled], human_counts[sampled],
                with_interval=version["id"] == chart_id,
                n_resamples=N_RESAMPLES_CORRELATION, seed=options["seed"],
            )  # fmt: skip
            panel["source"] = "scores"
        else:
            value = training_heldout_agreement(version["metrics"])
            panel.update({
                "heldout_agreement": {"value": value, "low": None, "high": None, "n": None},
                "ceiling": {"model": no_estimate(0), "human": no_estimate(0), "gap": no_estimate(0), "judgments": 0, "pairs": 0},
                "human_correlation": {"srcc": no_estimate(0), "lcc": no_estimate(0), "images": 0},
                "source": "training" if value is not None else "none",
            })  # fmt: skip
        panels.append(panel)
    chart_version = next((panel for panel in panels if panel["id"] == chart_id), None)
    return panels, chart_version, model_means.get(chart_id)


def _stored_or_fitted(stored, fit) -> tuple[np.ndarray, np.ndarray]:
    """The stored human scores (mean, variance); the comparisons-only fit for images without one."""
    if stored is None:
        return fit.posterior.mean, fit.posterior.var
    mean, variance = stored
    missing = np.isnan(mean)
    mean[missing], variance[missing] = fit.posterior.mean[missing], fit.posterior.var[missing]
    return mean, variance


def _human_histogram(mean: np.ndarray, counts: np.ndarray) -> dict | None:
    if mean.shape[0] == 0:
        return None
    low, high = float(np.floor(mean.min())), float(np.ceil(mean.max()))
    if high <= low:
        high = low + 1.0
    return histogram(mean, low, high)


def _comparisons_per_day(project: Project) -> list[dict]:
    """From the per-rater, per-day counters (``labeling/services/rater_counts.py``), not a scan of comparisons."""
    return [{**row, "day": row["day"].isoformat()} for row in rater_day_counts.per_day(project, gold=True)]


def _scatter(model_mean, human_mean, human_counts, image_ids, image_urls, seed) -> dict:
    compared = np.flatnonzero((human_counts > 0) & ~np.isnan(model_mean))
    sampled = compared.shape[0] > MAX_SCATTER_POINTS
    if sampled:
        compared = np.sort(np.random.default_rng(seed).choice(compared, MAX_SCATTER_POINTS, replace=False))
    points = []
    for index in compared:
        image_urls.want(int(image_ids[index]))
        points.append({
            "image_id": int(image_ids[index]), "model": float(model_mean[index]), "human": float(human_mean[index]),
            "comparisons": int(human_counts[index]),
        })  # fmt: skip
    return {"points": points, "sampled": bool(sampled), "compared_images": int(np.count_nonzero(human_counts))}


def _gallery_pairs(model_mean, pairs, agreeing, image_ids, human_mean, image_urls) -> list[dict]:
    used_pairs = PairJudgments(pairs.pair_index[agreeing], pairs.category[agreeing], pairs.lo_share[agreeing],
                               pairs.pair_lo, pairs.pair_hi)
    rows = []
    for row in disagreeing_pairs(model_mean, used_pairs):
        lo, hi = row.pop("lo"), row.pop("hi")
        for side, index in (("lo", lo), ("hi", hi)):
            image_urls.want(int(image_ids[index]))
            row[f"image_{side}"] = {
                "image_id": int(image_ids[index]), "model": finite(model_mean[index]),
                "human": finite(human_mean[index]),
            }  # fmt: skip
        rows.append(row)
    return rows


class _ImageUrls:
    """Collects the images the charts show, then adds their names and URLs in one query."""

    def __init__(self):
        self.wanted: set[int] = set()

    def want(self, image_id: int) -> None:
        self.wanted.add(image_id)

    def fill(self, charts: dict) -> None:
        for row in charts["uncertain_images"]:
            self.wanted.add(row["image_id"])
        info = {}
        wanted = sorted(self.wanted)
        for start in range(0, len(wanted), 5000):
            for image_id, name, file, thumbnail in Image.objects.filter(pk__in=wanted[start:start + 5000]).values_list(
                "id", "original_name", "file", "thumbnail"
            ):
                url = Image._meta.get_field("file").storage.url(file) if file else ""
                thumb = Image._meta.get_field("thumbnail").storage.url(thumbnail) if thumbnail else url
                info[image_id] = {"name": name, "url": url, "thumbnail_url": thumb}
        targets = list(charts["uncertain_images"])
        if charts["scatter"]:
            targets += charts["scatter"]["points"]
        for row in charts["disagreeing_pairs"]:
            targets += [row["image_lo"], row["image_hi"]]
        for target in targets:
            target.update(info.get(target["image_id"], {"name": "", "url": "", "thumbnail_url": ""}))


def _add_rater_weights(raters: list[dict], reliability) -> None:
    """Each rater's weight in the human scores (``rater_reliability``: the probability that a judgment of
    theirs is attentive); None for excluded raters, and for everyone when the project weights alike."""
    for row in raters:
        row["weight"] = None if reliability is None else reliability.attentive_of(row["user_id"])


def _add_rater_names(project: Project, raters: list[dict], excluded: set[int]) -> None:
    names = dict(get_user_model().objects.filter(pk__in=[row["user_id"] for row in raters])
                 .values_list("pk", "username"))
    roles = dict(Membership.objects.filter(project=project).values_list("user_id", "role"))
    for row in raters:
        row["username"] = names.get(row["user_id"], f"user {row['user_id']}")
        row["role"] = roles.get(row["user_id"])
        row["excluded"] = row["user_id"] in excluded


