"""The retraining trigger: each project's policy, applied every minute by a beat task.

It reads the database, never the broker's messages: comparisons stored while the broker was down
are counted as soon as the check runs again, and a run whose message was lost is re-sent. The
check also clears what a dead worker left behind (stale runs, stalled scoring), so nothing blocks
the next run forever.

Policy (``Project.retrain_min_new_comparisons``, ``Project.retrain_max_age_hours``):
- retrain when at least N comparisons arrived since the latest trained version's data, and at least
  25 % of what that version trained on (``new_comparisons_needed``): every +25 %, at least N;
- also retrain when the active version is older than the maximum age and anything is new.
"New" counts from the latest trained version, not only the active one: a challenger that lost
against the champion has seen those comparisons, and retraining on the same data would lose again.
"""
from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from labeling.models import Project
from labeling.services import rater_counts
from modeling.models import ModelVersion, TrainingRun
from modeling.services import datasets, scoring, training_runs

logger = logging.getLogger(__name__)

GROWTH_TO_RETRAIN = 0.25  # retrain once the comparisons grew by this share of the latest version's


def failure_cooldown() -> timedelta:
    return timedelta(seconds=float(settings.TAGRANK_TRAINING_FAILURE_COOLDOWN_SECONDS))


@dataclass
class Decision:
    project: str
    train: bool
    trigger: str | None
    reason: str
    new_comparisons: int
    since_version: int | None


def latest_trained_version(project: Project) -> ModelVersion | None:
    return (
        ModelVersion.objects.filter(project=project)
        .exclude(status__in=[ModelVersion.Status.FAILED, ModelVersion.Status.TRAINING])
        .order_by("-last_comparison_id", "-created_at")
        .first()
    )


def new_comparisons(project: Project, since: ModelVersion | None) -> int:
    """Usable comparisons (not by excluded raters) stored after the version's training data was read. Before
    any version, all of them, from the per-rater counters; after one, an id range scan over what came since."""
    watermark = since.last_comparison_id if since is not None else None
    if not watermark:
        return rater_counts.project_total(project, excluding_raters=datasets.excluded_rater_ids(project))
    return datasets.usable_comparisons(project).filter(pk__gt=watermark).count()


def new_comparisons_needed(project: Project, base: ModelVersion | None) -> int:
    """The project's minimum, or a quarter of what the latest version trained on when that is more: a new
    version once the data grew by 25 %, so a campaign retrains often while it is small (each retrain a
    second on the fast path) and a few times per doubling later."""
    grown = math.ceil(GROWTH_TO_RETRAIN * base.n_comparisons) if base is not None else 0
    return max(project.retrain_min_new_comparisons, grown)


def evaluate(project: Project, now=None) -> Decision:
    """Should this project train now, and why (or why not)."""
    now = now or timezone.now()
    base = latest_trained_version(project)
    new = new_comparisons(project, base)
    since = base.pk if base else None

    def no(reason):
        return Decision(project.slug, False, None, reason, new, since)

    running = training_runs.open_run(project)
    if running is not None:
        return no(f"training run {running.pk} is {running.status}")
    last = TrainingRun.objects.filter(project=project).order_by("-created_at", "-pk").first()
    if (
        last is not None and last.status == TrainingRun.Status.FAILED
        and last.failure_kind == TrainingRun.Failure.ERROR
        and last.finished_at and last.finished_at > now - failure_cooldown()
    ):
        # An error is likely to repeat on the same data: wait instead of failing every minute.
        return no(f"training run {last.pk} failed at {last.finished_at:%H:%M:%S}; waiting before the next try")
    needed = new_comparisons_needed(project, base)
    label = f"version {since}" if since else "the start"
    if new >= max(needed, 1):
        return Decision(project.slug, True, TrainingRun.Trigger.NEW_COMPARISONS,
                        f"{new} new comparisons since {label} (threshold {needed})", new, since)
    active = ModelVersion.objects.filter(project=project, is_active=True).first()
    if active is not None and new > 0:
        age = now - active.created_at
        if age > timedelta(hours=project.retrain_max_age_hours):
            hours = age.total_seconds() / 3600
            return Decision(project.slug, True, TrainingRun.Trigger.MAX_AGE,
                            f"active version {active.pk} is {hours:.1f} h old (maximum {project.retrain_max_age_hours} h) "
                            f"and {new} comparison(s) are new", new, since)
    return no(f"{new} new comparisons since {label}, {needed} needed")


def check_project(project: Project, *, dispatch: bool = True) -> dict:
    """Clear what dead workers left, then apply the policy; queue a run when it says so."""
    dead = training_runs.fail_dead_runs(project)
    resent_runs = training_runs.redispatch_queued(project) if dispatch else []
    resent_scoring = scoring.redispatch_stalled(project) if dispatch else []
    decision = evaluate(project)
    outcome = {**asdict(decision), "dead_runs": dead, "resent_runs": resent_runs, "resent_scoring": resent_scoring}
    if decision.train:
        run, created = training_runs.request_training(
            project, trigger=decision.trigger, reason=decision.reason, dispatch=dispatch
        )
        outcome.update(run=run.pk, created=created)
    return outcome


def check_all_projects(*, dispatch: bool = True) -> list[dict]:
    """The body of the beat task: every project but archived ones (read-only: no retraining), each on its own
    (one failing project stops no other)."""
    outcomes = []
    for project in Project.objects.filter(archived_at=None).order_by("pk"):
        try:
            outcomes.append(check_project(project, dispatch=dispatch))
        except Exception as exc:
            logger.exception("trigger check failed for project %s", project.slug)
            outcomes.append({"project": project.slug, "error": f"{type(exc).__name__}: {exc}"})
    return outcomes
