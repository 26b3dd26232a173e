"""Bulk import jobs: an uploaded archive, a folder on the server, or a manifest of URLs / S3 keys.

``create_job`` checks the source and queues the job; the worker calls ``run_job``. Entries are read
one at a time in a fixed order (archive members sorted by name for zip, in stored order for tar; files
under the folder sorted by path; manifest lines in order), each validated and stored with
``labeling.services.imports.store_image``, so a job of 10^5 images needs the memory of one image and
has no per-request file limit. Entries are stored in batches, each batch in one transaction with the
job's new ``position``, counters and issues: a job that stopped resumes from the first entry of the
batch it was in. Storing is idempotent on the content hash: a file already in the project (from an
earlier job, or twice in one source) is skipped, never stored twice.
"""
from __future__ import annotations

import logging
import tarfile
import uuid
import zipfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator
from urllib.parse import urlsplit

from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import F
from django.utils import timezone

from core import outbound
from core.refusals import Refusal
from labeling.models import ImportJob, ImportJobIssue, Project
from labeling.services.imports import IMAGE_SUFFIXES, RejectedImage, iter_image_files, store_image
import worker.dispatch as dispatch

logger = logging.getLogger(__name__)

BATCH_SIZE = 50  # entries per transaction (and per progress update)
FOLLOW_UP_BATCH = 100  # new images handed to feature extraction at a time
STALE_AFTER = timedelta(minutes=10)  # a running job without a heartbeat this long may be resumed
MANIFEST_MAX_LINES = 1_000_000


class ImportJobRefused(Refusal):
    """The source cannot be imported; the message says why (and which manifest line)."""

    code = "import_refused"


@dataclass
class Entry:
    name: str
    read: Callable[[], bytes]  # raises OSError/ValueError with a reason when the bytes cannot be had


def max_bytes() -> int:
    return settings.TAGRANK_IMPORT["max_file_bytes"]


# --- Creating a job --------------------------------------------------------------------------------


def import_root() -> Path | None:
    root = settings.TAGRANK_IMPORT_ROOT
    return Path(root).resolve() if root else None


def resolve_folder(folder: str) -> Path:
    """``folder`` (relative to TAGRANK_IMPORT_ROOT, or absolute inside it) as a real folder inside the root."""
    root = import_root()
    if "\x00" in folder:
        raise ImportJobRefused("A folder name cannot contain NUL characters.")
    if root is None:
        raise ImportJobRefused("Imports from a server folder are off: TAGRANK_IMPORT_ROOT is not set.")
    path = (root / folder).resolve()
    if path != root and root not in path.parents:
        raise ImportJobRefused(f"{folder}: not inside the import root.")
    if not path.is_dir():
        raise ImportJobRefused(f"{folder}: no such folder under the import root.")
    return path


def check_manifest(text: str) -> list[str]:
    """The manifest's entries; a bad line is refused with its number."""
    entries = []
    if "\x00" in text:
        raise ImportJobRefused("The manifest cannot contain NUL characters.")
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = urlsplit(line)
        if parts.scheme in ("http", "https") and parts.netloc:
            entries.append(line)
        elif parts.scheme == "s3" and parts.netloc and parts.path.strip("/"):
            entries.append(line)
        else:
            raise ImportJobRefused(f"manifest line {number}: expected an http(s):// URL or s3://bucket/key, got {line[:200]!r}")
        if len(entries) > MANIFEST_MAX_LINES:
            raise ImportJobRefused(f"manifest line {number}: a manifest has at most {MANIFEST_MAX_LINES:,} entries")
    if not entries:
        raise ImportJobRefused("The manifest lists no URL or S3 key.")
    return entries


def check_manifest_hosts(text: str) -> None:
    """Refuse a manifest with an http(s) URL that the server may not fetch (each host resolved once).

    s3:// keys go through boto3 to the configured endpoint and are not checked here.
    """
    checked: set[tuple[str, str]] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        parts = urlsplit(line.strip())
        if parts.scheme not in ("http", "https") or (parts.scheme, parts.netloc) in checked:
            continue
        try:
            outbound.check_url(line.strip())
        except outbound.OutboundRefused as exc:
            raise ImportJobRefused(f"manifest line {number}: {exc}") from None
        checked.add((parts.scheme, parts.netloc))


def archive_kind(path: Path) -> str:
    if zipfile.is_zipfile(path):
        return "zip"
    try:
        if tarfile.is_tarfile(path):
            return "tar"
    except OSError:
        pass
    raise ImportJobRefused(f"{path.name}: not a zip or tar archive.")


def create_job(
    project: Project, user, *, archive=None, archive_name: str = "", folder: str = "", manifest: str = "",
    manifest_name: str = "manifest",
) -> ImportJob:
    """Check one source and queue its job (sent to the worker when the transaction commits).

    ``archive`` is an uploaded file (anything with ``chunks()``); it is kept in
    TAGRANK_IMPORT_ARCHIVE_DIR until the job succeeds.
    """
    given = [bool(archive), bool(folder), bool(manifest and manifest.strip())]
    if sum(given) != 1:
        raise ImportJobRefused("Give exactly one source: an archive, a folder or a manifest.")
    job = ImportJob(project=project, created_by=user if getattr(user, "is_authenticated", False) else None)
    if archive:
        name = Path(archive_name or getattr(archive, "name", "") or "archive").name
        folder_path = Path(settings.TAGRANK_IMPORT_ARCHIVE_DIR) / str(project.pk)
        folder_path.mkdir(parents=True, exist_ok=True)
        stored = folder_path / f"{uuid.uuid4().hex}-{name}"
        with open(stored, "wb") as handle:
            for piece in archive.chunks():
                handle.write(piece)
        try:
            archive_kind(stored)
        except ImportJobRefused:
            stored.unlink(missing_ok=True)
            raise ImportJobRefused(f"{name}: not a zip or tar archive.") from None
        job.source_kind, job.source, job.archive_path = ImportJob.Source.ARCHIVE, name, str(stored)
    elif folder:
        path = resolve_folder(folder)
        job.source_kind, job.source = ImportJob.Source.FOLDER, str(path)
    else:
        job.total = len(check_manifest(manifest))
        check_manifest_hosts(manifest)
        job.source_kind, job.source, job.manifest = ImportJob.Source.MANIFEST, manifest_name[:1000], manifest
    job.save()
    send(job)
    return job


def send(job: ImportJob) -> None:
    from worker.dispatch import send_import_job

    send_import_job(job.pk)


def is_resumable(job: ImportJob) -> bool:
    """Failed, still queued (its message may be lost), or running without a heartbeat for a while."""
    stale = timezone.now() - STALE_AFTER
    return job.status in (ImportJob.Status.FAILED, ImportJob.Status.QUEUED) or (
        job.status == ImportJob.Status.RUNNING and (job.heartbeat_at is None or job.heartbeat_at < stale)
    )


def resume_job(job: ImportJob) -> bool:
    """Queue a resumable job again; it continues from its position."""
    if not is_resumable(job):
        return False
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.QUEUED, error="", claim="", finished_at=None)
    send(job)
    return True


# --- Reading a source ------------------------------------------------------------------------------


def _is_image_name(name: str) -> bool:
    path = PurePosixPath(name)
    return path.suffix.lower() in IMAGE_SUFFIXES and not any(part.startswith(".") for part in path.parts)


def _zip_entries(path: Path) -> Iterator[Entry]:
    with zipfile.ZipFile(path) as archive:
        members = sorted((m for m in archive.infolist() if not m.is_dir() and _is_image_name(m.filename)),
                         key=lambda m: m.filename)
        for member in members:
            def read(member=member):
                if member.file_size > max_bytes():
                    raise ValueError(f"the file is over the limit of {max_bytes():,} bytes")
                with archive.open(member) as handle:
                    data = handle.read(max_bytes() + 1)  # the header's size could lie
                if len(data) > max_bytes():
                    raise ValueError(f"the file is over the limit of {max_bytes():,} bytes")
                return data

            yield Entry(member.filename, read)


def _tar_entries(path: Path) -> Iterator[Entry]:
    # Streamed in stored order ("r:*" reads gzip/bz2/xz too); a tar has no index to sort by without
    # reading it whole, and the stored order is fixed, which is all resuming needs.
    with tarfile.open(path, mode="r:*") as archive:
        for member in archive:
            if not member.isfile() or not _is_image_name(member.name):
                continue

            def read(member=member):
                if member.size > max_bytes():
                    raise ValueError(f"the file is over the limit of {max_bytes():,} bytes")
                handle = archive.extractfile(member)
                if handle is None:
                    raise ValueError("not a regular file")
                return handle.read(max_bytes() + 1)

            yield Entry(member.name, read)


def _folder_entries(root: Path) -> Iterator[Entry]:
    for path in iter_image_files(root):
        def read(path=path):
            real = path.resolve()
            if real != root and root not in real.parents:  # a symbolic link out of the import root
                raise ValueError("the file lies outside the import root")
            if path.stat().st_size > max_bytes():
                raise ValueError(f"the file is over the limit of {max_bytes():,} bytes")
            return path.read_bytes()

        yield Entry(path.relative_to(root).as_posix(), read)


def s3_client():
    import boto3

    return boto3.client("s3", endpoint_url=settings.TAGRANK_S3_ENDPOINT_URL)


def _read_url(url: str) -> bytes:
    import urllib.request

    request = urllib.request.Request(url, headers={"User-Agent": "tagrank-import"})
    with outbound.open_url(request, timeout=60) as response:  # each redirect hop checked too
        data = response.read(max_bytes() + 1)
    if len(data) > max_bytes():
        raise ValueError(f"the file is over the limit of {max_bytes():,} bytes")
    return data


def _manifest_entries(text: str) -> Iterator[Entry]:
    client = None
    for line in check_manifest(text):
        parts = urlsplit(line)
        if parts.scheme == "s3":
            def read(bucket=parts.netloc, key=parts.path.lstrip("/")):
                nonlocal client
                client = client or s3_client()
                body = client.get_object(Bucket=bucket, Key=key)["Body"]
                data = body.read(max_bytes() + 1)
                if len(data) > max_bytes():
                    raise ValueError(f"the file is over the limit of {max_bytes():,} bytes")
                return data

            yield Entry(line, read)
        else:
            yield Entry(line, lambda url=line: _read_url(url))


def entries(job: ImportJob) -> Iterator[Entry]:
    if job.source_kind == ImportJob.Source.ARCHIVE:
        path = Path(job.archive_path)
        return _zip_entries(path) if archive_kind(path) == "zip" else _tar_entries(path)
    if job.source_kind == ImportJob.Source.FOLDER:
        return _folder_entries(resolve_folder(job.source))
    return _manifest_entries(job.manifest)


def count_entries(job: ImportJob) -> int | None:
    """How many entries the source has (a folder or tar is walked once; cheap next to importing)."""
    if job.source_kind == ImportJob.Source.MANIFEST:
        return len(check_manifest(job.manifest))
    return sum(1 for _ in entries(job))


# --- Running a job ---------------------------------------------------------------------------------


def claim(job_id: int) -> tuple[ImportJob, str] | None:
    """Take a queued job, or a running one whose worker went silent (a redelivered message)."""
    token = uuid.uuid4().hex
    stale = timezone.now() - STALE_AFTER
    with transaction.atomic():
        job = ImportJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None:
            return None
        silent = job.status == ImportJob.Status.RUNNING and (job.heartbeat_at is None or job.heartbeat_at < stale)
        if job.status != ImportJob.Status.QUEUED and not silent:
            return None
        now = timezone.now()
        job.status, job.claim, job.heartbeat_at = ImportJob.Status.RUNNING, token, now
        job.started_at = job.started_at or now
        job.save(update_fields=["status", "claim", "heartbeat_at", "started_at"])
    return job, token


class TakenOver(Exception):
    """Another run claimed the job (this one was thought dead): this run's batch is rolled back."""


def _record(job: ImportJob, token: str, position: int, finished_now: int, counts: dict[str, int]) -> None:
    """Advance the job from ``position`` past ``finished_now`` entries, in the batch's transaction."""
    updates = {name: F(name) + value for name, value in counts.items() if value}
    advanced = ImportJob.objects.filter(pk=job.pk, claim=token, position=position).update(
        position=position + finished_now, heartbeat_at=timezone.now(), **updates
    )
    if not advanced:
        raise TakenOver()


class _Batch:
    """Entries imported in one transaction together with their issues and the job's new position: a crash
    keeps all of a batch or none of it. (One commit per batch rather than per image: on a busy server
    the commits were most of the time.) Entries are read while the source is open, one at a time."""

    def __init__(self, job: ImportJob, token: str):
        self.job, self.token = job, token
        self.atomic = None

    def add(self, position: int, entry: Entry, new_ids: list[int]) -> None:
        if self.atomic is None:
            self.atomic = transaction.atomic()
            self.atomic.__enter__()
            self.start, self.size, self.stored, self.issues = position, 0, [], []
            self.counts = {"done": 0, "skipped": 0, "failed": 0}
        outcome, reason = _import_entry(self.job.project, entry, self.stored)
        self.counts[outcome] += 1
        self.size += 1
        if outcome != "done":
            self.issues.append(ImportJobIssue(job=self.job, position=position, name=entry.name[:1000], kind=outcome,
                                              reason=reason[:2000]))
        if self.size >= BATCH_SIZE:
            self.commit(new_ids)

    def commit(self, new_ids: list[int]) -> None:
        if self.atomic is None:
            return
        try:
            ImportJobIssue.objects.bulk_create(self.issues)
            _record(self.job, self.token, self.start, self.size, self.counts)
        except BaseException as exc:
            self.rollback(exc)
            raise
        atomic, self.atomic = self.atomic, None
        atomic.__exit__(None, None, None)
        new_ids.extend(self.stored)
        self.job.position = self.start + self.size

    def rollback(self, exc: BaseException) -> None:
        if self.atomic is not None:
            atomic, self.atomic = self.atomic, None
            atomic.__exit__(type(exc), exc, exc.__traceback__)


def run_job(job_id: int) -> dict:
    """Import the job's entries from its position on. Idempotent: a job that is not queued (or silent)
    is left alone, and every entry is stored at most once."""
    claimed = claim(job_id)
    if claimed is None:
        return {"job": job_id, "skipped": "not queued"}
    job, token = claimed
    project = job.project
    new_ids: list[int] = []
    try:
        if job.total is None:
            ImportJob.objects.filter(pk=job.pk).update(total=count_entries(job))
        batch = _Batch(job, token)
        try:
            for position, entry in enumerate(entries(job)):
                if position < job.position:
                    continue
                batch.add(position, entry, new_ids)
                if len(new_ids) >= FOLLOW_UP_BATCH:
                    dispatch.send_images_imported(project.pk, new_ids)
                    new_ids = []
            batch.commit(new_ids)
        except BaseException as exc:
            batch.rollback(exc)
            raise
    except TakenOver:
        dispatch.send_images_imported(project.pk, new_ids)
        logger.warning("import job %s was taken over by another run; this one stops", job.pk)
        return {"job": job.pk, "stopped": "taken over"}
    except (OperationalError, InterfaceError):
        # The database was away: give the job back so that the task's retry resumes it.
        dispatch.send_images_imported(project.pk, new_ids)
        ImportJob.objects.filter(pk=job.pk, claim=token).update(status=ImportJob.Status.QUEUED, claim="")
        raise
    except Exception as exc:  # noqa: BLE001 (the source itself broke: say so on the job, then re-raise)
        dispatch.send_images_imported(project.pk, new_ids)
        ImportJob.objects.filter(pk=job.pk, claim=token).update(
            status=ImportJob.Status.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000], finished_at=timezone.now()
        )
        finished(job.pk)
        raise
    dispatch.send_images_imported(project.pk, new_ids)
    ImportJob.objects.filter(pk=job.pk, claim=token).update(
        status=ImportJob.Status.SUCCEEDED, finished_at=timezone.now(), heartbeat_at=timezone.now()
    )
    job.refresh_from_db()
    if job.archive_path:
        Path(job.archive_path).unlink(missing_ok=True)
    finished(job.pk)
    return {"job": job.pk, "done": job.done, "skipped": job.skipped, "failed": job.failed}


def _import_entry(project: Project, entry: Entry, new_ids: list[int]) -> tuple[str, str]:
    try:
        data = entry.read()
    except Exception as exc:  # noqa: BLE001 (any reason a source cannot deliver: recorded per entry)
        return "failed", f"could not read: {exc}"
    try:
        image, created = store_image(project, entry.name, data)
    except RejectedImage as exc:
        return "failed", str(exc)
    if not created:
        return "skipped", f"already in the project as image {image.pk} (same content)"
    new_ids.append(image.pk)
    return "done", ""


def finished(job_id: int) -> None:
    from labeling.services import webhooks

    job = ImportJob.objects.select_related("project").get(pk=job_id)
    try:
        webhooks.import_finished(job)
    except Exception:  # noqa: BLE001 (a notification must not fail the import)
        logger.warning("import-finished webhook failed for job %s", job_id, exc_info=True)


def progress(job: ImportJob) -> dict:
    """The job's state for the API and the page."""
    return {
        "id": job.pk, "source_kind": job.source_kind, "source": job.source, "status": job.status,
        "total": job.total, "position": job.position, "done": job.done, "skipped": job.skipped, "failed": job.failed,
        "error": job.error, "created_at": job.created_at, "started_at": job.started_at,
        "finished_at": job.finished_at, "heartbeat_at": job.heartbeat_at,
    }
