"""The Instructions page of a project (managers): the Markdown instructions and the example pairs.

Raters read them on the rating page (before the first pair and behind the help key) and over the API
(``labeling/api/instructions.py::InstructionsView``); ``labeling.services.instructions`` renders them safely.
"""
from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from labeling.forms import ExamplePairForm, InstructionsForm
from labeling.models import ExamplePair
from labeling.services import instructions
from labeling.project_scope import manager_page
from labeling.views import form_methods


@manager_page(form_methods)
def instructions_page(request, project):
    text_form = InstructionsForm(instance=project)
    example_form = ExamplePairForm(project=project)
    if request.method == "POST":
        if "add_example" in request.POST:
            example_form = ExamplePairForm(request.POST, project=project)
            if example_form.is_valid():
                example_form.save()
                messages.success(request, "Example pair added.")
                return redirect("project-instructions", slug=project.slug)
        else:
            text_form = InstructionsForm(request.POST, instance=project)
            if text_form.is_valid():
                text_form.save()
                messages.success(request, "Instructions saved.")
                return redirect("project-instructions", slug=project.slug)
    return render(request, "labeling/project_instructions.html", {
        "project": project, "text_form": text_form, "example_form": example_form,
        "rendered": instructions.render_markdown(project.instructions),
        "examples": rendered_examples(project),
    })


@manager_page(require_POST)
def example_delete(request, project, example_id):
    get_object_or_404(ExamplePair, project=project, pk=example_id).delete()
    messages.success(request, "Example pair removed.")
    return redirect("project-instructions", slug=project.slug)


def rendered_examples(project) -> list[dict]:
    """The example pairs with their explanations rendered, for the pages."""
    return [{"pair": example, "explanation": instructions.render_markdown(example.explanation)}
            for example in instructions.example_pairs(project)]
