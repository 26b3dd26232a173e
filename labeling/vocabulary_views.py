"""The Vocabulary page of a project (managers): create, rename, merge and delete tags.

Deleting asks for confirmation on a page of its own (type the tag's name); the work is in
``labeling.services.vocabulary``.
"""
from __future__ import annotations

from django.contrib import messages
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from labeling.project_scope import manager_page
from labeling.views import form_methods
from labeling.models import Tag
from labeling.services import vocabulary
from labeling.services.tags import TagRefused

SHOWN = 500


def _tag(project, tag_id) -> Tag:
    return get_object_or_404(Tag, project=project, pk=tag_id)


def _change(request, project, change, done):
    """Make ``change()`` and say ``done(result)``, or the service's reason for refusing; back to the list."""
    try:
        messages.success(request, done(change()))
    except TagRefused as exc:
        messages.error(request, exc.message)
    return redirect("project-vocabulary", slug=project.slug)


@manager_page(form_methods)
def vocabulary_page(request, project):
    if request.method == "POST":
        return _change(request, project, lambda: vocabulary.create_tag(project, request.POST.get("name", "")),
                       lambda tag: f"Added “{tag.name}”.")
    query = request.GET.get("q", "").strip()
    tags = Tag.objects.filter(project=project).annotate(image_count=Count("image_tags")).order_by("name")
    if query:
        tags = tags.filter(name__contains=Tag.normalise(query))
    tags = list(tags[: SHOWN + 1])
    return render(request, "labeling/project_vocabulary.html", {
        "project": project, "tags": tags[:SHOWN], "more": len(tags) > SHOWN, "q": query,
    })


@manager_page(require_POST)
def tag_rename(request, project, tag_id):
    tag = _tag(project, tag_id)
    old = tag.name
    return _change(request, project, lambda: vocabulary.rename_tag(tag, request.POST.get("name", "")),
                   lambda _: f"Renamed “{old}” to “{tag.name}”.")


@manager_page(require_POST)
def tag_merge(request, project, tag_id):
    """Merge this tag into the tag named in ``into``."""
    source = _tag(project, tag_id)
    target = Tag.objects.filter(project=project, name=Tag.normalise(request.POST.get("into", ""))).first()
    if target is None:
        messages.error(request, "Choose an existing tag to merge into.")
        return redirect("project-vocabulary", slug=project.slug)
    return _change(request, project, lambda: vocabulary.merge_tags(target, [source]),
                   lambda report: f"Merged “{source.name}” into “{target.name}”: {report.moved} image tag(s) "
                                  f"moved, {report.already_there} already had it.")


@manager_page(form_methods)
def tag_delete(request, project, tag_id):
    """GET asks for confirmation (type the name); POST deletes."""
    tag = _tag(project, tag_id)
    if request.method == "POST":
        name = tag.name
        try:
            removed = vocabulary.delete_tag(tag, request.POST.get("confirm", ""))
        except TagRefused as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Deleted “{name}” and removed it from {removed} image(s).")
            return redirect("project-vocabulary", slug=project.slug)
    return render(request, "labeling/tag_delete.html", {
        "project": project, "tag": tag, "image_count": tag.image_tags.count(),
    })
