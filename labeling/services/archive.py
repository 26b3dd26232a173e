"""Archiving images and projects: they leave listings and pair serving, and every judgment stays.

Comparisons PROTECT their project and images, so nothing in the app deletes judgments along with
them; deleting on purpose is ``manage.py purge_project``, which exports first. Archiving ends the live
leases on what it archives (their slots return), and the image counters stay as they are: the
comparisons they count still exist and still count for the partner images.
"""
from __future__ import annotations

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from labeling.models import Image, PairLease, Project
from labeling.services.pair_queue import refresh_candidate


def _end_live_leases(project: Project, leases) -> int:
    live = leases.select_for_update().filter(state=PairLease.State.LIVE)
    candidate_ids = set(live.values_list("candidate_id", flat=True))
    ended = live.update(state=PairLease.State.RELEASED)
    for candidate_id in candidate_ids:
        refresh_candidate(candidate_id, project)
    return ended


def archive_images(project: Project, image_ids) -> int:
    """Archive these images of ``project``; returns how many were newly archived."""
    ids = list(image_ids)
    with transaction.atomic():
        archived = Image.objects.filter(project=project, pk__in=ids, archived_at=None).update(
            archived_at=timezone.now()
        )
        on_them = Q(image_a_id__in=ids) | Q(image_b_id__in=ids)
        _end_live_leases(project, PairLease.objects.filter(project=project).filter(on_them))
    return archived


def restore_images(project: Project, image_ids) -> int:
    images = Image.objects.filter(project=project, pk__in=list(image_ids)).exclude(archived_at=None)
    return images.update(archived_at=None)


def archive_project(project: Project) -> None:
    with transaction.atomic():
        Project.objects.filter(pk=project.pk, archived_at=None).update(archived_at=timezone.now())
        _end_live_leases(project, PairLease.objects.filter(project=project))
    project.refresh_from_db(fields=["archived_at"])


def restore_project(project: Project) -> None:
    Project.objects.filter(pk=project.pk).update(archived_at=None)
    project.refresh_from_db(fields=["archived_at"])
