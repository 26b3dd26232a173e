"""The project's instructions over the API: what the rating page shows before the first pair and behind
its help key, for API clients (a crowd platform's own rating interface)."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.project_scope import ProjectScopedMixin
from labeling.api.serializers import file_urls
from labeling.services import instructions

_IMAGE = inline_serializer("ExampleImage", {"id": serializers.IntegerField(), "url": serializers.CharField(),
                                             "thumbnail_url": serializers.CharField()})
_INSTRUCTIONS = inline_serializer("Instructions", {
    "question": serializers.CharField(),
    "instructions_html": serializers.CharField(help_text="Rendered from the Markdown and sanitised."),
    "examples": inline_serializer("ExamplePairOut", {
        "a": _IMAGE, "b": _IMAGE, "expected": serializers.ChoiceField(choices=["a", "b", "tie"]),
        "explanation_html": serializers.CharField(),
    }, many=True),
})


class InstructionsView(ProjectScopedMixin, APIView):
    @extend_schema(responses={200: _INSTRUCTIONS}, tags=["rating"])
    def get(self, request, slug):
        """The project's question, its instructions (HTML, sanitised) and its example pairs (members)."""

        def image(image) -> dict:
            url, thumbnail = file_urls(request, image)
            return {"id": image.pk, "url": url, "thumbnail_url": thumbnail}

        return Response({
            "question": self.project.question,
            "instructions_html": instructions.render_markdown(self.project.instructions),
            "examples": [
                {"a": image(example.image_a), "b": image(example.image_b), "expected": example.expected,
                 "explanation_html": instructions.render_markdown(example.explanation)}
                for example in instructions.example_pairs(self.project)
            ],
        })
