"""Reinstating a rater who failed the qualification or was paused by the running gold check (managers),
from the progress page; the rule is in ``labeling.services.qualification``."""
from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from labeling.models import Membership
from labeling.services import qualification
from labeling.project_scope import manager_page


@manager_page(require_POST)
def rater_reinstate(request, project, membership_id):
    membership = get_object_or_404(Membership, pk=membership_id, project=project)
    qualification.reinstate(project, membership.user_id, by=request.user)
    messages.success(request, f"{membership.user.username} may rate again; their judgments count again.")
    return redirect("project-progress", slug=project.slug)
