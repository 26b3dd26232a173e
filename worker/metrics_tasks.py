"""Tasks that compute and store human scores and dashboard metrics (queue ``default``).

Each task is a thin wrapper over a service in ``modeling.services``. Called with a project id it works
on that project; called with none (the beat schedule) it works on every project whose numbers are out
of date, so a lost message is caught up by the next periodic run. Both are idempotent: a rerun
rewrites the same human scores, and a report is only added, never edited.
"""
from __future__ import annotations

from celery import shared_task

from worker.retry import RETRYING


@shared_task(
    name="tagrank.metrics.fit_human_scores", queue="default",
    soft_time_limit=10 * 60, time_limit=11 * 60, **RETRYING,
)  # fmt: skip
def fit_human_scores(project_id: int | None = None) -> dict:
    """Refit and store the human scores of one project, or of every project with new comparisons."""
    from labeling.models import Project
    from modeling.services import criterion_scores, human_scores

    if project_id is not None:
        project = Project.objects.filter(pk=project_id).first()
        if project is None:
            return {"skipped": f"no project {project_id}"}
        return {project.slug: _with_criteria(project, human_scores.fit_human_scores(project).summary())}
    done = {}
    for project in Project.objects.order_by("pk"):
        if human_scores.human_scores_stale(project):
            done[project.slug] = human_scores.fit_human_scores(project).summary()
        if criterion_scores.criterion_scores_stale(project):  # after the primary fit: they follow it
            done[project.slug] = _with_criteria(project, done.get(project.slug, {}))
    return done


def _with_criteria(project, summary: dict) -> dict:
    """A project with several criteria: each secondary criterion's scores too (criterion_scores.py)."""
    from modeling.services import criterion_scores

    if criterion_scores.secondary(project) or criterion_scores.criterion_scores_stale(project):
        summary = {**summary, "criteria": criterion_scores.fit_criterion_scores(project)}
    return summary


@shared_task(
    name="tagrank.metrics.compute_agreement", queue="default",
    soft_time_limit=15 * 60, time_limit=16 * 60, **RETRYING,
)  # fmt: skip
def compute_agreement(project_id: int | None = None, only_if_changed: bool = False) -> dict:
    """Compute and store the dashboard numbers of one project, or of every project whose data changed."""
    from labeling.models import Project
    from modeling.services import agreement

    if project_id is not None:
        projects = list(Project.objects.filter(pk=project_id))
        if not projects:
            return {"skipped": f"no project {project_id}"}
    else:
        projects, only_if_changed = list(Project.objects.order_by("pk")), True
    done = {}
    for project in projects:
        reports = agreement.compute_and_store_reports(project, only_if_changed=only_if_changed)
        pks = {key: None if report is None else report.pk for key, report in reports.items()}
        # A project with several criteria: {criterion key ("" the primary): report id}.
        done[project.slug] = pks[None] if len(pks) == 1 else {key or "": pk for key, pk in pks.items()}
    return done

