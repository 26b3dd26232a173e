"""The Import page of a project (managers): start a bulk import job and follow its progress."""
from __future__ import annotations

from django import forms
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST, require_safe

from labeling.models import ImportJob, Project
from labeling.project_scope import manager_page
from labeling.views import form_methods
from labeling.services import import_jobs

ISSUES_SHOWN = 200


class ImportJobForm(forms.Form):
    archive = forms.FileField(required=False, label="Archive (zip or tar)",
                              help_text="Any number of JPEG, PNG or WebP files, in folders or not.")
    folder = forms.CharField(required=False, max_length=1000, label="Or a folder on the server",
                             help_text="A path under the server's import root (TAGRANK_IMPORT_ROOT).")
    manifest = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 5}),
                               label="Or a manifest", help_text="One http(s):// URL or s3://bucket/key per line.")


@manager_page(form_methods)
def project_imports(request, project):
    form = ImportJobForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        archive = form.cleaned_data["archive"]
        try:
            job = import_jobs.create_job(
                project, request.user, archive=archive, archive_name=archive.name if archive else "",
                folder=form.cleaned_data["folder"].strip(), manifest=form.cleaned_data["manifest"],
            )
        except import_jobs.ImportJobRefused as exc:
            form.add_error(None, str(exc))
        else:
            return redirect("project-import-job", slug=project.slug, job_id=job.pk)
    jobs = ImportJob.objects.filter(project=project)[:50]
    return render(request, "labeling/project_imports.html", {"project": project, "form": form, "jobs": jobs})


def _job(project: Project, job_id: int) -> ImportJob:
    return get_object_or_404(ImportJob, project=project, pk=job_id)


@manager_page(require_safe)
def import_job_page(request, project, job_id):
    job = _job(project, job_id)
    issues = list(job.issues.order_by("position")[: ISSUES_SHOWN + 1])
    return render(request, "labeling/import_job.html", {
        "project": project, "job": job, "issues": issues[:ISSUES_SHOWN], "more_issues": len(issues) > ISSUES_SHOWN,
        "percent": round(100 * job.position / job.total) if job.total else None,
        "resumable": import_jobs.is_resumable(job),
    })


@manager_page(require_POST)
def import_job_resume(request, project, job_id):
    import_jobs.resume_job(_job(project, job_id))
    return redirect("project-import-job", slug=project.slug, job_id=job_id)
