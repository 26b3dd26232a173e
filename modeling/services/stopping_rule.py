"""When to stop: a project's expected ranking accuracy against the target its manager set.

- With every stored human-score fit, ``record_ranking_accuracy`` samples the posterior
  (``modeling.ml.ranking_accuracy``) and stores the expected SRCC between the current ranking and the truth,
  with its 5–95 % interval (``RankingAccuracy``, one row per project).
- When the estimate rises to the target, the webhook event ``ranking.target_reached`` is sent.
- ``apply_stopping_rule`` sets or clears ``Project.campaign_completed_at``: set while the manager chose to stop
  at the target (``TrainingSettings.stop_at_target``) and the expected SRCC has reached ``target_srcc``. Pair
  serving (labeling) reads only that flag, so the rating hot path pays nothing for the rule. It runs after
  each estimate and after each change of the settings, so that raising the target or turning the rule off
  reopens the campaign at once, and new images (a lower estimate at the next fit) reopen it too.
"""
from __future__ import annotations

from labeling.models import Project
from labeling.services import campaign_target
from modeling.ml.ranking_accuracy import AccuracyConfig, expected_srcc
from modeling.models import RankingAccuracy, TrainingSettings
from modeling.services import notifications

ACCURACY_CONFIG = AccuracyConfig()


def record_ranking_accuracy(project: Project, fit) -> RankingAccuracy | None:
    """Estimate and store the ranking accuracy of a stored fit (``human_scores.HumanScoreFit``), then apply
    the stopping rule. None (and nothing stored) with fewer than two images, or when the estimate of a fit
    of newer data is stored already."""
    estimate = expected_srcc(fit.posterior.mean, fit.posterior.var, ACCURACY_CONFIG)
    if estimate is None:
        return None
    previous = RankingAccuracy.objects.filter(project=project).first()
    if previous is not None and previous.computed_at > fit.data_as_of:
        return None  # a fit of newer data was stored (and estimated) meanwhile, as in store_human_scores
    accuracy, _ = RankingAccuracy.objects.update_or_create(project=project, defaults={
        "expected_srcc": estimate.expected_srcc, "srcc_low": estimate.low, "srcc_high": estimate.high,
        "n_images": estimate.n_images, "images_per_draw": estimate.images_per_draw, "draws": estimate.draws,
        "n_comparisons": fit.n_comparisons, "computed_at": fit.data_as_of,
    })
    complete = apply_stopping_rule(project)
    settings = TrainingSettings.objects.filter(project=project).first()
    if target_reached(settings, accuracy) and not target_reached(settings, previous):
        notifications.ranking_target_reached(project, accuracy, settings.target_srcc, complete)
    return accuracy


def target_reached(settings: TrainingSettings | None, accuracy: RankingAccuracy | None) -> bool:
    """Whether the expected SRCC (the mean over posterior draws, not the interval's low end) reached the target."""
    if settings is None or settings.target_srcc is None or accuracy is None:
        return False
    return accuracy.expected_srcc >= settings.target_srcc


def srcc_rule_holds(project: Project) -> bool:
    """Whether the stop-at-target rule of ranking accuracy holds now (registered with labeling's campaign target)."""
    settings = TrainingSettings.objects.filter(project=project).first()
    return bool(settings and settings.stop_at_target) and target_reached(
        settings, RankingAccuracy.objects.filter(project=project).first())


def apply_stopping_rule(project: Project) -> bool:
    """Set or clear the project's "campaign complete" flag; returns whether it is set. The flag is shared with
    the judgment target: ``campaign_target.refresh_completion`` asks every rule, this one (``srcc_rule_holds``,
    registered in ``modeling/apps.py``) included."""
    return campaign_target.refresh_completion(project)


def accuracy_summary(project: Project) -> dict:
    """The expected ranking accuracy and the stopping target, for the dashboard and the API (managers)."""
    settings = TrainingSettings.objects.filter(project=project).first()
    accuracy = RankingAccuracy.objects.filter(project=project).first()
    project.refresh_from_db(fields=["campaign_completed_at"])
    return {
        "expected_srcc": accuracy.expected_srcc if accuracy else None,
        "interval": [accuracy.srcc_low, accuracy.srcc_high] if accuracy else None,
        "interval_quantiles": list(ACCURACY_CONFIG.interval),
        "n_images": accuracy.n_images if accuracy else None,
        "images_per_draw": accuracy.images_per_draw if accuracy else None,
        "draws": accuracy.draws if accuracy else None,
        "n_comparisons": accuracy.n_comparisons if accuracy else None,
        "computed_at": accuracy.computed_at if accuracy else None,
        "target_srcc": settings.target_srcc if settings else None,
        "stop_at_target": bool(settings and settings.stop_at_target),
        "target_reached": target_reached(settings, accuracy),
        "campaign_completed_at": project.campaign_completed_at,
    }
