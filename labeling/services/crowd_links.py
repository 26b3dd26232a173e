"""Campaign links for crowd platforms: a passwordless rater identity per external worker id, a quota, and a
completion code or redirect at the end.

- ``create_link``: a manager's link with a secret token, the URL parameter carrying the worker id
  (``PROLIFIC_PID``, ``workerId``, ...), a quota of judgments per worker, a completion code or URL, an
  expiry and a maximum number of workers.
- ``open_link``: the worker's visit. The first visit with a worker id makes a rater (an account with no
  usable password, a rater membership, a ``CrowdWorker`` row keyed by (project, worker id)); a later
  visit with the same id finds that rater again, so the quota is never doubled. The caller signs the
  rater in with a session cookie (``labeling/crowd_views.py``), which the API accepts as well.
- ``quota_gate``: read by ``next_pair``: at the quota it raises ``QuotaReached`` (410 with the
  completion code or URL); while the worker's live leases already fill the quota it hands back the oldest
  instead of a new pair. Nothing is read for a rater with a password (not a crowd identity).
- What a crowd identity may reach at all (rating only) is decided in ``labeling/access.py``
  (``crowd_worker_may``), enforced for every request by ``labeling/crowd_confinement.py``.
"""
from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from core.refusals import Refusal
from labeling.models import CampaignLink, CrowdWorker, Membership, PairLease, Project
from labeling.services import rater_counts

WORKER_ID = re.compile(r"^[A-Za-z0-9_.:@-]{1,200}$")
WORKER_PARAM = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")
MAX_PLATFORM_PARAMS = 10  # other URL parameters kept per visit (e.g. STUDY_ID, SESSION_ID, assignmentId)


class LinkUnusable(Exception):
    """The link cannot admit this visit; ``message`` says why, ``status`` is the page's HTTP status."""

    def __init__(self, message: str, status: int = 410):
        super().__init__(message)
        self.message, self.status = message, status


class QuotaReached(Refusal):
    """A crowd worker judged their quota: they are done (the answer carries the completion code or URL)."""

    code = "quota_reached"


QUOTA_MESSAGE = "You have finished this study. Thank you for your judgments!"


def create_link(project: Project, created_by, *, name: str = "", worker_param: str = "PROLIFIC_PID", quota: int = 50,
                completion_code: str = "", completion_url: str = "", days: int = 30, max_workers: int = 100
                ) -> CampaignLink:
    if not WORKER_PARAM.match(worker_param):
        raise ValueError("The worker id parameter is a name of letters, digits and _ (e.g. PROLIFIC_PID).")
    if not completion_code and not completion_url:
        raise ValueError("Give a completion code or a completion URL: the worker needs one at the end.")
    return CampaignLink.objects.create(
        project=project, token=secrets.token_urlsafe(24), name=name, worker_param=worker_param, quota=max(1, quota),
        completion_code=completion_code, completion_url=completion_url, max_workers=max(1, max_workers),
        expires_at=timezone.now() + timedelta(days=max(1, days)), created_by=created_by,
    )


def usable_link(token: str) -> CampaignLink:
    link = CampaignLink.objects.select_related("project").filter(token=token).first()
    if link is None:
        raise LinkUnusable("This study link is not valid.", status=404)
    if not link.is_active or link.project.archived_at is not None:
        raise LinkUnusable("This study is closed. Thank you for your interest.")
    if link.expires_at <= timezone.now():
        raise LinkUnusable("This study link has expired. Thank you for your interest.")
    return link


def open_link(token: str, params: dict[str, str]) -> CrowdWorker:
    """The crowd worker for this visit (made on the first one); raises ``LinkUnusable``."""
    link = usable_link(token)
    external_id = (params.get(link.worker_param) or "").strip()
    if not WORKER_ID.match(external_id):
        raise LinkUnusable(
            f"This study link needs your worker id (the {link.worker_param} parameter): open it from the study "
            "platform.", status=400)
    others = {key: str(value)[:200] for key, value in list(params.items())[:MAX_PLATFORM_PARAMS + 1]
              if key != link.worker_param}
    others = dict(list(others.items())[:MAX_PLATFORM_PARAMS])
    try:
        with transaction.atomic():
            worker = _find_or_admit(link, external_id, others)
    except IntegrityError:  # the same worker's two first visits at once: the other one made the rater
        worker = CrowdWorker.objects.select_related("user", "link").get(project=link.project, external_id=external_id)
    if not worker.user.is_active or not Membership.objects.filter(project=link.project, user=worker.user,
                                                                   is_active=True).exists():
        raise LinkUnusable("Your participation in this study was ended by its manager.", status=403)
    return worker


def _find_or_admit(link: CampaignLink, external_id: str, params: dict) -> CrowdWorker:
    now = timezone.now()
    worker = CrowdWorker.objects.select_related("user", "link").filter(
        project=link.project, external_id=external_id).first()
    if worker is not None:
        CrowdWorker.objects.filter(pk=worker.pk).update(last_seen_at=now, platform_params=params)
        return worker
    CampaignLink.objects.select_for_update().filter(pk=link.pk).first()  # one admission at a time per link
    if CrowdWorker.objects.filter(link=link).count() >= link.max_workers:
        raise LinkUnusable("This study is full. Thank you for your interest.")
    user = get_user_model()(username=_username(link.project, external_id))
    user.set_unusable_password()
    user.save()
    Membership.objects.create(project=link.project, user=user, role=Membership.Role.RATER)
    return CrowdWorker.objects.create(project=link.project, link=link, user=user, external_id=external_id,
                                      platform_params=params, last_seen_at=now)


def _username(project: Project, external_id: str) -> str:
    """A stable account name that reveals nothing of the worker id: crowd-<project>-<hash>."""
    digest = hashlib.sha256(f"{project.pk}:{external_id}".encode()).hexdigest()[:16]
    return f"crowd-{project.pk}-{digest}"


def crowd_worker(project: Project, rater) -> CrowdWorker | None:
    if rater.has_usable_password():  # accounts that sign in with a password are not crowd identities
        return None
    return CrowdWorker.objects.select_related("link").filter(project=project, user=rater).first()


def quota_gate(project: Project, rater) -> PairLease | None:
    """For a crowd worker: ``QuotaReached`` once they judged their quota; their oldest live lease while judged
    pairs and live leases already fill it (no new pair); None otherwise, and for everyone else."""
    worker = crowd_worker(project, rater)
    if worker is None:
        return None
    now = timezone.now()
    judged = rater_counts.rater_total(project, rater)
    if judged >= worker.link.quota:
        CrowdWorker.objects.filter(pk=worker.pk, completed_at=None).update(completed_at=now)
        raise QuotaReached(QUOTA_MESSAGE)
    live = PairLease.objects.filter(project=project, rater=rater, state=PairLease.State.LIVE, expires_at__gt=now)
    if judged + live.count() >= worker.link.quota:
        return live.order_by("created_at", "id").first()
    return None


def completion_for(project: Project, rater) -> dict:
    """What a crowd worker who is done needs (the completion code or URL, the quota); {} for anyone else."""
    worker = crowd_worker(project, rater)
    if worker is None:
        return {}
    return {"completion_code": worker.link.completion_code or None,
            "completion_url": worker.link.completion_url or None, "quota": worker.link.quota}


def link_url(request, link: CampaignLink) -> str:
    """The URL to paste into the platform, with the worker id parameter left for the platform to fill."""
    return request.build_absolute_uri(reverse("crowd-link", args=[link.token])) + f"?{link.worker_param}="
