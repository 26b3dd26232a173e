"""Campaign links: the page a crowd worker opens (public) and the managers' page that makes the links.

Opening a link signs the worker in as their passwordless rater (``labeling.services.crowd_links``) with a
session cookie marked as a crowd session, which ``labeling/crowd_confinement.py`` keeps to rating.
"""
from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth import login
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe

from labeling import access, login_limits
from labeling.models import CampaignLink, Comparison, CrowdWorker
from labeling.services import crowd_links
from labeling.project_scope import manager_page
from labeling.views import form_methods


@require_safe
def open_campaign_link(request, token):
    """A crowd worker arrives from the platform: sign them in (first visit: a new rater) and start rating."""
    if login_limits.is_locked_out(request):
        return login_limits.lockout_response(request)
    try:
        worker = crowd_links.open_link(token, request.GET.dict())
    except crowd_links.LinkUnusable as exc:
        if exc.status == 404:
            login_limits.record_failed_guess(request)  # guessing tokens counts as failed sign-ins
        return render(request, "labeling/crowd_message.html", {"message": exc.message, "title": "Study"},
                      status=exc.status)
    if request.user.is_authenticated and request.user.pk != worker.user_id:
        request.session.flush()  # someone else was signed in on this browser: not any more
    login(request, worker.user, backend="django.contrib.auth.backends.ModelBackend")
    request.session[access.CROWD_SESSION_KEY] = worker.pk
    return redirect("project-rate", slug=worker.project.slug)


class CampaignLinkForm(forms.Form):
    name = forms.CharField(required=False, max_length=200, help_text="E.g. the study's name on the platform.")
    worker_param = forms.CharField(initial="PROLIFIC_PID", max_length=40, label="Worker id parameter",
                                   help_text="PROLIFIC_PID (Prolific), workerId (MTurk), or your platform's name.")
    quota = forms.IntegerField(min_value=1, max_value=100000, initial=50, help_text="Judgments per worker.")
    completion_code = forms.CharField(required=False, max_length=100)
    completion_url = forms.URLField(required=False, max_length=1000, assume_scheme="https",
                                    help_text="Or: where a worker who is done is sent.")
    days = forms.IntegerField(min_value=1, max_value=365, initial=30, label="Valid for (days)")
    max_workers = forms.IntegerField(min_value=1, max_value=100000, initial=100)

    def clean_worker_param(self):
        value = self.cleaned_data["worker_param"]
        if not crowd_links.WORKER_PARAM.match(value):
            raise forms.ValidationError("Letters, digits and _ only, starting with a letter (e.g. PROLIFIC_PID).")
        return value

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("completion_code") and not cleaned.get("completion_url") and not self.errors:
            raise forms.ValidationError("Give a completion code or a completion URL: the worker needs one at the end.")
        return cleaned


@manager_page(form_methods)
def campaign_links_page(request, project):
    form = CampaignLinkForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        link = crowd_links.create_link(project, request.user, **form.cleaned_data)
        messages.success(request, "Campaign link created: paste it into the crowd platform.")
        return redirect(f"{request.path}#link-{link.pk}")
    links = list(CampaignLink.objects.filter(project=project).order_by("-created_at"))
    for link in links:
        link.url = crowd_links.link_url(request, link)
        workers = CrowdWorker.objects.filter(link=link)
        link.worker_count = workers.count()
        link.completed_count = workers.exclude(completed_at=None).count()
        link.judgments = Comparison.objects.filter(project=project, rater__crowd_worker__link=link).count()
        link.expired = link.expires_at <= timezone.now()
    return render(request, "labeling/project_campaign_links.html", {"project": project, "form": form, "links": links})


@manager_page(require_POST)
def campaign_link_close(request, project, link_id):
    link = get_object_or_404(CampaignLink, project=project, pk=link_id)
    link.is_active = False
    link.save(update_fields=["is_active"])
    messages.success(request, "Link closed: new visits are refused (workers already in cannot resume either).")
    return redirect("project-campaign-links", slug=project.slug)
