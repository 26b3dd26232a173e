"""API of bulk import jobs (managers): start one from an archive, a server folder or a manifest,
follow its progress, see what was skipped or failed and why, resume it."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import FormParser, MultiPartParser

from labeling.api.parsers import BoundedJSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api_errors import ERRORS, ErrorSerializer
from labeling.project_scope import ProjectScopedMixin
from labeling.models import ImportJob, ImportJobIssue
from labeling.services import import_jobs

ISSUES_PER_RESPONSE = 500


class ImportJobRequestSerializer(serializers.Serializer):
    archive = serializers.FileField(required=False, help_text="A zip or tar (optionally gzip/bz2/xz) of images.")
    folder = serializers.CharField(required=False, max_length=1000,
                                   help_text="A folder under the server's TAGRANK_IMPORT_ROOT (relative path).")
    manifest = serializers.CharField(required=False, trim_whitespace=False,
                                     help_text="One http(s):// URL or s3://bucket/key per line.")
    manifest_file = serializers.FileField(required=False, help_text="The manifest as an uploaded text file.")


class ImportJobSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    source_kind = serializers.ChoiceField(choices=ImportJob.Source.choices)
    source = serializers.CharField()
    status = serializers.ChoiceField(choices=ImportJob.Status.choices)
    total = serializers.IntegerField(allow_null=True)
    position = serializers.IntegerField(help_text="Entries finished.")
    done = serializers.IntegerField(help_text="Images stored.")
    skipped = serializers.IntegerField(help_text="Entries already in the project (same content).")
    failed = serializers.IntegerField()
    error = serializers.CharField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    heartbeat_at = serializers.DateTimeField(allow_null=True)


class ImportJobIssueSerializer(serializers.ModelSerializer):
    class Meta:
        model = ImportJobIssue
        fields = ["position", "name", "kind", "reason"]


class JobPagination(CursorPagination):
    page_size = 50
    ordering = "-id"


def job_payload(job: ImportJob, *, issues: bool = False) -> dict:
    body = ImportJobSerializer(import_jobs.progress(job)).data
    if issues:
        rows = list(job.issues.order_by("position")[: ISSUES_PER_RESPONSE + 1])
        body["issues"] = ImportJobIssueSerializer(rows[:ISSUES_PER_RESPONSE], many=True).data
        body["issues_truncated"] = len(rows) > ISSUES_PER_RESPONSE
    return body


class ImportJobListView(ProjectScopedMixin, GenericAPIView):
    pagination_class = JobPagination
    parser_classes = [MultiPartParser, FormParser, BoundedJSONParser]
    serializer_class = ImportJobSerializer

    @extend_schema(responses={200: ImportJobSerializer(many=True), **ERRORS}, tags=["imports"])
    def get(self, request, slug):
        """The project's import jobs, newest first (managers)."""
        self.require_manager("see import jobs")
        page = self.paginate_queryset(ImportJob.objects.filter(project=self.project))
        return self.get_paginated_response([job_payload(job) for job in page])

    @extend_schema(
        request={"multipart/form-data": ImportJobRequestSerializer, "application/json": ImportJobRequestSerializer},
        responses={201: ImportJobSerializer, **ERRORS},
        tags=["imports"],
    )
    def post(self, request, slug):
        """Start an import job from exactly one source; it runs on the worker. Answers the queued job."""
        self.require_manager("import images")
        form = ImportJobRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        manifest, manifest_name = data.get("manifest", ""), "manifest"
        if data.get("manifest_file"):
            upload = data["manifest_file"]
            try:
                manifest = upload.read().decode("utf-8-sig")
            except UnicodeDecodeError:
                raise import_jobs.ImportJobRefused(f"{upload.name}: not UTF-8 text.") from None
            manifest_name = upload.name
            if data.get("manifest"):
                raise import_jobs.ImportJobRefused("Give the manifest as text or as a file, not both.")
        archive = data.get("archive")
        job = import_jobs.create_job(  # a source it cannot import is a refusal (400, code import_refused)
            self.project, request.user, archive=archive, archive_name=archive.name if archive else "",
            folder=data.get("folder", ""), manifest=manifest, manifest_name=manifest_name,
        )
        return Response(job_payload(job), status=201)


class ImportJobMixin(ProjectScopedMixin):
    def job(self, job_id: int) -> ImportJob:
        return self.managed_row(ImportJob, job_id, "see import jobs", "No such import job in this project.")


class ImportJobDetailView(ImportJobMixin, APIView):
    @extend_schema(
        responses={200: inline_serializer("ImportJobDetail", {
            **ImportJobSerializer().fields, "issues": ImportJobIssueSerializer(many=True),
            "issues_truncated": serializers.BooleanField(),
        }), **ERRORS},
        tags=["imports"],
    )
    def get(self, request, slug, job_id):
        """A job's progress, and its skipped and failed entries with their reasons (the first 500)."""
        return Response(job_payload(self.job(job_id), issues=True))


class ImportJobResumeView(ImportJobMixin, APIView):
    @extend_schema(
        request=None,
        responses={202: ImportJobSerializer, 409: OpenApiResponse(ErrorSerializer), **ERRORS},
        tags=["imports"],
    )
    def post(self, request, slug, job_id):
        """Queue a failed job, or one whose worker went silent, again: it continues from its position."""
        job = self.job(job_id)
        if not import_jobs.resume_job(job):
            return Response({"detail": f"The job is {job.status}; only a failed or stalled job can be resumed.",
                             "code": "not_resumable"}, status=409)
        job.refresh_from_db()
        return Response(job_payload(job), status=202)

