"""Sign-up links (a manager invites raters or managers to a project with a token in a URL), and what a
manager changes about a membership afterwards: active or not, excluded from training or not."""
from __future__ import annotations

import logging
import secrets
from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from labeling.models import Invite, Membership, Project
import worker.dispatch as dispatch

logger = logging.getLogger(__name__)


class InviteUnusable(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def create_invite(
    project: Project, created_by, *, role: str = Membership.Role.RATER, max_uses: int = 1, days: int = 14, note: str = ""
) -> Invite:
    return Invite.objects.create(
        project=project,
        token=secrets.token_urlsafe(24),
        role=role,
        max_uses=max(1, max_uses),
        expires_at=timezone.now() + timedelta(days=max(1, days)),
        note=note,
        created_by=created_by,
    )


def usable_invite(token: str) -> Invite:
    """The invite for ``token``, or InviteUnusable saying why it cannot be used."""
    invite = Invite.objects.select_related("project").filter(token=token).first()
    if invite is None:
        raise InviteUnusable("This invitation link is not valid. Ask the project manager for a new one.")
    if not invite.is_active:
        raise InviteUnusable("This invitation was revoked. Ask the project manager for a new one.")
    if invite.expires_at <= timezone.now():
        raise InviteUnusable("This invitation has expired. Ask the project manager for a new one.")
    if invite.uses >= invite.max_uses:
        raise InviteUnusable("This invitation has already been used. Ask the project manager for a new one.")
    if invite.project.archived_at is not None:
        raise InviteUnusable("This project is archived and takes no new members.")
    return invite


def accept_invite(token: str, user) -> Membership:
    """Make ``user`` a member with the invite's role.

    An invite neither reactivates nor promotes: a deactivated member stays deactivated (InviteUnusable),
    and an existing member keeps the role they have, whatever role the link carries. Neither uses the link.
    """
    with transaction.atomic():
        invite = usable_invite(token)
        invite = Invite.objects.select_for_update().get(pk=invite.pk)
        if invite.uses >= invite.max_uses:
            raise InviteUnusable("This invitation has already been used. Ask the project manager for a new one.")
        membership = Membership.objects.filter(project=invite.project, user=user).first()
        if membership is not None:
            if not membership.is_active:
                raise InviteUnusable(
                    "Your membership of this project was deactivated. Only a project manager can restore it."
                )
            return membership
        membership = Membership.objects.create(project=invite.project, user=user, role=invite.role)
        Invite.objects.filter(pk=invite.pk).update(uses=F("uses") + 1)
        return membership


def set_membership_active(membership: Membership, active: bool) -> None:
    """Deactivate (or reactivate) a member. A deactivated rater's live leases end so their slots return."""
    from labeling.models import PairLease
    from labeling.services.pair_queue import refresh_candidate

    with transaction.atomic():
        membership.is_active = active
        membership.save(update_fields=["is_active"])
        if not active:
            live = PairLease.objects.select_for_update().filter(
                project=membership.project, rater=membership.user, state=PairLease.State.LIVE
            )
            candidate_ids = set(live.values_list("candidate_id", flat=True))
            live.update(state=PairLease.State.RELEASED)
            for candidate_id in candidate_ids:
                refresh_candidate(candidate_id, membership.project)


def set_rater_excluded(project: Project, user_id: int, excluded: bool, *, by=None, enqueue: bool = True) -> Membership:
    """Exclude a rater's comparisons from training and the human scores, or take them back in.

    Nothing is deleted: the flag decides what the next fit and training read. Raises
    ``Membership.DoesNotExist`` when the user is not a member of the project.
    """
    membership = Membership.objects.get(project=project, user_id=user_id)
    if membership.excluded_from_training != excluded:
        membership.excluded_from_training = excluded
        membership.save(update_fields=["excluded_from_training"])
        logger.info("%s %s rater %s in %s", by or "someone", "excluded" if excluded else "re-included", user_id,
                    project.slug)
        if enqueue:
            dispatch.send_metrics_refresh(project.pk)
    return membership
