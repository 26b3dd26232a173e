"""The Webhooks page of a project (managers): register URLs for events and read the delivery log."""
from __future__ import annotations

from django import forms
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from core import outbound
from labeling.project_scope import manager_page
from labeling.views import form_methods
from labeling.models import Webhook, WebhookDelivery
from labeling.services import webhooks

LOG_LENGTH = 50


class WebhookForm(forms.Form):
    url = forms.URLField(max_length=1000, label="URL", assume_scheme="https")
    events = forms.MultipleChoiceField(choices=Webhook.Event.choices, widget=forms.CheckboxSelectMultiple)
    target_judgments = forms.IntegerField(required=False, min_value=1, label="Target number of judgments")

    def clean_url(self):
        url = self.cleaned_data["url"]
        try:
            outbound.check_url(url)
        except outbound.OutboundRefused as exc:
            raise forms.ValidationError(str(exc)) from None
        return url

    def clean(self):
        data = super().clean()
        if Webhook.Event.JUDGMENTS_TARGET_REACHED in data.get("events", []) and not data.get("target_judgments"):
            self.add_error("target_judgments", "Needed for the target event.")
        return data


@manager_page(form_methods)
def webhooks_page(request, project):
    form = WebhookForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        hook = webhooks.register(project, form.cleaned_data["url"], form.cleaned_data["events"], user=request.user,
                                 target_judgments=form.cleaned_data["target_judgments"])
        messages.success(request, f"Webhook added. Its signing secret: {hook.secret}")
        return redirect("project-webhooks", slug=project.slug)
    deliveries = (
        WebhookDelivery.objects.filter(webhook__project=project).select_related("webhook").order_by("-id")[:LOG_LENGTH]
    )
    return render(request, "labeling/project_webhooks.html", {
        "project": project, "form": form, "hooks": Webhook.objects.filter(project=project), "deliveries": deliveries,
    })


@manager_page(require_POST)
def webhook_delete(request, project, hook_id):
    get_object_or_404(Webhook, project=project, pk=hook_id).delete()
    messages.success(request, "Webhook removed.")
    return redirect("project-webhooks", slug=project.slug)
