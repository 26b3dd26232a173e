"""The project's Models page: versions, the active one, the running training, the last failure,
and the managers' buttons (retrain now, promote, roll back). The work is done by the services."""
from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST, require_safe

from labeling import access
from labeling.project_scope import manager_page
from modeling.models import ModelVersion, Promotion, TrainingRun, TrainingSettings, WarmStartScore
from modeling.services import feature_extraction, promotion, stopping_rule, training_runs, triggers, warm_start


class TrainingSettingsForm(forms.ModelForm):
    class Meta:
        model = TrainingSettings
        fields = ["ranking_lambda", "promotion_tolerance", "train_baseline", "target_srcc", "stop_at_target",
                  "warm_start_version", "criterion"]
        labels = {"ranking_lambda": "λ (tag similarity in the ranking key)",
                  "target_srcc": "Target of expected ranking accuracy (SRCC, 0..1)",
                  "stop_at_target": "Stop serving pairs at the target",
                  "warm_start_version": "Warm start: start from the model of another campaign"}

    def __init__(self, *args, user, project, **kwargs):
        super().__init__(*args, **kwargs)
        # Only versions of projects this manager manages, with this project's encoder and question.
        field = self.fields["warm_start_version"]
        field.queryset = warm_start.eligible_versions(user, project)
        field.empty_label = "None: start from nothing"
        field.label_from_instance = lambda v: (
            f"{v.project.name}, version {v.pk} ({v.get_status_display().lower()}, {v.n_comparisons} comparisons, "
            f"{v.created_at:%Y-%m-%d})")
        if project.criteria:  # several criteria: the model is trained on one of them
            self.fields["criterion"] = forms.ChoiceField(
                label="Train the model on the criterion", required=False,
                choices=[("", "primary (the judgments' outcome)")]
                + [(item["key"], f"{item['key']}: {item['question']}") for item in project.criteria])
        else:
            del self.fields["criterion"]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("stop_at_target") and cleaned.get("target_srcc") is None:
            self.add_error("target_srcc", "Set a target to stop at it.")
        return cleaned


@manager_page(require_safe)
def models_page(request, project):
    """For managers only: versions, runs and failures reveal scores to raters who must judge blind."""
    versions = list(ModelVersion.objects.filter(project=project).select_related("training_run")[:50])
    active = next((v for v in versions if v.is_active), None) or promotion.active_version(project)
    open_run = training_runs.open_run(project)
    last_failed_run = TrainingRun.objects.filter(project=project, status=TrainingRun.Status.FAILED).first()
    last_failed_version = ModelVersion.objects.filter(project=project, status=ModelVersion.Status.FAILED).first()
    # The most recent of the two kinds of failure is "the last failure".
    last_failure = None
    if last_failed_run and (not last_failed_version or last_failed_run.finished_at >= last_failed_version.created_at):
        last_failure = {"what": f"Training run {last_failed_run.pk}", "when": last_failed_run.finished_at,
                        "reason": access.error_message(last_failed_run.error),
                        "kind": last_failed_run.get_failure_kind_display()}
    elif last_failed_version:
        last_failure = {"what": f"Model version {last_failed_version.pk}", "when": last_failed_version.created_at,
                        "reason": last_failed_version.status_reason, "kind": "Cannot serve"}
    scoring = [v for v in versions if v.status == ModelVersion.Status.SCORING]
    context = {
        "project": project,
        "versions": versions,
        "active": active,
        "open_run": open_run,
        "scoring": scoring,
        "last_failure": last_failure,
        "recent_runs": TrainingRun.objects.filter(project=project).select_related("requested_by")[:10],
        "promotions": Promotion.objects.filter(project=project).select_related("decided_by")[:10],
        "decision": triggers.evaluate(project),
        "coverage": feature_extraction.feature_coverage(project),
        "can_manage": True,
        "previous": promotion.previous_version(project),
        "settings_form": TrainingSettingsForm(instance=promotion.training_settings(project), user=request.user,
                                              project=project),
        "can_create_projects": access.can_create_projects(request.user),
        "warm_start": warm_start.warm_start_version(project),
        "warm_start_targets": list(warm_start.projects_to_warm_start(request.user, active)) if active else [],
        "warm_start_scored": WarmStartScore.objects.filter(project=project).count(),
        # Refresh while something is moving, so progress is visible without a reload button.
        "auto_refresh": bool(open_run or scoring),
    }
    return render(request, "modeling/models.html", context)


@manager_page(require_POST)
def retrain(request, project):
    run, created = training_runs.request_training(
        project, trigger=TrainingRun.Trigger.MANUAL, reason=f"requested by {request.user.username}", user=request.user
    )
    if created:
        messages.success(request, f"Training run {run.pk} is queued.")
    else:
        messages.info(request, f"Training run {run.pk} is already {run.status}: only one runs at a time.")
    return redirect("project-models", slug=project.slug)


@manager_page(require_POST)
def training_settings(request, project):
    current = promotion.training_settings(project)
    previous_warm_start = current.warm_start_version_id
    form = TrainingSettingsForm(request.POST, instance=current, user=request.user, project=project)
    if form.is_valid():
        form.instance.project = project
        with transaction.atomic():
            form.save()
            stopping_rule.apply_stopping_rule(project)  # a new target, or the rule turned on or off, applies at once
            warm_start.settings_saved(project, previous_warm_start)  # a new warm start is scored on the worker
        messages.success(request, "Training settings saved; the next training run uses them.")
    else:
        errors = "; ".join(f"{form.fields[f].label or f}: {' '.join(e)}" for f, e in form.errors.items())
        messages.error(request, f"Training settings not saved. {errors}")
    return redirect("project-models", slug=project.slug)


def _promotion_action(request, project, version_id, action, done: str):
    version = get_object_or_404(ModelVersion, pk=version_id, project=project)
    try:
        action(version, user=request.user, reason=request.POST.get("reason", ""))
    except promotion.PromotionRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, done.format(version=version.pk))
    return redirect("project-models", slug=project.slug)


@manager_page(require_POST)
def promote(request, project, version_id):
    return _promotion_action(request, project, version_id, promotion.promote,
                             "Version {version} is scoring every image; it becomes active when that is done.")


@manager_page(require_POST)
def rollback(request, project, version_id):
    return _promotion_action(request, project, version_id, promotion.rollback,
                             "Rolling back to version {version}: it becomes active once its scores are complete.")


@manager_page(require_POST, writes_project=False)  # an archived campaign's model may start the next one
def new_campaign(request, project, version_id):
    """Start a new campaign (project) warm-started from this version: for managers who may create projects."""
    if not access.can_create_projects(request.user):
        raise PermissionDenied("You may not create projects; ask an administrator.")
    version = get_object_or_404(ModelVersion, pk=version_id, project=project)
    try:
        new = warm_start.start_campaign(request.user, version)
    except warm_start.WarmStartInvalid as exc:
        messages.error(request, exc.message)
        return redirect("project-models", slug=project.slug)
    messages.success(request, f"Campaign “{new.name}” created, warm-started from version {version.pk}: its images "
                     "are ranked by that model from the first judgment. Upload images next.")
    return redirect("project-upload", slug=new.slug)


@manager_page(require_POST, writes_project=False)  # it writes to the target, checked below (an archived one: 403)
def warm_start_into(request, project, version_id):
    """Make this version the warm start of another project the caller manages (one click on the Models page)."""
    version = get_object_or_404(ModelVersion, pk=version_id, project=project)
    slug = request.POST.get("project", "")
    if not slug:
        messages.error(request, "Choose the project to warm-start.")
        return redirect("project-models", slug=project.slug)
    target = access.writes_to(access.project_role(request.user, slug).require_manager("change its training settings"),
                              request.method).project
    try:
        warm_start.check_warm_start(request.user, target, version.pk)
    except warm_start.WarmStartInvalid as exc:
        messages.error(request, exc.message)
        return redirect("project-models", slug=project.slug)
    warm_start.set_warm_start(target, version)
    messages.success(request, f"“{target.name}” now starts from version {version.pk}: its images are being scored "
                     "by it, and its ranking uses them from the first judgment.")
    return redirect("project-models", slug=target.slug)
