"""Bulk imports of images run on the worker (labeling/services/import_jobs.py): one job per archive,
folder or manifest, resumable from ``position``, with the entries it skipped or failed."""
from django.conf import settings
from django.db import models

from core.models import WorkerJob
from labeling.models.project import Project


class ImportJob(WorkerJob):
    """A bulk import of images run on the worker, with its progress.

    Entries (archive members, files in a folder, manifest lines) are taken in a fixed order, and
    ``position`` counts those finished: a job that stopped (worker lost, redelivered message, a
    manager's "resume") starts again from there. Storing is idempotent on the content hash, so an
    entry done twice is stored once.
    """

    class Source(models.TextChoices):
        ARCHIVE = "archive", "Uploaded archive (zip or tar)"
        FOLDER = "folder", "Folder on the server"
        MANIFEST = "manifest", "Manifest of URLs or S3 keys"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="import_jobs")
    source_kind = models.CharField(max_length=10, choices=Source.choices)
    source = models.CharField(max_length=1000, help_text="The archive's name, the folder, or the manifest's name.")
    archive_path = models.CharField(max_length=1000, blank=True, help_text="Where the uploaded archive is kept.")
    manifest = models.TextField(blank=True, help_text="One URL or s3://bucket/key per line.")
    total = models.PositiveIntegerField(null=True, blank=True, help_text="Entries in the source, once counted.")
    position = models.PositiveIntegerField(default=0, help_text="Entries finished, in the source's order.")
    done = models.PositiveIntegerField(default=0, help_text="Images stored.")
    skipped = models.PositiveIntegerField(default=0, help_text="Entries already in the project (same content).")
    failed = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, help_text="Why the whole job stopped, if it did.")
    claim = models.CharField(max_length=64, blank=True, help_text="The run that owns the job now.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self):
        return f"import {self.pk} into {self.project} ({self.status})"


class ImportJobIssue(models.Model):
    """An entry of an import job that was skipped or failed, with the reason."""

    class Kind(models.TextChoices):
        SKIPPED = "skipped", "Skipped"
        FAILED = "failed", "Failed"

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="issues")
    position = models.PositiveIntegerField(help_text="The entry's place in the source (0-based).")
    name = models.CharField(max_length=1000)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    reason = models.TextField()

    class Meta:
        ordering = ["position", "id"]
        constraints = [models.UniqueConstraint(fields=["job", "position"], name="importjobissue_unique_position")]

    def __str__(self):
        return f"{self.name}: {self.kind} ({self.reason})"
