"""The beat's catch-up for lost messages: images still without features, features still without a score.

Above both services it reads (feature extraction and scoring), so neither needs the other's sweep.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from django.utils import timezone

import worker.dispatch as dispatch
from labeling.models import Project
from modeling.services import feature_extraction, scoring

logger = logging.getLogger(__name__)

# The sweep leaves images this young alone: their extraction message is most likely still queued.
SWEEP_GRACE = timedelta(minutes=2)


def sweep(limit_per_project: int = 5000) -> dict:
    """Find images that still lack features (a lost message, a worker that died) and enqueue them.

    Also enqueues scoring for images that have features but no score from their project's active
    version, so that no image stays unscored forever.
    """
    encoder_id = feature_extraction.encoder_id_for()
    cutoff = timezone.now() - SWEEP_GRACE
    summary = {"projects": 0, "images_enqueued": 0, "scoring_enqueued": 0}
    for project in Project.objects.all().order_by("pk"):
        summary["projects"] += 1
        missing = list(
            feature_extraction.images_missing_features(project, encoder_id)
            .filter(created_at__lt=cutoff)
            .order_by("pk")
            .values_list("pk", flat=True)[:limit_per_project]
        )
        if missing:
            logger.info("sweep: %d image(s) of project %s lack features", len(missing), project.slug)
            if dispatch.send_feature_extraction(project.pk, missing):
                summary["images_enqueued"] += len(missing)
        summary["scoring_enqueued"] += scoring.enqueue_unscored(project)
    return summary
