"""Server-rendered pages of the human side: the project list, the rating page, the manager pages."""

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_not_required, login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from labeling import access, login_limits
from labeling.project_scope import manager_page
from labeling.forms import GoldPairForm, InviteForm, ProjectForm, SignupForm, UploadForm
from labeling.models import GoldPair, Image, Invite, Membership, Project
from labeling.services import campaign_target, comparison_groups, crowd_links, instructions, rater_counts
from labeling.services import invites as invite_service
from labeling.services.comparisons import project_progress, undo_seconds
from labeling.services.imports import RejectedImage, import_one, import_session, read_upload
from labeling.services.pair_queue import reopen_for_overlap


form_methods = require_http_methods(["GET", "HEAD", "POST"])  # a page with a form


def project_for(request, slug: str) -> Project:
    """The project for an active member (404 for anyone else: a foreign project looks like a missing one)."""
    return access.project_role(request.user, slug).project


can_create_projects = access.can_create_projects


@login_required
@require_safe
def project_list(request):
    projects = campaign_target.with_active_image_counts(access.projects_for(request.user).filter(archived_at=None))
    return render(
        request,
        "labeling/project_list.html",
        {"projects": projects, "can_create": can_create_projects(request.user)},
    )


@login_required
@require_safe
def project_detail(request, slug):
    role = access.project_role(request.user, slug)
    project = role.project
    counts = {
        "images": project.images.filter(archived_at=None).count(),
        "tags": project.tags.count(),
        "comparisons": rater_counts.project_total(project),  # the counters: no count of comparisons
        "my_comparisons": rater_counts.rater_total(project, request.user),
    }
    recent = Image.objects.filter(project=project, archived_at=None).order_by("-id")[:48]
    can_manage = role.is_manager
    return render(
        request,
        "labeling/project_detail.html",
        {
            "project": project,
            "counts": counts,
            "images": recent,
            "can_manage": can_manage,
            "sees_image_sources": role.sees_image_sources,  # raters judge blind: no file names, not even as alt text
            # Managers only: the grouping names a metadata field.
            "groups": comparison_groups.group_summary(project) if can_manage else None,
        },
    )


@login_required
@require_safe
def rate(request, slug):
    project = project_for(request, slug)
    my_count = rater_counts.rater_total(project, request.user)
    examples = [{"pair": example, "explanation": instructions.render_markdown(example.explanation)}
                for example in instructions.example_pairs(project)]
    rendered = instructions.render_markdown(project.instructions)
    return render(
        request,
        "labeling/rate.html",
        {
            "project": project,
            "my_count": my_count,
            "undo_seconds": undo_seconds(),
            "closed_vocabulary": project.tag_vocabulary == Project.TagVocabulary.CLOSED,
            # The instructions: shown before the first pair, and behind the help key.
            "rendered": rendered,
            "examples": examples,
            "show_instructions_first": my_count == 0 and bool(rendered or examples),
            "crowd_quota": crowd_links.completion_for(project, request.user).get("quota"),
        },
    )


# --- Manager pages --------------------------------------------------------------------------------


@login_required
@form_methods
def project_create(request):
    if not can_create_projects(request.user):
        raise PermissionDenied("You may not create projects; ask an administrator.")
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            project = form.save(commit=False)
            project.created_by = request.user
            project.save()
            Membership.objects.create(project=project, user=request.user, role=Membership.Role.MANAGER)
        messages.success(request, f"Project “{project.name}” created. Upload images next.")
        return redirect("project-upload", slug=project.slug)
    return render(request, "labeling/project_form.html", {"form": form, "project": None})


@manager_page(form_methods)
def project_edit(request, project):
    old_overlap = project.overlap
    form = ProjectForm(request.POST or None, instance=project)
    if request.method == "POST" and form.is_valid():
        project = form.save()
        if project.overlap != old_overlap:
            reopen_for_overlap(project)
        campaign_target.refresh_completion(project)  # a new target may complete or reopen the campaign
        messages.success(request, "Project settings saved.")
        return redirect("project-detail", slug=project.slug)
    return render(request, "labeling/project_form.html", {"form": form, "project": project})


@manager_page(form_methods)
def project_upload(request, project):
    form = UploadForm(request.POST or None, request.FILES or None)
    report = None
    if request.method == "POST" and form.is_valid():
        with import_session(project) as report:
            for upload in form.cleaned_data["files"]:
                try:
                    data = read_upload(upload)
                except RejectedImage as exc:
                    report.rejected.append((upload.name, str(exc)))
                    continue
                import_one(report, project, upload.name, data, tags=form.cleaned_data["tags"])
        if report.imported:
            messages.success(request, f"Imported {report.imported} image(s).")
    return render(request, "labeling/project_upload.html", {"project": project, "form": form, "report": report})


@manager_page(form_methods)
def project_raters(request, project):
    form = InviteForm(request.POST or None)
    new_invite = None
    if request.method == "POST" and form.is_valid():
        new_invite = invite_service.create_invite(
            project, request.user, role=form.cleaned_data["role"], max_uses=form.cleaned_data["max_uses"],
            days=form.cleaned_data["days"], note=form.cleaned_data["note"],
        )
        form = InviteForm()
    members = (
        Membership.objects.filter(project=project)
        .select_related("user")
        .order_by("-is_active", "role", "user__username")
    )
    invites = Invite.objects.filter(project=project).order_by("-created_at")[:50]
    return render(
        request,
        "labeling/project_raters.html",
        {
            "project": project,
            "members": members,
            "invites": invites,
            "form": form,
            "new_invite": new_invite,
            "new_invite_url": request.build_absolute_uri(reverse("signup", args=[new_invite.token])) if new_invite else "",
        },
    )


@manager_page(require_POST)
def membership_toggle(request, project, membership_id):
    """Deactivate or reactivate a member, or include/exclude their comparisons from training."""
    membership = get_object_or_404(Membership, pk=membership_id, project=project)
    action = request.POST.get("action")
    if membership.user_id == request.user.pk and action == "deactivate":
        messages.error(request, "You cannot deactivate yourself.")
    elif action in ("deactivate", "activate"):
        invite_service.set_membership_active(membership, action == "activate")
        messages.success(request, f"{membership.user.username} is {'active' if action == 'activate' else 'deactivated'}.")
    elif action in ("exclude", "include"):
        # This also refits the human scores and the agreement report (in the background).
        invite_service.set_rater_excluded(project, membership.user_id, action == "exclude", by=request.user.username)
        messages.success(
            request, f"{membership.user.username}'s comparisons are {'excluded from' if action == 'exclude' else 'used in'} training."
        )
    else:
        messages.error(request, "Unknown action.")
    return redirect("project-raters", slug=project.slug)


@manager_page(require_POST)
def invite_revoke(request, project, invite_id):
    Invite.objects.filter(pk=invite_id, project=project).update(is_active=False)
    messages.success(request, "Invitation revoked.")
    return redirect("project-raters", slug=project.slug)


@manager_page(require_safe)
def project_progress_page(request, project):
    progress = project_progress(project, days=30)
    peak = max((row["comparisons"] for row in progress["per_day"]), default=0)
    for row in progress["per_day"]:
        row["percent"] = round(100 * row["comparisons"] / peak) if peak else 0
    return render(request, "labeling/project_progress.html", {"project": project, "progress": progress})


@manager_page(form_methods)
def project_gold(request, project):
    form = GoldPairForm(request.POST or None, project=project)
    if request.method == "POST" and form.is_valid():
        GoldPair.objects.create(
            project=project, image_a_id=form.cleaned_data["image_a"], image_b_id=form.cleaned_data["image_b"],
            expected=form.cleaned_data["expected"], note=form.cleaned_data["note"], created_by=request.user,
        )
        messages.success(request, "Gold pair added.")
        return redirect("project-gold", slug=project.slug)
    gold_pairs = GoldPair.objects.filter(project=project).select_related("image_a", "image_b").order_by("-id")[:200]
    return render(request, "labeling/project_gold.html", {"project": project, "form": form, "gold_pairs": gold_pairs})


# --- Sign-up with an invitation -------------------------------------------------------------------


@login_not_required  # posted to before any account exists (config/request_limits.py)
@form_methods
def signup(request, token):
    """The invitation link: create an account and join the project (or join with the account signed in)."""
    if login_limits.is_locked_out(request):
        return login_limits.lockout_response(request)
    try:
        invite = invite_service.usable_invite(token)
    except invite_service.InviteUnusable as exc:
        if not Invite.objects.filter(token=token).exists():
            login_limits.record_failed_guess(request)
        return render(request, "registration/signup.html", {"error": exc.message}, status=410)
    form = None if request.user.is_authenticated else SignupForm(request.POST or None)
    if request.method == "POST" and (form is None or form.is_valid()):
        try:
            with transaction.atomic():  # no account is left behind if the invitation was used up meanwhile
                user = request.user if form is None else form.save()
                membership = invite_service.accept_invite(token, user)
        except invite_service.InviteUnusable as exc:
            return render(request, "registration/signup.html", {"error": exc.message}, status=410)
        if form is not None:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, f"Welcome to {membership.project.name}.")
        return redirect("project-rate", slug=membership.project.slug)
    return render(request, "registration/signup.html", {"invite": invite, "form": form})
