"""Scoring every image with a model version, from cached features, and switching the active version.

A promoted version is in status ``scoring`` while it scores the project's images in batches (bulk
inserts). Only when every image has its score does it become the active one, in one transaction
that also retires the previous version: readers (the export, the pages) see the old version's
scores or the new one's, never a mixture and never nothing. Scoring is idempotent: a repeated task
skips images that already have a score from this version.
"""
from __future__ import annotations

import logging
import os
import tempfile
from datetime import timedelta
from typing import Callable, Iterable

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from labeling.models import Image, Project
from modeling.models import ImageFeatures, ImageScore, ModelVersion, Promotion
from modeling.services import notifications
import worker.dispatch as dispatch

logger = logging.getLogger(__name__)

class ScoringFailed(Exception):
    """The version cannot score the images (unreadable weights, features of another encoder...)."""


def batch_size() -> int:
    return int(settings.TAGRANK_SCORING_BATCH_SIZE)


def stale_after() -> timedelta:
    return timedelta(seconds=int(settings.TAGRANK_SCORING_STALE_SECONDS))


# --- Loading a version's model ------------------------------------------------------------------


def load_weights_file(weights_name: str):
    """(model, meta) of a checkpoint on the media storage, by its name there. CheckpointError on a bad file."""
    from modeling.ml.checkpoints import load_checkpoint

    storage = ModelVersion._meta.get_field("weights").storage
    # Through the storage API, so that weights on another host's media storage work too.
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "weights.pt")
        try:
            with storage.open(weights_name, "rb") as source, open(path, "wb") as target:
                for chunk in iter(lambda: source.read(1 << 20), b""):
                    target.write(chunk)
        except (FileNotFoundError, OSError) as exc:
            from modeling.ml.checkpoints import CheckpointError

            raise CheckpointError(f"{weights_name}: cannot read the weights file ({exc})") from exc
        return load_checkpoint(path)


def load_version_model(version: ModelVersion):
    """(model, meta) of a version. Raises ``modeling.ml.checkpoints.CheckpointError`` on a bad file."""
    from modeling.ml.checkpoints import CheckpointError

    if not version.weights:
        raise CheckpointError(f"model version {version.pk} has no weights file")
    # Not cached: a head loads in milliseconds, and a cache could hide a file replaced on storage.
    return load_weights_file(version.weights.name)


# --- Scoring -----------------------------------------------------------------------------------


def unscored_images(version: ModelVersion):
    scored = ImageScore.objects.filter(model_version=version, image=OuterRef("pk"))
    return Image.objects.filter(project_id=version.project_id).filter(~Exists(scored))


def score_and_store(version: ModelVersion, image_ids: Iterable[int], *, model=None, store=None) -> int:
    """Score these images with the version and store the scores (bulk insert). Returns rows written.

    Images already scored by this version are skipped. Features that are missing are extracted
    first when the configured encoder is the version's; otherwise ScoringFailed.
    """
    ids = sorted({int(i) for i in image_ids})
    if not ids:
        return 0
    already = set(
        ImageScore.objects.filter(model_version=version, image_id__in=ids).values_list("image_id", flat=True)
    )
    ids = [i for i in ids if i not in already]
    if not ids:
        return 0
    predicted = predict_scores(version, ids, model=model, store=store)
    return store_scores(version, *predicted) if predicted is not None else 0


def predict_scores(version: ModelVersion, ids: list[int], *, model=None, store=None):
    """The version's ``(image ids, mean [N], dist [N,10], uncertainty [N])`` of these images (of any project:
    a warm start scores another project's images, ``modeling/services/warm_start.py``), or None when none
    can be scored. Missing features are extracted first when the configured encoder is the version's;
    otherwise ScoringFailed. Stores nothing."""
    from modeling.ml.training import score_images as score_features
    from modeling.services import feature_extraction

    store = store or feature_extraction.feature_store(version.encoder_id)
    missing = store.missing_images(ids)
    if missing:
        if version.encoder_id != feature_extraction.encoder_id_for():
            raise ScoringFailed(
                f"{len(missing)} image(s) have no features of this version's encoder {version.encoder_id!r}, "
                f"and the configured encoder is {feature_extraction.encoder_id_for()!r}"
            )
        report = feature_extraction.extract_features(missing)
        unreadable = {image_id for image_id, _ in report.failed}
        ids = [i for i in ids if i not in unreadable]  # an unreadable file cannot be scored by any version
        if not ids:
            return None
    model = model or load_version_model(version)[0]
    image_tokens = store.get_images(ids)
    tag_tokens, tag_mask = feature_extraction.text_tokens(store, ids, dim=image_tokens.shape[-1])
    mean, dist, uncertainty = score_features(model, image_tokens, tag_tokens, tag_mask)
    return ids, mean, dist, uncertainty


def store_scores(version: ModelVersion, image_ids, mean, dist, uncertainty) -> int:
    """Bulk-insert a version's scores of these images (rows of ``mean`` [N], ``dist`` [N,10], ``uncertainty``
    [N]); images deleted meanwhile and scores already there are skipped. Returns the rows given to the database."""
    ids = [int(i) for i in image_ids]
    still_there = set()
    for start in range(0, len(ids), 10_000):  # bounded IN lists (SQLite limits the parameters of a statement)
        chunk = ids[start:start + 10_000]
        still_there.update(Image.objects.filter(project_id=version.project_id, pk__in=chunk).values_list("pk", flat=True))
    mean = np.clip(np.asarray(mean, dtype=np.float64), 1.0, 10.0)  # float32 rounding must not break the 1..10 check
    rows = [
        ImageScore(
            model_version=version,
            image_id=image_id,
            mean=float(mean[k]),
            distribution=[round(float(p), 6) for p in dist[k]],
            uncertainty=float(uncertainty[k]),
        )
        for k, image_id in enumerate(ids) if image_id in still_there
    ]
    ImageScore.objects.bulk_create(rows, batch_size=1000, ignore_conflicts=True)
    return len(rows)


def mark_failed(version: ModelVersion, reason: str) -> None:
    """A version that cannot serve: failed, with the reason. The active version is not touched."""
    ModelVersion.objects.filter(pk=version.pk, is_active=False).update(
        status=ModelVersion.Status.FAILED, status_reason=reason[:4000], scoring_finished_at=timezone.now()
    )
    logger.warning("model version %s failed: %s", version.pk, reason)


def rescore(version_id: int, *, progress: Callable[[int, int], None] | None = None) -> dict:
    """Score every image of the project with a version in status ``scoring``, then make it active.

    The body of ``tagrank.scoring.rescore``. Safe to run twice: scored images are skipped and only one
    run switches the version in.
    """
    from modeling.ml.checkpoints import CheckpointError

    version = ModelVersion.objects.filter(pk=version_id).select_related("project").first()
    if version is None or version.status != ModelVersion.Status.SCORING:
        return {"version": version_id, "skipped": "not waiting to be scored"}
    try:
        model, _ = load_version_model(version)
    except CheckpointError as exc:
        mark_failed(version, f"The weights file is unreadable: {exc}")
        return {"version": version_id, "failed": str(exc)}
    now = timezone.now()
    ModelVersion.objects.filter(pk=version.pk, scoring_started_at__isnull=True).update(scoring_started_at=now)
    written = 0
    # Images imported while scoring get their turn in the next round; the switch waits for them.
    for _round in range(5):
        todo = list(unscored_images(version).order_by("pk").values_list("pk", flat=True))
        total = Image.objects.filter(project_id=version.project_id).count()
        for start in range(0, len(todo), batch_size()):
            try:
                written += score_and_store(version, todo[start:start + batch_size()], model=model)
            except ScoringFailed as exc:
                mark_failed(version, str(exc))
                return {"version": version_id, "failed": str(exc)}
            done = ImageScore.objects.filter(model_version=version).count()
            still_scoring = ModelVersion.objects.filter(pk=version.pk, status=ModelVersion.Status.SCORING).update(
                scoring_done=done, scoring_total=total, scoring_updated_at=timezone.now()
            )
            if not still_scoring:  # superseded by another promotion, or failed meanwhile
                return {"version": version_id, "skipped": "no longer waiting to be scored", "scored": written}
            if progress:
                progress(done, total)
        if activate(version):
            return {"version": version_id, "scored": written, "activated": True}
    # Still incomplete (imports keep arriving): the trigger check re-sends it once it is stale.
    return {"version": version_id, "scored": written, "activated": False}


def activate(version: ModelVersion) -> bool:
    """Make a fully scored version the active one, retiring the previous one, in one transaction."""
    with transaction.atomic():
        locked = ModelVersion.objects.select_for_update().filter(pk=version.pk).first()
        if locked is None or locked.status != ModelVersion.Status.SCORING:
            return False
        if unscored_images(locked).filter(features__encoder_id=locked.encoder_id).exists():
            return False  # not complete: stay on the previous version (the next rescore finishes it)
        now = timezone.now()
        previous = (
            ModelVersion.objects.select_for_update().filter(project_id=locked.project_id, is_active=True)
            .exclude(pk=locked.pk).first()
        )
        if previous is not None:
            # The old one first: at most one active version per project is a constraint.
            ModelVersion.objects.filter(pk=previous.pk).update(is_active=False, status=ModelVersion.Status.RETIRED)
        total = Image.objects.filter(project_id=locked.project_id).count()
        done = ImageScore.objects.filter(model_version=locked).count()
        ModelVersion.objects.filter(pk=locked.pk).update(
            is_active=True, status=ModelVersion.Status.ACTIVE, activated_at=now, scoring_finished_at=now,
            scoring_done=done, scoring_total=total, scoring_updated_at=now, status_reason="",
        )
        Promotion.objects.filter(to_version=locked, completed_at__isnull=True).update(completed_at=now)
        locked.refresh_from_db()
        dispatch.send_activation_refresh(locked.project_id)
        notifications.model_version_activated(locked)  # webhooks, delivered after commit
    logger.info("model version %s is now active for project %s", version.pk, version.project_id)
    return True


# --- Keeping every image scored --------------------------------------------------------------


def score_new_images(project: Project, image_ids: Iterable[int]) -> int:
    """Score freshly featured images with the project's active version (no-op without one)."""
    version = ModelVersion.objects.filter(project=project, is_active=True).first()
    if version is None:
        return 0
    try:
        return score_and_store(version, image_ids)
    except Exception as exc:  # the sweep tries again later; the import itself is done
        logger.warning("could not score new images of %s with v%s: %s", project.slug, version.pk, exc)
        return 0


def enqueue_unscored(project: Project) -> int:
    """Dispatch scoring of images that have features but no score from the active version."""
    version = ModelVersion.objects.filter(project=project, is_active=True).first()
    if version is None:
        return 0
    has_features = ImageFeatures.objects.filter(image=OuterRef("pk"), encoder_id=version.encoder_id)
    if not unscored_images(version).filter(Exists(has_features)).exists():
        return 0
    return int(dispatch.send_score_missing(version.pk))


def score_missing(version_id: int) -> dict:
    """Score the images an active version has not scored yet (new imports). Body of a task."""
    version = ModelVersion.objects.filter(pk=version_id, is_active=True).first()
    if version is None:
        return {"version": version_id, "skipped": "not active"}
    ids = list(unscored_images(version).values_list("pk", flat=True))
    written = 0
    for start in range(0, len(ids), batch_size()):
        written += score_and_store(version, ids[start:start + batch_size()])
    return {"version": version_id, "scored": written}


def redispatch_stalled(project: Project | None = None) -> list[int]:
    """Re-send scoring for versions stuck in ``scoring``: their message was lost or their worker died."""
    stale = timezone.now() - stale_after()
    versions = ModelVersion.objects.filter(status=ModelVersion.Status.SCORING, scoring_updated_at__lt=stale)
    if project is not None:
        versions = versions.filter(project=project)
    resent = []
    for version_id in versions.values_list("pk", flat=True):
        # Touch it first, so the next check does not re-send it again before this one could run.
        ModelVersion.objects.filter(pk=version_id).update(scoring_updated_at=timezone.now())
        if dispatch.send_rescore(version_id):
            resent.append(version_id)
    return resent
