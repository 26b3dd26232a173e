"""Which model version serves a project: champion/challenger after training, manual promotion, rollback.

Every decision to make a version active is logged as a ``Promotion`` with who (None = the system) and
why. A promotion puts the version in status ``scoring``; it becomes active when all images are scored
(``scoring.activate``). If several promotions are requested while one is still scoring, the latest
request wins and the others go back to being candidates.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from core.refusals import Refusal
from labeling.models import Image, Project
from modeling.models import ImageScore, ModelVersion, Promotion, TrainingSettings
from worker.dispatch import send_rescore_after_commit


class PromotionRefused(Refusal):
    """The version cannot be promoted or rolled back to (the message says why)."""

    code = "promotion_refused"


def training_settings(project: Project) -> TrainingSettings:
    found = TrainingSettings.objects.filter(project=project).first()
    return found or TrainingSettings(project=project)


def active_version(project: Project) -> ModelVersion | None:
    return ModelVersion.objects.filter(project=project, is_active=True).first()


def request_promotion(version: ModelVersion, *, kind: str, reason: str, user=None, dispatch: bool = True) -> Promotion:
    """Log the decision and start scoring every image with the version; it switches in when done."""
    reason = (reason or "").replace("\x00", "").strip()  # PostgreSQL text cannot hold NUL
    if not reason:
        raise PromotionRefused("Give a reason: every promotion is logged with who did it and why.")
    with transaction.atomic():
        locked = ModelVersion.objects.select_for_update().filter(pk=version.pk).first()
        if locked is None:
            raise PromotionRefused("This model version no longer exists.")
        if locked.is_active:
            raise PromotionRefused(f"Version {locked.pk} is already the active one.")
        if locked.status in (ModelVersion.Status.FAILED, ModelVersion.Status.TRAINING):
            raise PromotionRefused(f"Version {locked.pk} is {locked.get_status_display().lower()}: it cannot serve.")
        if not locked.weights:
            raise PromotionRefused(f"Version {locked.pk} has no weights file.")
        current = active_version(locked.project)
        # The latest request wins: a version still scoring for an earlier promotion steps back.
        ModelVersion.objects.filter(project_id=locked.project_id, status=ModelVersion.Status.SCORING).exclude(
            pk=locked.pk
        ).update(status=ModelVersion.Status.CANDIDATE, status_reason=f"Superseded by the promotion of version {locked.pk}.")
        now = timezone.now()
        ModelVersion.objects.filter(pk=locked.pk).update(
            status=ModelVersion.Status.SCORING,
            status_reason="",
            scoring_total=Image.objects.filter(project_id=locked.project_id).count(),
            scoring_done=ImageScore.objects.filter(model_version=locked).count(),
            scoring_started_at=None,
            scoring_finished_at=None,
            scoring_updated_at=now,
        )
        promotion = Promotion.objects.create(
            project_id=locked.project_id, from_version=current, to_version=locked, kind=kind,
            decided_by=user, reason=reason,
        )
        if dispatch:
            send_rescore_after_commit(locked.pk)
    version.refresh_from_db()
    return promotion


def promote(version: ModelVersion, *, user, reason: str, dispatch: bool = True) -> Promotion:
    """A manager makes a version active (after it has scored every image)."""
    return request_promotion(version, kind=Promotion.Kind.MANUAL, reason=reason, user=user, dispatch=dispatch)


def rollback(version: ModelVersion, *, user, reason: str, dispatch: bool = True) -> Promotion:
    """A manager returns to a version that was active before (its scores are mostly there already)."""
    if version.activated_at is None:
        raise PromotionRefused(
            f"Version {version.pk} was never active: promote it instead of rolling back to it."
        )
    return request_promotion(version, kind=Promotion.Kind.ROLLBACK, reason=reason, user=user, dispatch=dispatch)


def previous_version(project: Project) -> ModelVersion | None:
    """The version that was active before the current one (the target of a plain "roll back")."""
    current = active_version(project)
    if current is None:
        return None
    last = (
        Promotion.objects.filter(to_version=current, completed_at__isnull=False)
        .exclude(from_version=None).select_related("from_version").order_by("-completed_at").first()
    )
    if last is None or last.from_version.status == ModelVersion.Status.FAILED:
        return None
    return last.from_version


# --- Champion / challenger ---------------------------------------------------------------------


@dataclass
class Verdict:
    promote: bool
    reason: str


def _fmt(value: float) -> str:
    return f"{value:.3f}"


def judge(challenger: dict, champion: dict | None, tolerance: float, champion_id: int | None) -> Verdict:
    """Champion/challenger on the held-out set.

    ``challenger`` and ``champion`` are held-out metrics on the same comparisons (see
    ``training.evaluate_on_holdout``). Pairwise agreement decides; on a project without held-out
    comparisons, SRCC against held-out reference ratings does.
    """
    if champion_id is None:
        return Verdict(True, "First model version of the project: nothing to compare with.")
    for metric, label in (("pairwise_agreement", "held-out pairwise agreement"), ("srcc", "held-out SRCC")):
        new, old = challenger.get(metric), (champion or {}).get(metric)
        if new is None or old is None:
            continue
        n = challenger.get("n_comparisons") if metric == "pairwise_agreement" else challenger.get("n_references")
        on = f" on {n} held-out items" if n else ""
        comparison = f"{label} {_fmt(new)} vs {_fmt(old)} for the active version {champion_id}, tolerance {tolerance:g}{on}"
        if new >= old - tolerance:
            return Verdict(True, f"Promoted: {comparison}.")
        return Verdict(False, f"Kept as a candidate: {comparison}.")
    return Verdict(
        False,
        f"Kept as a candidate: no held-out comparisons or reference ratings to compare it with the active "
        f"version {champion_id}. A manager can promote it.",
    )
