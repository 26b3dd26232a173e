"""Qualification: a rater answers gold pairs before ordinary pairs are served, and gold keeps checking.

Where ``project.qualification_gold_pairs`` (N) is above 0:

- A new rater is served only gold pairs until they have answered N of them (``gold_only``). At
  accuracy ``project.qualification_min_accuracy`` (X) or better they pass; below it they fail, are told
  so politely on their next request (``NotQualified``) and get no more pairs.
- After passing, every gold judgment checks the rater's running accuracy: over their last
  ``running_window(N)`` gold judgments since ``Membership.gold_checked_since``, once there are at least
  N. Below X the rater is paused (``RaterPaused`` on the next request; their live leases end).
- A manager can reinstate a failed or paused rater (``reinstate``): the running accuracy then counts
  afresh from that moment.
- A failed or paused rater's judgments are left out of training and the human scores, as an excluded
  rater's are (``modeling/services/datasets.py::excluded_rater_ids`` reads these fields); reinstating
  takes them back. Every change is recorded as a ``RaterEvent`` with its reason.

Without a qualification round (N = 0) none of this runs and pair serving reads nothing more.
"""
from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.refusals import Refusal
from labeling.models import Comparison, Membership, PairLease, Project, RaterEvent
from labeling.services.pair_queue import refresh_candidate
import worker.dispatch as dispatch

log = logging.getLogger(__name__)


class NotQualified(Refusal):
    """The rater did not pass the qualification: no pairs. The message reveals no answer or setting."""

    code = "not_qualified"


class RaterPaused(Refusal):
    code = "rater_paused"


NOT_QUALIFIED_MESSAGE = (
    "Thank you for taking part. Your answers to the qualification pairs did not reach the agreement this study "
    "needs, so we cannot offer you more pairs in this project."
)
PAUSED_MESSAGE = (
    "Thank you for your judgments. Your recent answers to check pairs fell below the agreement this study needs, "
    "so rating is paused for you. The project's manager has been told and may let you continue."
)


def running_window(required: int) -> int:
    """How many recent gold judgments the running accuracy reads: twice the qualification round, at least 10."""
    return max(2 * required, 10)


def gold_only(project: Project, rater) -> bool:
    """Whether ``rater`` may be served only gold pairs now (still qualifying); raises ``NotQualified`` or
    ``RaterPaused`` when they may be served nothing. False at once where the project has no qualification."""
    if project.qualification_gold_pairs == 0:
        return False
    membership = (Membership.objects.filter(project=project, user=rater)
                  .only("qualification", "paused_at").first())
    if membership is None:  # site staff without a membership: not a rater of the study
        return False
    if membership.qualification == Membership.Qualification.FAILED:
        raise NotQualified(NOT_QUALIFIED_MESSAGE)
    if membership.paused_at is not None:
        raise RaterPaused(PAUSED_MESSAGE)
    return membership.qualification != Membership.Qualification.PASSED


def gold_judged(project: Project, rater) -> None:
    """After a gold judgment of ``rater`` is stored (in its transaction): decide the qualification, or check
    the running accuracy and pause the rater below the threshold."""
    required = project.qualification_gold_pairs
    if required == 0:
        return
    membership = Membership.objects.select_for_update().filter(project=project, user=rater).first()
    if membership is None or membership.qualification == Membership.Qualification.FAILED or membership.paused_at:
        return
    graded = Comparison.objects.filter(project=project, rater=rater, is_gold=True, gold_correct__isnull=False)
    threshold = project.qualification_min_accuracy
    if membership.qualification != Membership.Qualification.PASSED:
        answers = list(graded.order_by("id").values_list("gold_correct", flat=True)[:required])
        if len(answers) < required:
            return
        accuracy = sum(answers) / required
        summary = f"{sum(answers)} of {required} qualification pairs right ({accuracy:.0%}; needed {threshold:.0%})"
        if accuracy >= threshold:
            _change(project, membership, Membership.Qualification.PASSED, RaterEvent.Kind.QUALIFIED, summary)
        else:
            _change(project, membership, Membership.Qualification.FAILED, RaterEvent.Kind.FAILED, summary)
        return
    if membership.gold_checked_since is not None:
        graded = graded.filter(created_at__gte=membership.gold_checked_since)
    answers = list(graded.order_by("-id").values_list("gold_correct", flat=True)[:running_window(required)])
    if len(answers) < required:
        return
    accuracy = sum(answers) / len(answers)
    if accuracy < threshold:
        reason = (f"running gold accuracy {accuracy:.0%} ({sum(answers)} of the last {len(answers)}) "
                  f"below {threshold:.0%}")
        _change(project, membership, membership.qualification, RaterEvent.Kind.PAUSED, reason, pause=True)


def reinstate(project: Project, user_id: int, *, by=None) -> Membership:
    """A manager lets a failed or paused rater rate again; their judgments count again. Raises
    ``Membership.DoesNotExist`` for a user who is not a member. Nothing happens to a rater in good standing."""
    with transaction.atomic():
        membership = Membership.objects.select_for_update().get(project=project, user_id=user_id)
        failed = membership.qualification == Membership.Qualification.FAILED
        if not failed and membership.paused_at is None:
            return membership
        reason = "qualification failed earlier" if failed else f"paused earlier: {membership.pause_reason}"
        membership.qualification = Membership.Qualification.PASSED if failed else membership.qualification
        membership.paused_at, membership.gold_checked_since = None, timezone.now()
        membership.save(update_fields=["qualification", "paused_at", "gold_checked_since"])
        RaterEvent.objects.create(project=project, user_id=user_id, kind=RaterEvent.Kind.REINSTATED,
                                  reason=reason[:300], by=by)
    dispatch.send_metrics_refresh(project.pk)
    return membership


def excluded_condition() -> Q:
    """Memberships whose judgments training and the human scores leave out for their standing."""
    return Q(qualification=Membership.Qualification.FAILED) | Q(paused_at__isnull=False)


def _change(project, membership, qualification: str, kind: str, reason: str, *, pause: bool = False) -> None:
    membership.qualification = qualification
    fields = ["qualification"]
    if pause:
        membership.paused_at, membership.pause_reason = timezone.now(), reason[:300]
        fields += ["paused_at", "pause_reason"]
    membership.save(update_fields=fields)
    RaterEvent.objects.create(project=project, user_id=membership.user_id, kind=kind, reason=reason[:300])
    if kind in (RaterEvent.Kind.FAILED, RaterEvent.Kind.PAUSED):
        # Their pairs go back to the pool; the next fit leaves their judgments out.
        live = PairLease.objects.filter(project=project, rater_id=membership.user_id, state=PairLease.State.LIVE)
        candidate_ids = set(live.values_list("candidate_id", flat=True))
        live.update(state=PairLease.State.RELEASED)
        for candidate_id in candidate_ids:
            refresh_candidate(candidate_id, project)
        dispatch.send_metrics_refresh(project.pk)
    log.info("rater %s in %s: %s (%s)", membership.user_id, project.slug, kind, reason)
