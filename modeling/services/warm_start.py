"""Warm starts across campaigns: a model version of another project as a new project's starting prior.

- A manager names, in the project's training settings, a model version of **another project they manage**
  with the **same encoder** and the **same question** (``check_warm_start``: a version outside the caller's
  projects is 404 as a missing one, a version of a project they only rate in is 403, another encoder or
  question is a 400 with the reason). ``eligible_versions`` lists the candidates for the settings page.
- The worker scores this project's images with that version (``score_project`` behind the task
  ``tagrank.scoring.warm_start``, sent by ``worker/dispatch.py::send_warm_start_scoring``), into
  ``WarmStartScore``, never ``ImageScore``: that table holds a version's scores of its own project only.
  Images that get their features later are scored as they arrive (``score_new_images``).
- For as long as it is named, ``warm_start_prior`` hands the human-score fit those scores as a candidate
  prior, from the first judgment on; it competes with the project's own model at every fit. They are out of fold by construction: the
  version never saw a comparison of this project. The prior's strength is fitted from the project's
  comparisons at each refit, so a transfer that ranks badly here fades as judgments arrive.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet

import worker.dispatch as dispatch
from core.refusals import Refusal
from labeling import access
from labeling.models import Image, Membership, Project
from modeling.models import ImageFeatures, ModelVersion, TrainingSettings, WarmStartScore
from modeling.services import feature_extraction, scoring
from modeling.services.columns import fetch_columns, per_image

log = logging.getLogger(__name__)

# Versions with trained weights that once passed (or may pass) the project's own checks.
SOURCE_STATUSES = (ModelVersion.Status.ACTIVE, ModelVersion.Status.RETIRED, ModelVersion.Status.CANDIDATE)
BATCH = 2000  # images scored per batch


class WarmStartInvalid(Refusal):
    """The named version cannot be this project's warm start; the message says why (a 400)."""

    code = "warm_start_invalid"


@dataclass(frozen=True)
class WarmStartPrior:
    """Another project's version's scores of this project's images, in the fit's ``image_ids`` order."""

    version_id: int
    mean: np.ndarray  # [N] the version's score on 1..10, NaN where it scored no image yet
    std: np.ndarray  # [N] its uncertainty
    out_of_fold: np.ndarray  # [N] bool: True wherever scored (the version never trained on this project)

    @property
    def source(self) -> str:
        return f"warm start from version {self.version_id}"


def project_encoder_id() -> str:
    """The encoder of every project's features: the configured one."""
    return feature_extraction.encoder_id_for()


def eligible_versions(user, project: Project) -> QuerySet[ModelVersion]:
    """Versions the caller may name as this project's warm start, newest first."""
    return (ModelVersion.objects.filter(project__in=access.managed_projects(user), project__archived_at=None,
                                        project__question=project.question, encoder_id=project_encoder_id(),
                                        status__in=SOURCE_STATUSES)
            .exclude(project=project).exclude(weights="").select_related("project").order_by("-created_at", "-id"))


def projects_to_warm_start(user, version: ModelVersion) -> QuerySet[Project]:
    """Projects the caller manages that ``version`` could warm-start now: the same question, no active version
    of their own, not already warm-started from it (the Models page's one-click form)."""
    own_active = ModelVersion.objects.filter(project=OuterRef("pk"), is_active=True)
    return (access.managed_projects(user).filter(archived_at=None, question=version.project.question)
            .exclude(pk=version.project_id).exclude(Exists(own_active))
            .exclude(training_settings__warm_start_version=version).order_by("name", "pk"))


def set_warm_start(project: Project, version: ModelVersion | None) -> None:
    """Name (or clear) the project's warm start, already checked by ``check_warm_start``, and act on it."""
    settings = TrainingSettings.objects.filter(project=project).first() or TrainingSettings(project=project)
    previous = settings.warm_start_version_id
    settings.warm_start_version = version
    with transaction.atomic():
        settings.save()
        settings_saved(project, previous)


def check_warm_start(user, project: Project, version_id: int | None) -> ModelVersion | None:
    """The version ``version_id`` if the caller may name it as the project's warm start (None clears it).

    Raises ``Http404`` for a version outside the caller's projects (as for a missing one),
    ``PermissionDenied`` where the caller only rates in its project, ``WarmStartInvalid`` otherwise."""
    if version_id is None:
        return None
    version = None
    if 0 < int(version_id) <= access.MAX_ID:
        version = ModelVersion.objects.select_related("project").filter(pk=version_id).first()
    access.role_in(user, version.project if version else None, "model version").require_manager(
        "start a campaign from its models")
    if version.project_id == project.pk:
        raise WarmStartInvalid("A warm start is a version of another project; this project's own versions "
                               "become its prior when they are active.")
    if version.encoder_id != project_encoder_id():
        raise WarmStartInvalid(f"Version {version.pk} was trained on features of encoder {version.encoder_id!r}; "
                               f"this project's features come from {project_encoder_id()!r}.")
    if version.project.question != project.question:
        raise WarmStartInvalid(f"Version {version.pk} learned another question ({version.project.question!r}); "
                               "a warm start needs the same question.")
    if version.status not in SOURCE_STATUSES or not version.weights:
        raise WarmStartInvalid(f"Version {version.pk} is {version.get_status_display().lower()}: it has no "
                               "usable trained model.")
    return version


def warm_start_version(project: Project) -> ModelVersion | None:
    settings = TrainingSettings.objects.filter(project=project).select_related("warm_start_version").first()
    return settings.warm_start_version if settings else None


def in_use(project: Project) -> bool:
    """Whether the warm start is a candidate for the project's prior: one is named. It competes with the
    project's own model at every fit (``model_prior.project_prior``), and its weight is fitted each time."""
    return TrainingSettings.objects.filter(project=project, warm_start_version__isnull=False).exists()


def warm_start_prior(project: Project, image_ids: np.ndarray) -> WarmStartPrior | None:
    """The warm start's scores of ``image_ids`` [N] as a candidate prior of the human-score fit, or None: when
    none is named, or before any image is scored."""
    version = warm_start_version(project)
    if version is None:
        return None
    columns = fetch_columns(WarmStartScore.objects.filter(project=project, model_version=version),
                            {"image_id": int, "mean": float, "uncertainty": float})
    if columns["image_id"].shape[0] == 0:
        return None
    mean = per_image(image_ids, columns["image_id"], columns["mean"])
    std = per_image(image_ids, columns["image_id"], columns["uncertainty"])
    return WarmStartPrior(version.pk, mean, std, out_of_fold=~np.isnan(mean))


def scored_since(project: Project, when) -> bool:
    """Whether warm-start scores arrived after ``when`` (a human-score fit): the fit is stale then."""
    return WarmStartScore.objects.filter(project=project, scored_at__gt=when).exists()


def start_campaign(user, version: ModelVersion, name: str = "") -> Project:
    """A new project warm-started from ``version``: the source project's question and rating settings, the
    caller as its manager, the version as its warm start. The caller must manage the version's project
    and be allowed to create projects (checked by the caller: the page's access rules). Images come next:
    each is scored by the version as its features arrive."""
    source = version.project
    if version.encoder_id != project_encoder_id() or version.status not in SOURCE_STATUSES or not version.weights:
        raise WarmStartInvalid(f"Version {version.pk} cannot start a campaign: it needs trained weights and the "
                               f"configured encoder {project_encoder_id()!r}.")
    base = f"{source.slug[:60]}-next"
    slug, suffix = base, 2
    while Project.objects.filter(slug=slug).exists():
        slug, suffix = f"{base}-{suffix}", suffix + 1
    with transaction.atomic():
        project = Project.objects.create(
            name=(name or f"{source.name} (next campaign)")[:200], slug=slug, question=source.question,
            description=f"Warm-started from version {version.pk} of “{source.name}”.",
            tag_vocabulary=source.tag_vocabulary, overlap=source.overlap, allow_ties=source.allow_ties,
            pair_strategy=source.pair_strategy, retrain_min_new_comparisons=source.retrain_min_new_comparisons,
            retrain_max_age_hours=source.retrain_max_age_hours, created_by=user,
        )  # fmt: skip
        Membership.objects.create(project=project, user=user, role=Membership.Role.MANAGER)
        source_settings = TrainingSettings.objects.filter(project=source).first()
        TrainingSettings.objects.create(
            project=project, warm_start_version=version,
            ranking_lambda=source_settings.ranking_lambda if source_settings else 1.0,
            target_srcc=source_settings.target_srcc if source_settings else None,
        )  # fmt: skip
    log.info("campaign %s started from version %s of %s", project.slug, version.pk, source.slug)
    return project


# --- Scoring on the worker ---------------------------------------------------------------------------


def settings_saved(project: Project, previous_version_id: int | None) -> None:
    """After the training settings were saved: a new warm start is scored on the worker (after commit);
    scores of a version no longer named are dropped (they are derived data) and the human scores refitted."""
    current = TrainingSettings.objects.filter(project=project).values_list("warm_start_version_id", flat=True).first()
    if current == previous_version_id:
        return
    stale = WarmStartScore.objects.filter(project=project)
    if current is not None:
        stale = stale.exclude(model_version_id=current)
    stale.delete()
    if current is not None:
        dispatch.send_warm_start_scoring(project.pk)
    else:
        dispatch.send_metrics_refresh(project.pk)  # the prior is gone: refit without it


def score_project(project_id: int) -> dict:
    """Score the project's images that the warm start has not scored yet; then refit the human scores and
    refill the pair queue under the new prior. Body of the task ``tagrank.scoring.warm_start``; idempotent."""
    project = Project.objects.filter(pk=project_id).first()
    version = warm_start_version(project) if project else None
    if version is None:
        return {"project": project_id, "skipped": "no warm start"}
    scored = WarmStartScore.objects.filter(model_version=version, image=OuterRef("pk"))
    ids = list(Image.objects.filter(project=project).filter(~Exists(scored)).order_by("pk").values_list("pk", flat=True))
    written = sum(_score_batch(project, version, ids[start:start + BATCH]) for start in range(0, len(ids), BATCH))
    if written:
        dispatch.send_activation_refresh(project.pk)  # a new prior, as when a version becomes active
    log.info("warm start of %s from version %s: %d images scored", project.slug, version.pk, written)
    return {"project": project_id, "version": version.pk, "scored": written}


def sweep() -> int:
    """Send warm-start scoring for projects whose warm start is in use and left images with features
    unscored (a lost message): the beat's feature sweep calls it. Returns how many were sent."""
    sent = 0
    own_active = ModelVersion.objects.filter(project=OuterRef("project"), is_active=True)
    for settings in (TrainingSettings.objects.filter(warm_start_version__isnull=False).exclude(Exists(own_active))
                     .select_related("warm_start_version")):
        version = settings.warm_start_version
        scored = WarmStartScore.objects.filter(model_version=version, image=OuterRef("pk"))
        featured = ImageFeatures.objects.filter(image=OuterRef("pk"), encoder_id=version.encoder_id)
        if Image.objects.filter(project_id=settings.project_id).filter(Exists(featured)).exclude(Exists(scored)).exists():
            dispatch.send_warm_start_scoring(settings.project_id)
            sent += 1
    return sent


def score_new_images(project: Project, image_ids) -> int:
    """Score freshly featured images with the warm start while one is named (no-op otherwise)."""
    version = warm_start_version(project)
    if version is None:
        return 0
    try:
        return _score_batch(project, version, sorted(int(i) for i in image_ids))
    except Exception as exc:  # the next settings save or score_project catches up; the import itself is done
        log.warning("could not score new images of %s with the warm start v%s: %s", project.slug, version.pk, exc)
        return 0


def _score_batch(project: Project, version: ModelVersion, ids: list[int]) -> int:
    if not ids:
        return 0
    predicted = scoring.predict_scores(version, ids)
    if predicted is None:
        return 0
    scored_ids, mean, _, uncertainty = predicted
    mean = np.clip(np.asarray(mean, dtype=np.float64), 1.0, 10.0)
    rows = [WarmStartScore(project=project, image_id=image_id, model_version=version, mean=float(mean[k]),
                           uncertainty=float(uncertainty[k]))
            for k, image_id in enumerate(scored_ids)]
    with transaction.atomic():
        WarmStartScore.objects.bulk_create(rows, batch_size=1000, ignore_conflicts=True)
    return len(rows)
