"""API: import judgments from a CSV or JSON Lines file (managers); all lines or none."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api_errors import ErrorSerializer
from labeling.project_scope import ProjectScopedMixin
from labeling.services.judgment_imports import import_judgments


class JudgmentFileSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="CSV with a header, or JSON Lines: image_a, image_b, winner, rater, time "
                                           "[, response_ms]. Images by external id or file name.")
    format = serializers.ChoiceField(choices=["csv", "jsonl"], required=False,
                                     help_text="Default: from the file name (.jsonl/.ndjson, else csv).")


class JudgmentImportView(ProjectScopedMixin, APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(
        request={"multipart/form-data": JudgmentFileSerializer},
        responses={
            201: inline_serializer("JudgmentImportResult", {
                "imported": serializers.IntegerField(), "already_present": serializers.IntegerField(),
            }),
            400: inline_serializer("JudgmentImportErrors", {
                "detail": serializers.CharField(), "code": serializers.CharField(),
                "errors": inline_serializer("JudgmentLineError", {
                    "file": serializers.CharField(), "line": serializers.IntegerField(allow_null=True),
                    "reason": serializers.CharField(),
                }, many=True),
                "total_errors": serializers.IntegerField(),
            }),
            401: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer,
        },
        tags=["rating"],
    )
    def post(self, request, slug):
        """Import judgments made elsewhere. Every bad line is listed (file, line, reason) and then nothing
        is stored; re-importing a file stores nothing twice."""
        self.require_manager("import judgments")
        form = JudgmentFileSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        upload = form.validated_data["file"]
        # Bad lines are a refusal: 400, code bad_lines, with total_errors and the errors listed.
        report = import_judgments(self.project, upload.file, upload.name, kind=form.validated_data.get("format"))
        return Response({"imported": report.imported, "already_present": report.already_present}, status=201)
