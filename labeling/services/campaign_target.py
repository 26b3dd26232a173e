"""A campaign's target of judgments, how far along it is, and stopping there if the manager so chose.

The target is ``Project.target_judgments`` (judgments in all) or ``Project.target_judgments_per_image``
(that many times the project's active images: 2 per image means every image in four comparisons on
average). ``progress`` says how far along the campaign is (the progress page and API).

With ``Project.stop_at_judgment_target``, meeting the target completes the campaign through the one
"campaign complete" flag that pair serving reads (``Project.campaign_completed_at``; next-pair answers
410). The flag is shared with the model loop's stopping rule (a target of ranking accuracy): that rule
registers here (``register_completion_rule``) and calls ``judgment_target_met`` itself, so either side
sets the flag while any rule holds and clears it when none does (a raised target reopens the campaign).
"""
from __future__ import annotations

import logging
import math
from typing import Callable

from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from labeling.models import Image, Project
from labeling.services import rater_counts

log = logging.getLogger(__name__)

_other_rules: list[Callable[[Project], bool]] = []


def register_completion_rule(rule: Callable[[Project], bool]) -> None:
    """Another reason to keep the campaign complete (``rule(project) -> bool``), from the apps that build on
    labeling; registering it twice has no effect."""
    if rule not in _other_rules:
        _other_rules.append(rule)


def active_images(project: Project | OuterRef):
    """The images a per-image target counts: the project's unarchived ones, as the one column of the partial index
    ``image_unarchived`` and unordered, so that a count, a LIMITed one too, reads that index and not the rows
    (``project`` an ``OuterRef`` in a subquery of counts per project)."""
    return Image.objects.filter(project=project, archived_at=None).order_by().values("project")


def with_active_image_counts(projects: QuerySet) -> QuerySet:
    """``projects`` annotated ``image_count``: a count per project from the partial index (a join would read
    every image row)."""
    images = active_images(OuterRef("pk")).annotate(n=Count("*")).values("n")
    return projects.annotate(image_count=Coalesce(Subquery(images, output_field=IntegerField()), 0))


def target_judgments(project: Project, n_images: int | None = None) -> int | None:
    """The target as a number of judgments, or None when the project has none."""
    if project.target_judgments is not None:
        return project.target_judgments
    if project.target_judgments_per_image is not None:
        if n_images is None:
            n_images = active_images(project).count()
        return math.ceil(project.target_judgments_per_image * n_images)
    return None


def progress(project: Project) -> dict:
    """How far along the campaign is, for managers."""
    n_images = active_images(project).count()
    target = target_judgments(project, n_images)
    judgments = rater_counts.project_total(project)  # the per-rater counters, not a count of comparisons
    project.refresh_from_db(fields=["campaign_completed_at"])
    return {
        "kind": ("judgments" if project.target_judgments is not None
                 else "judgments_per_image" if project.target_judgments_per_image is not None else None),
        "target_judgments": target,
        "target_judgments_per_image": project.target_judgments_per_image,
        "judgments": judgments,
        "judgments_per_image": judgments / n_images if n_images else None,
        "share": min(1.0, judgments / target) if target else None,
        "met": target is not None and judgments >= target,
        "stop_at_target": project.stop_at_judgment_target,
        "campaign_completed_at": project.campaign_completed_at,
    }


def judgment_target_met(project: Project) -> bool:
    """Whether the manager chose to stop at the judgment target and it is met."""
    if not project.stop_at_judgment_target:
        return False
    if project.target_judgments is None and project.target_judgments_per_image is not None:
        return _per_image_target_met(project, rater_counts.project_total(project))
    target = target_judgments(project)
    return target is not None and rater_counts.project_total(project) >= target


def _per_image_target_met(project: Project, judgments: int) -> bool:
    """``judgments >= ceil(per_image * images)``, counting at most k = floor(judgments / per_image) + 2 images
    (this runs after every judgment): the target only grows with the images, and k of them put it past the
    judgments, so more need not be counted (+ 2, not + 1: float rounding can leave the target of
    floor(judgments / per_image) + 1 images at the judgments, e.g. 17 / 0.17 = 99.99999999999999)."""
    per_image = project.target_judgments_per_image
    k = math.floor(judgments / per_image) + 2
    counted = active_images(project)[:k].count()
    if counted < k:  # every image counted
        return judgments >= math.ceil(per_image * counted)
    if math.ceil(per_image * k) > judgments:
        return False
    # Only with some 10^16 images and a per-image target below float precision: count them all.
    return judgments >= target_judgments(project)


def refresh_completion(project: Project) -> bool:
    """Set or clear the "campaign complete" flag from every rule; returns whether it is set."""
    complete = judgment_target_met(project) or any(rule(project) for rule in _other_rules)
    if complete:
        changed = Project.objects.filter(pk=project.pk, campaign_completed_at=None).update(
            campaign_completed_at=timezone.now())
    else:
        changed = Project.objects.filter(pk=project.pk).exclude(campaign_completed_at=None).update(
            campaign_completed_at=None)
    if changed:
        log.info("campaign %s %s", project.slug, "complete" if complete else "reopened")
    project.refresh_from_db(fields=["campaign_completed_at"])
    return complete


def judgment_stored(project: Project) -> None:
    """After a judgment: complete the campaign when it met its target (one sum over the rater-day counters, and
    only where the manager chose to stop at a target that is not met yet)."""
    if project.stop_at_judgment_target and project.campaign_completed_at is None and judgment_target_met(project):
        refresh_completion(project)
