"""Human scores: each image's Bradley–Terry posterior, fitted from all of a project's comparisons.

- Comparisons by raters a manager excluded from training are left out; the exclusion is a flag on the
  membership, so the next fit after re-including a rater takes their comparisons back.
- A tie counts as half a win each way, and so does "both bad" (why: docs/generated-images.md, "Both bad").
- Raters are weighted by their reliability (``modeling/ml/rater_reliability.py``: each rater's
  probability of judging attentively, fitted jointly with the scores) unless the project turns
  ``weight_raters_by_reliability`` off; every comparison then enters each fit with its weight.
- The fit is warm-started from the stored means, so a refit after a batch of new comparisons takes a
  few Newton steps.
- A model's scores are the prior (``model_prior.py``: the best predictor of the comparisons among the
  linear head with each image left out, the active ranker's scores of the images it did not train on,
  and a *warm start*: another project's version named in the training settings, ``warm_start.py``),
  always out of fold: an image's prior never comes from a model trained on its own comparisons. Its strength (slope
  and scatter on the Bradley–Terry scale) is estimated at each fit by empirical Bayes from the
  comparisons it predicts (``modeling/ml/prior_fusion.py``), so a model that predicts nothing fades to a
  flat prior, and images nobody has compared yet are placed by their content instead of at 0.

Everything is read as numpy columns (``columns.fetch_columns``) and written back in one statement: at
10^5 images and 10^6 comparisons no row becomes a model instance.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np
from django.db.models import Count, Max, Sum
from django.utils import timezone

from labeling.models import Comparison, Image, Project
from labeling.services import rater_counts
from modeling.ml import bradley_terry as bt
from modeling.ml import prior_fusion, rater_reliability, sequential_update
from modeling.models import HumanScore, ImageScore, ModelVersion
from modeling.services import model_prior
from modeling.services.columns import fetch_columns, image_positions, per_image
from modeling.services import comparison_cache, human_score_writes, stopping_rule
from modeling.services import warm_start as warm_start_service  # (the fits' own warm_start is the stored means)
from modeling.services.datasets import excluded_rater_ids

log = logging.getLogger(__name__)

FIT_CONFIG = bt.FitConfig()
RELIABILITY_CONFIG = rater_reliability.ReliabilityConfig()
FUSION_CONFIG = prior_fusion.FusionConfig()

@dataclass(frozen=True)
class ComparisonArrays:
    """A project's comparisons as parallel arrays, images given as indices into ``image_ids``."""

    image_ids: np.ndarray  # [N] the project's image ids, ascending
    a_index: np.ndarray  # [M] the left image (``image_a`` is always the left one)
    b_index: np.ndarray  # [M] the right image
    outcome: np.ndarray  # [M] 1.0 left won, 0.0 right won, 0.5 tie
    rater_id: np.ndarray  # [M]
    response_ms: np.ndarray  # [M] float, NaN where the client sent none
    gold: np.ndarray  # [M] -1 not gold, 0 wrong, 1 right
    comparison_id: np.ndarray  # [M], ascending
    heldout: np.ndarray  # [M] bool: held out of training (``datasets.is_holdout``), evaluation only
    loaded_at: datetime | None = None  # when the rows were read: the data is at least this new
    weight: np.ndarray | None = None  # [M] the comparison's reliability weight, once fitted (None: all 1)

    @property
    def n_images(self) -> int:
        return int(self.image_ids.shape[0])

    @property
    def n_comparisons(self) -> int:
        return int(self.a_index.shape[0])

    def select(self, mask: np.ndarray) -> "ComparisonArrays":
        return ComparisonArrays(
            self.image_ids, self.a_index[mask], self.b_index[mask], self.outcome[mask], self.rater_id[mask],
            self.response_ms[mask], self.gold[mask], self.comparison_id[mask], self.heldout[mask], self.loaded_at,
            None if self.weight is None else self.weight[mask],
        )  # fmt: skip


def project_image_ids(project: Project) -> np.ndarray:
    """The project's image ids, ascending: row i of every per-image array is image ``image_ids[i]``."""
    return fetch_columns(Image.objects.filter(project=project).order_by("id"), {"id": int})["id"]


def load_comparisons(project: Project, *, include_excluded: bool = False, image_ids: np.ndarray | None = None
                     ) -> ComparisonArrays:
    """All of the project's comparisons (without excluded raters' unless ``include_excluded``), in id order.

    Read through this process's ``comparison_cache``: only the rows stored since the last read come from
    the database. The arrays are read-only (they are the cache's)."""
    cached = comparison_cache.project_comparisons(project)
    columns = cached.columns
    if not include_excluded and (excluded := excluded_rater_ids(project)):
        keep = ~np.isin(columns["rater_id"], np.asarray(excluded, dtype=np.int64))
        columns = {name: column[keep] for name, column in columns.items()}
    a_index, b_index = columns["a_index"], columns["b_index"]
    if image_ids is None:
        image_ids = cached.image_ids
    elif not np.array_equal(image_ids, cached.image_ids):  # the caller's own image order
        a_index = np.searchsorted(image_ids, cached.image_ids[a_index])
        b_index = np.searchsorted(image_ids, cached.image_ids[b_index])
    return ComparisonArrays(
        image_ids=image_ids, a_index=a_index, b_index=b_index, outcome=columns["outcome"],
        rater_id=columns["rater_id"], response_ms=columns["response_ms"], gold=columns["gold"],
        comparison_id=columns["comparison_id"], heldout=columns["heldout"], loaded_at=cached.loaded_at,
    )  # fmt: skip


def active_model_version(project: Project) -> ModelVersion | None:
    """The version whose scores the project serves (its export and pages), if any."""
    return ModelVersion.objects.filter(project=project, is_active=True).first()


def model_scores(model_version_id: int, image_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The version's (mean, uncertainty) per image in ``image_ids`` order; NaN where it scored no image."""
    columns = fetch_columns(ImageScore.objects.filter(model_version_id=model_version_id),
                            {"image_id": int, "mean": float, "uncertainty": float})
    return (per_image(image_ids, columns["image_id"], columns["mean"]),
            per_image(image_ids, columns["image_id"], columns["uncertainty"]))


def stored_posterior(project: Project, image_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The stored human scores (mean, variance) in ``image_ids`` order, NaN where none; None if none at all."""
    stored = human_score_writes.stored_scores(project, np.asarray(image_ids))
    return None if stored is None else stored[:2]


def stored_fit(project: Project, fitted_at: datetime | None
               ) -> tuple[np.ndarray, bt.Posterior, np.ndarray, int] | None:
    """The stored human scores brought up to date, for choosing pairs when a refit would take too long
    (``pair_selection.refit_first``): (image ids [N], posterior, comparison counts [N], comparisons folded
    in), None if none are stored. ``fitted_at``: when the stored fit read its data
    (``human_score_writes.last_fit``).

    The comparisons stored since then are folded in one by one
    (``sequential_update``: O(new comparisons), no refit), so that a refill between two periodic fits does
    not choose the pairs just judged again. An image added since the fit has the prior of an image with
    no comparisons (mean 0, variance ``FIT_CONFIG.default_prior_var``)."""
    image_ids = project_image_ids(project)
    stored = human_score_writes.stored_scores(project, image_ids)
    if stored is None:
        return None
    mean, variance, counts = stored
    posterior = bt.Posterior(np.nan_to_num(mean, nan=0.0), np.nan_to_num(variance, nan=FIT_CONFIG.default_prior_var))
    counts = np.maximum(counts, 0)
    a_index, b_index, outcome = comparisons_since(project, fitted_at, image_ids)
    posterior = sequential_update.update_with_comparisons(posterior, a_index, b_index, outcome)
    counts = counts + bt.comparison_counts(len(image_ids), a_index, b_index)
    return image_ids, posterior, counts, int(a_index.shape[0])


def comparisons_since(project: Project, since: datetime | None, image_ids: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The comparisons stored after ``since`` (all when None; excluded raters' left out), in id order, as
    (a_index [M], b_index [M], outcome [M]) into ``image_ids``; comparisons of images not there are dropped.
    An index on (project, created_at) makes this a read of the new rows only."""
    rows = Comparison.objects.filter(project=project)
    if since is not None:
        rows = rows.filter(created_at__gt=since)
    if excluded := excluded_rater_ids(project):
        rows = rows.exclude(rater_id__in=excluded)
    raw = fetch_columns(rows.order_by("id").annotate(left_win_x2=comparison_cache.LEFT_WIN_X2),
                        {"image_a_id": int, "image_b_id": int, "left_win_x2": int})
    a_index, a_known = image_positions(image_ids, raw["image_a_id"])
    b_index, b_known = image_positions(image_ids, raw["image_b_id"])
    known = a_known & b_known
    return a_index[known], b_index[known], raw["left_win_x2"][known] / 2.0


def stored_means(project: Project, image_ids: np.ndarray) -> np.ndarray | None:
    """The stored human-score means (0 where none): the warm start of the next fit."""
    return human_score_writes.stored_means(project, np.asarray(image_ids))


@dataclass(frozen=True)
class HumanScoreFit:
    image_ids: np.ndarray  # [N]
    posterior: bt.Posterior  # means and variances in image_ids order
    counts: np.ndarray  # [N] comparisons per image that entered the fit
    n_comparisons: int
    model_version_id: int | None  # the version whose scores made the prior (own or warm start), if any
    seconds: float
    data_as_of: datetime  # the comparisons' read time: of two fits, the one with the newer data is kept
    reliability: rater_reliability.RaterReliability | None = None  # the raters' weights, when weighted
    comparisons_read: int | None = None  # rows read from the database for this fit (comparison_cache)
    scores_written: int | None = None  # rows stored (human_score_writes: only the moved ones), once stored
    prior_source: str = ""  # what made the model prior ("" without one)
    prior_strength: dict | None = None  # its empirical-Bayes strength (prior_fusion.PriorStrength.summary)

    def summary(self) -> dict:
        return {
            "images": self.posterior.n_images,
            "comparisons": self.n_comparisons,
            "model_prior_version": self.model_version_id,
            "model_prior": self.prior_source,
            "prior_strength": self.prior_strength,
            "newton_steps": self.posterior.newton_steps,
            "rater_weighting": None if self.reliability is None else self.reliability.steps,
            "seconds": round(self.seconds, 3),
            "comparisons_read": self.comparisons_read,
            "scores_written": self.scores_written,
        }


def fit_project_posterior(project: Project, *, use_model_prior: bool = True,
                          comparisons: ComparisonArrays | None = None, warm_start: np.ndarray | None = None
                          ) -> HumanScoreFit:
    """Fit (without storing) the posterior over the project's images from its comparisons.

    ``comparisons`` lets a caller that already loaded them (the agreement report) skip the reload;
    they must exclude the excluded raters. ``use_model_prior=False`` gives the comparisons-only fit.
    The raters' reliability weights (``comparison_weights``) are fitted first, starting from the stored fit's
    (``human_score_writes.stored_rater_weights``): with the model's prior when there is one (weighed with the
    stored raters' weights, or the first time on the unweighted comparisons), on the comparisons alone
    otherwise; then the model prior is weighed again with the new weights. The model prior
    (``model_prior.project_prior``: out of fold by construction) is weighed by empirical Bayes from the
    comparisons it predicts (``prior_fusion.fuse``).
    """
    started = time.perf_counter()
    if comparisons is None:
        comparisons = load_comparisons(project)
    data_as_of = comparisons.loaded_at or timezone.now()  # arrays built by hand carry no read time
    image_ids = comparisons.image_ids
    n_images = comparisons.n_images
    a, b, outcome = comparisons.a_index, comparisons.b_index, comparisons.outcome
    if warm_start is None:
        warm_start = stored_means(project, image_ids)
    prior = None
    if use_model_prior and n_images:
        prior = model_prior.project_prior(project, comparisons, active_model_version(project))
    # After new judgments the raters' fit starts from the stored fit's raters' weights, and takes fewer EM steps,
    # each a fit of every comparison (docs/benchmarks.md, "The raters' weights carried in the database"). They
    # are read from the table, as the warm start is, so a fresh worker starts where a warm one does. With no
    # more comparisons than the stored fit saw, it starts from the prior's eta: where a rater's eta is barely
    # identified (tens of judgments) the EM stops at a point that depends on its start, and a refit of the same
    # comparisons must give the same scores.
    previous = human_score_writes.stored_rater_weights(project) if weighted(project, comparisons) else None
    if previous is not None and previous.comparisons >= comparisons.n_comparisons:
        previous = None
    fused = raters_prior = None
    if prior is not None and previous is not None:
        # The raters' fit weighs the model's prior with the stored raters' weights, without a fit of its own.
        mean, var, _ = prior_fusion.weighed_prior(n_images, a, b, outcome, prior,
                                                  weight=previous.per_comparison(comparisons.rater_id),
                                                  config=FUSION_CONFIG)
        raters_prior = (mean, var)
    elif prior is not None:
        # The first weighted fit: with the model's prior, weighed on the unweighted comparisons. On comparisons
        # alone, at about one judgment per image, nothing tells honest raters apart and the fit could call two of
        # three careless (measured through REST: the fused ranking fell below the pairs alone).
        fused = prior_fusion.fuse(n_images, a, b, outcome, prior, init=warm_start, config=FUSION_CONFIG)
        raters_prior, warm_start = (fused.prior_mean, fused.prior_var), fused.posterior.mean
    comparisons, reliability = comparison_weights(project, comparisons, warm_start, raters_prior, previous)
    counts = bt.comparison_counts(n_images, a, b)
    if prior is None:
        comparisons_only = reliability.posterior if reliability is not None else bt.fit_posterior(
            n_images, a, b, outcome, init=warm_start, config=FIT_CONFIG)
        return HumanScoreFit(image_ids, comparisons_only, counts, comparisons.n_comparisons, None,
                             time.perf_counter() - started, data_as_of, reliability)
    if reliability is not None:  # the prior weighed again, with the raters' weights
        fused = prior_fusion.fuse(n_images, a, b, outcome, prior, weight=comparisons.weight,
                                  init=reliability.posterior.mean, config=FUSION_CONFIG)
    return HumanScoreFit(image_ids, fused.posterior, counts, comparisons.n_comparisons, prior.version_id,
                         time.perf_counter() - started, data_as_of, reliability, prior_source=prior.source,
                         prior_strength=None if fused.strength is None else fused.strength.summary())


def weighted(project: Project, comparisons: ComparisonArrays) -> bool:
    """Whether the fit weighs each comparison by its rater's reliability."""
    return project.weight_raters_by_reliability and comparisons.n_comparisons > 0


def comparison_weights(project: Project, comparisons: ComparisonArrays, warm_start: np.ndarray | None,
                       prior: tuple[np.ndarray, np.ndarray] | None = None,
                       previous: rater_reliability.RaterWeights | None = None,
                       ) -> tuple[ComparisonArrays, rater_reliability.RaterReliability | None]:
    """The comparisons with each one's reliability weight, and the raters' fit (None: the project weights
    every comparison alike, or there is nothing to fit). ``prior``: the model's prior (means, variances [N])
    the raters' fit shares (so the prior, not the comparisons alone, helps judge them); ``previous``: the
    raters' weights to start from (``rater_reliability.fit_rater_reliability``)."""
    if not weighted(project, comparisons):
        return comparisons, None
    prior_mean, prior_var = (None, None) if prior is None else prior
    reliability = rater_reliability.fit_rater_reliability(
        comparisons.n_images, comparisons.a_index, comparisons.b_index, comparisons.outcome, comparisons.rater_id,
        prior_mean=prior_mean, prior_var=prior_var, init=warm_start, previous=previous, config=RELIABILITY_CONFIG,
        fit_config=FIT_CONFIG,
    )
    return replace(comparisons, weight=reliability.weight), reliability


def store_human_scores(project: Project, fit: HumanScoreFit) -> int:
    """Write one HumanScore per image (insert or update), unless a fit of newer data is stored already.

    Fits run concurrently (a refill, the dashboards' refit, an activation's refill, on several worker
    processes); the one that read the comparisons last wins, whichever finishes last, so the stored scores
    never go back to fewer judgments. ``fitted_at`` is the time the fit's comparisons were read. Only the
    scores that moved are rewritten when this process knows what is stored (``human_score_writes``).
    Returns the number of rows written."""
    return human_score_writes.write_scores(
        project, fit.image_ids, fit.posterior.mean, fit.posterior.var, fit.counts, fit.data_as_of,
        fit_seconds=fit.seconds, rater_weights=None if fit.reliability is None else fit.reliability.rater_weights())


def fit_human_scores(project: Project) -> HumanScoreFit:
    """Fit the project's human scores and store them. Idempotent: a rerun rewrites the same rows."""
    fit = fit_project_posterior(project)
    fit = replace(fit, comparisons_read=comparison_cache.rows_read_last(project.pk),
                  scores_written=store_human_scores(project, fit))
    stopping_rule.record_ranking_accuracy(project, fit)  # the expected ranking accuracy, and the stopping rule
    log.info("human scores of %s: %s", project.slug, fit.summary())
    return fit


def human_scores_stale(project: Project) -> bool:
    """Whether the stored human scores no longer match the data: the periodic task refits only these.

    Stale when the comparisons the fit would use changed (new ones, an undo, a rater excluded or taken
    back: each image stores how many comparisons entered its fit), when images were added, or when a
    model version became active after the last fit (a new prior).
    """
    stored = HumanScore.objects.filter(project=project).aggregate(
        images=Count("id"), comparison_ends=Sum("n_comparisons"), fitted_at=Max("fitted_at")
    )
    # From the per-rater counters (labeling/services/rater_counts.py), not a count of 10^7 comparisons.
    usable = rater_counts.project_total(project, excluding_raters=excluded_rater_ids(project))
    if stored["images"] == 0:
        return usable > 0 or ModelVersion.objects.filter(project=project, is_active=True).exists()
    return (
        stored["comparison_ends"] != 2 * usable
        or stored["images"] != Image.objects.filter(project=project).count()
        or ModelVersion.objects.filter(project=project, is_active=True, activated_at__gt=stored["fitted_at"]).exists()
        or warm_start_service.scored_since(project, stored["fitted_at"])
    )
