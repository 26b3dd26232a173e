"""Server-rendered pages of the human side."""
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.shortcuts import get_object_or_404, render

from labeling import access
from labeling.models import Image, Project


def project_for(request, slug: str) -> Project:
    project = get_object_or_404(Project, slug=slug)
    if not access.can_rate(request.user, project):
        raise PermissionDenied("You are not a member of this project.")
    return project


@login_required
def project_list(request):
    projects = access.projects_for(request.user).annotate(
        image_count=Count("images", distinct=True)
    )
    return render(request, "labeling/project_list.html", {"projects": projects})


@login_required
def project_detail(request, slug):
    project = project_for(request, slug)
    counts = {
        "images": project.images.count(),
        "tags": project.tags.count(),
        "comparisons": project.comparisons.count(),
        "my_comparisons": project.comparisons.filter(rater=request.user).count(),
    }
    recent = Image.objects.filter(project=project).order_by("-id")[:48]
    return render(
        request,
        "labeling/project_detail.html",
        {
            "project": project,
            "counts": counts,
            "images": recent,
            "can_manage": access.can_manage(request.user, project),
        },
    )


@login_required
def rate(request, slug):
    project = project_for(request, slug)
    return render(request, "labeling/rate.html", {"project": project})
