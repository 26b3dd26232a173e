"""Human scores per criterion, in projects with several (``Project.criteria``, ``labeling/services/criteria.py``).

The primary criterion's answer is each judgment's outcome, so its scores are the project's ``HumanScore`` rows,
fitted with the model prior as before (``human_scores.py``). Every other criterion gets its own Bradley–Terry
fit from its answers, stored as ``CriterionScore`` rows:

- the same comparisons (excluded raters left out), with the criterion's answer as the outcome; a judgment
  without an answer to it (made before the criterion was added) is left out;
- "both bad" counts as a tie, as in the primary fit;
- raters are weighted by their reliability when the project says so, fitted on this criterion's answers;
- no model prior: the model is trained on one criterion (the training settings' ``criterion``), and its
  scores are evidence about that one only.

``resolve`` turns the ``?criterion=`` of the reads (scores export, agreement, dashboards) into None (the
primary: everything reads as in a one-question project) or a secondary key.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from labeling.models import CriterionAnswer, Image, Project
from labeling.services.criteria import primary
from modeling.ml import bradley_terry as bt
from modeling.models import CriterionScore, HumanScore, HumanScoreStamp, TrainingSettings
from modeling.services import human_scores
from modeling.services.columns import fetch_columns, per_image
from modeling.services.comparison_cache import LEFT_WIN_X2

log = logging.getLogger(__name__)


def keys(project: Project) -> list[str]:
    return [item["key"] for item in project.criteria or []]


def secondary(project: Project) -> list[str]:
    """The criteria fitted here: all but the primary one (none in a one-question project)."""
    main = primary(project)
    return [key for key in keys(project) if key != main]


def resolve(project: Project, raw: str | None) -> str | None:
    """None for the primary criterion (or none asked), the key of a secondary one; ValueError otherwise."""
    if not raw:
        return None
    if raw not in keys(project):
        allowed = ", ".join(keys(project)) or "none: this project asks one question"
        raise ValueError(f"{raw!r} is not one of this project's criteria ({allowed}).")
    return None if raw == primary(project) else raw


def training_criterion(project: Project) -> str | None:
    """The secondary criterion the model is trained on (``TrainingSettings.criterion``), None for the primary
    one; a setting the project no longer asks falls back to the primary criterion."""
    chosen = TrainingSettings.objects.filter(project=project).values_list("criterion", flat=True).first()
    return resolve(project, chosen) if chosen in keys(project) else None


def criterion_comparisons(project: Project, criterion: str,
                          comparisons: human_scores.ComparisonArrays | None = None
                          ) -> human_scores.ComparisonArrays:
    """``comparisons`` (default: the project's, without excluded raters) with the answer to ``criterion`` as
    the outcome; the judgments without such an answer are left out."""
    if comparisons is None:
        comparisons = human_scores.load_comparisons(project)
    answers = fetch_columns(
        CriterionAnswer.objects.filter(comparison__project=project, criterion=criterion)
        .annotate(left_win_x2=LEFT_WIN_X2).order_by("comparison_id"),
        {"comparison_id": int, "left_win_x2": int},
    )
    answered_ids = answers["comparison_id"]
    position = np.searchsorted(answered_ids, comparisons.comparison_id)
    position = np.minimum(position, max(answered_ids.shape[0] - 1, 0))
    answered = (answered_ids[position] == comparisons.comparison_id) if answered_ids.shape[0] else \
        np.zeros(comparisons.n_comparisons, dtype=bool)
    chosen = comparisons.select(answered)
    return replace(chosen, outcome=answers["left_win_x2"][position[answered]] / 2.0)


@dataclass(frozen=True)
class CriterionFit:
    criterion: str
    image_ids: np.ndarray
    posterior: bt.Posterior
    counts: np.ndarray
    n_comparisons: int
    data_as_of: datetime
    seconds: float

    def summary(self) -> dict:
        return {"images": self.posterior.n_images, "comparisons": self.n_comparisons,
                "seconds": round(self.seconds, 3)}


def fit_criterion(project: Project, criterion: str,
                  comparisons: human_scores.ComparisonArrays | None = None) -> CriterionFit:
    """The comparisons-only fit of one secondary criterion (not stored)."""
    started = time.perf_counter()
    chosen = criterion_comparisons(project, criterion, comparisons)
    data_as_of = chosen.loaded_at or timezone.now()
    warm_start = _stored_means(project, criterion, chosen.image_ids)
    weighted, reliability = human_scores.comparison_weights(project, chosen, warm_start)
    if reliability is not None:
        posterior = reliability.posterior
    else:
        posterior = bt.fit_posterior(chosen.n_images, chosen.a_index, chosen.b_index, chosen.outcome,
                                     init=warm_start, config=human_scores.FIT_CONFIG)
    counts = bt.comparison_counts(chosen.n_images, chosen.a_index, chosen.b_index)
    return CriterionFit(criterion, chosen.image_ids, posterior, counts, weighted.n_comparisons, data_as_of,
                        time.perf_counter() - started)


def store(project: Project, fit: CriterionFit) -> int:
    """Replace the criterion's stored scores by the fit's, unless a fit of newer data is stored already
    (fits run side by side on the workers: the one that read the comparisons last wins). Rows written."""
    with transaction.atomic():
        # The project's human-score stamp row serialises the writers of its scores, of every criterion.
        HumanScoreStamp.objects.bulk_create([HumanScoreStamp(project=project)], ignore_conflicts=True)
        HumanScoreStamp.objects.select_for_update().get(project=project)
        stored = CriterionScore.objects.filter(project=project, criterion=fit.criterion)
        newest = stored.aggregate(at=Max("fitted_at"))["at"]
        if newest is not None and newest > fit.data_as_of:
            return 0
        stored.delete()
        rows = [
            CriterionScore(project=project, image_id=int(image_id), criterion=fit.criterion, mean=float(mean),
                           variance=float(variance), n_comparisons=int(count), fitted_at=fit.data_as_of)
            for image_id, mean, variance, count in zip(fit.image_ids, fit.posterior.mean, fit.posterior.var,
                                                       fit.counts)
        ]
        CriterionScore.objects.bulk_create(rows, batch_size=5000)
    return len(rows)


def fit_criterion_scores(project: Project) -> dict:
    """Fit and store every secondary criterion's scores (nothing in a one-question project); drop the
    stored scores of criteria the project no longer asks. {criterion: summary}."""
    wanted = secondary(project)
    CriterionScore.objects.filter(project=project).exclude(criterion__in=wanted).delete()
    if not wanted:
        return {}
    comparisons = human_scores.load_comparisons(project)
    done = {}
    for criterion in wanted:
        fit = fit_criterion(project, criterion, comparisons)
        done[criterion] = {**fit.summary(), "scores_written": store(project, fit)}
    log.info("criterion scores of %s: %s", project.slug, done)
    return done


def criterion_scores_stale(project: Project) -> bool:
    """Whether the secondary criteria's scores lag behind the primary fit (which is refitted whenever the
    comparisons change: ``human_scores.human_scores_stale``), or the criteria changed."""
    wanted = secondary(project)
    stored = dict(CriterionScore.objects.filter(project=project).values("criterion")
                  .annotate(at=Max("fitted_at")).values_list("criterion", "at"))
    if set(stored) - set(wanted):
        return True
    if not wanted:
        return False
    primary_at = HumanScoreStamp.objects.filter(project=project).values_list("fitted_at", flat=True).first()
    if primary_at is None:
        return False  # nothing fitted yet: the primary fit comes first
    return any(stored.get(criterion) is None or stored[criterion] < primary_at for criterion in wanted)


def stored_posterior(project: Project, criterion: str, image_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The criterion's stored (mean, variance) in ``image_ids`` order, NaN where none; None if none at all."""
    columns = fetch_columns(CriterionScore.objects.filter(project=project, criterion=criterion),
                            {"image_id": int, "mean": float, "variance": float})
    if columns["image_id"].shape[0] == 0:
        return None
    return (per_image(image_ids, columns["image_id"], columns["mean"]),
            per_image(image_ids, columns["image_id"], columns["variance"]))


def _stored_means(project: Project, criterion: str, image_ids: np.ndarray) -> np.ndarray | None:
    stored = stored_posterior(project, criterion, image_ids)
    return None if stored is None else np.nan_to_num(stored[0], nan=0.0)


def image_scores(image: Image) -> list[dict]:
    """An image's human score on each criterion, in the project's order, for its page (managers):
    ``{"key", "question", "primary", "score"}`` with the ``HumanScore`` (primary) or ``CriterionScore`` row, or
    None where none is fitted yet. A one-question project: ``[]`` (its page shows the ``HumanScore`` alone)."""
    if not image.project.criteria:
        return []
    main = primary(image.project)
    secondary_rows = {row.criterion: row for row in CriterionScore.objects.filter(image=image)}
    human = HumanScore.objects.filter(image=image).first()
    return [{"key": item["key"], "question": item["question"], "primary": item["key"] == main,
             "score": human if item["key"] == main else secondary_rows.get(item["key"])}
            for item in image.project.criteria]
