"""Image import: one service behind the CLI (``import_images``, ``import_ava``), the REST and web uploads and
the demo seeder. Each entry point here sends the new images to feature extraction once its import commits
(``worker.dispatch.send_images_imported``); callers send nothing themselves.

Every file is validated with Pillow before anything is stored: a format allow-list, a size bound,
a pixel bound (decompression bombs), ``verify()`` for PNG, then one full decode (a JPEG at reduced
size when its thumbnail allows). A file that fails is
reported by name with the reason and leaves nothing behind; a duplicate (same sha256 in the
project) is skipped and counted. Folder and AVA imports decode, hash and thumbnail in one worker
process per core and store the results in batches (one transaction and a few bulk inserts each), so
an import streams with bounded memory and an interruption keeps the batches already committed.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction

from core.ava import AvaRow, read_ava_list, read_ava_tags
from core.input_files import ImportFileError
from labeling.models import Image, ImageTag, Project, ReferenceRating, Tag
from labeling.services import image_stats
from labeling.services.image_checks import RejectedImage, ValidatedImage, read_and_validate
from labeling.services.side_files import read_metadata_jsonl, read_tags_csv
from labeling.services.image_checks import validate_image_bytes as check_image_bytes
import worker.dispatch as dispatch

__all__ = ["RejectedImage", "ImportFileError", "ImportReport", "store_image", "import_folder", "import_ava",
           "import_uploaded_file", "validate_image_bytes", "get_or_create_tags", "import_one", "import_session"]


def validate_image_bytes(data: bytes, name: str) -> ValidatedImage:
    """Check one file against this site's import limits (settings.TAGRANK_IMPORT)."""
    return check_image_bytes(data, name, settings.TAGRANK_IMPORT)

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
# One batch is one transaction: large enough that per-statement costs vanish, small enough that memory
# stays flat (the files' bytes are held until the batch is stored) and an interruption loses little.
BATCH_FILES = 256
BATCH_BYTES = 64 * 1024 * 1024
IN_FLIGHT_PER_WORKER = 64  # files handed to the worker processes and not yet stored, at most
IN_FLIGHT_BYTES = 64 * 1024 * 1024


@dataclass
class ImportReport:
    imported: int = 0
    duplicates: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (file name, reason)
    missing: list[str] = field(default_factory=list)  # listed in a side file but not found
    image_ids: list[int] = field(default_factory=list)  # new images, for feature extraction

    @property
    def seen(self) -> int:
        return self.imported + self.duplicates + len(self.rejected)

    def summary(self) -> str:
        parts = [f"imported {self.imported}", f"duplicates skipped {self.duplicates}", f"rejected {len(self.rejected)}"]
        if self.missing:
            parts.append(f"missing {len(self.missing)}")
        return ", ".join(parts)


def get_or_create_tags(project: Project, names: Iterable[str]) -> list[Tag]:
    """Tags by name, case-folded; new names are created (callers enforce closed vocabularies)."""
    tags = []
    for name in dict.fromkeys(Tag.normalise(n) for n in names):
        if not name:
            continue
        tag, _ = Tag.objects.get_or_create(project=project, name=name)
        tags.append(tag)
    return tags


def store_image(
    project: Project,
    name: str,
    data: bytes,
    *,
    tags: Iterable[str] = (),
    caption: str = "",
    metadata: dict | None = None,
    external_id: str = "",
    reference_votes: list[int] | None = None,
    tag_source: str = ImageTag.Source.IMPORT,
    rater=None,
    checked: ValidatedImage | None = None,
) -> tuple[Image | None, bool]:
    """Validate and store one image with its tags. Returns (image, created); (existing, False) on a duplicate.

    Raises RejectedImage when the file is refused. Nothing is stored unless everything is.
    ``checked`` is the result of ``validate_image_bytes`` when the caller validated already.
    """
    checked = checked or validate_image_bytes(data, name)
    existing = Image.objects.filter(project=project, sha256=checked.sha256).first()
    if existing is not None:
        return existing, False
    storage = Image._meta.get_field("file").storage
    stored_files = []
    try:
        with transaction.atomic():
            image = _new_image(project, name, checked, stored_files, caption, metadata, external_id)
            image.save()
            for tag in get_or_create_tags(project, tags):
                ImageTag.objects.create(image=image, tag=tag, source=tag_source, rater=rater)
            if reference_votes is not None:
                rating = ReferenceRating(image=image, source="import")
                rating.votes = reference_votes
                rating.save()
    except IntegrityError:
        # Another process imported the same file a moment ago: that is a duplicate, not an error.
        _delete_stored(storage, stored_files)
        existing = Image.objects.filter(project=project, sha256=checked.sha256).first()
        if existing is None:
            raise
        return existing, False
    except BaseException:
        _delete_stored(storage, stored_files)
        raise
    return image, True


def _new_image(project: Project, name: str, checked: ValidatedImage, stored_files: list[str], caption: str = "",
               metadata: dict | None = None, external_id: str = "") -> Image:
    """An unsaved image row with its file and thumbnail written; their names go to ``stored_files`` so that
    the caller deletes them when the row is not stored."""
    image = Image(
        project=project,
        original_name=name[:500],
        sha256=checked.sha256,
        width=checked.width,
        height=checked.height,
        caption=caption or "",
        metadata=metadata or {},
        external_id=(external_id or "")[:200],
    )
    image.file.save(f"{checked.sha256}.{EXTENSIONS[checked.format]}", ContentFile(checked.data), save=False)
    stored_files.append(image.file.name)
    image.thumbnail.save(f"{checked.sha256}.webp", ContentFile(checked.thumbnail), save=False)
    stored_files.append(image.thumbnail.name)
    return image


# --- Side files -----------------------------------------------------------------------------


def iter_image_files(root: Path) -> Iterator[Path]:
    """Image files under root, recursively, in a stable order."""
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith("."):
            yield path


def _lookup(mapping: dict, relative: str, name: str):
    return mapping.get(relative) or mapping.get(name)


def import_folder(
    project: Project,
    root: Path,
    *,
    tags_csv: Path | None = None,
    metadata_jsonl: Path | None = None,
    progress: Callable[[ImportReport, str], None] | None = None,
    workers: int | None = None,
) -> ImportReport:
    """Import every image under ``root``. Side files are parsed fully first, so a bad line stops the
    import before any image is stored. ``workers`` processes decode images (default: the CPU count)."""
    workers = workers if workers is not None else (os.cpu_count() or 1)
    root = Path(root)
    if not root.is_dir():
        raise ImportFileError(root, None, "not a folder")
    tags_by_file = read_tags_csv(tags_csv) if tags_csv else {}
    meta_by_file = read_metadata_jsonl(metadata_jsonl) if metadata_jsonl else {}
    report = ImportReport()

    def jobs():
        for path in iter_image_files(root):
            relative = path.relative_to(root).as_posix()
            meta = _lookup(meta_by_file, relative, path.name) or {}
            tags = list(_lookup(tags_by_file, relative, path.name) or []) + list(meta.get("tags", []))
            extra = {"tags": tags, "caption": meta.get("caption", ""), "metadata": meta.get("metadata", {}),
                     "external_id": meta.get("external_id", "")}
            yield path, relative, extra

    _store_in_batches(report, project, _validate_in_parallel(jobs(), workers), progress)
    dispatch.send_images_imported(project.pk, report.image_ids)
    return report


def _validate_in_parallel(jobs: Iterable[tuple[Path, str, dict]], workers: int):
    """Read, decode, hash and thumbnail in worker processes (the CPU-bound part) while this process
    writes to the database, in file order. Yields (name, extra, ValidatedImage | RejectedImage).
    At most a few files per worker are in flight, so memory stays bounded."""
    limits = dict(settings.TAGRANK_IMPORT)
    if workers <= 1:
        for path, name, extra in jobs:
            yield name, extra, read_and_validate(path, name, limits)
        return
    in_flight: deque = deque()
    in_flight_bytes = 0
    # spawn, not fork: a forked child would share (and on exit could close) this process's DB connection.
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for path, name, extra in jobs:
            size = _file_size(path)
            in_flight.append((name, extra, size, pool.submit(read_and_validate, path, name, limits)))
            in_flight_bytes += size
            # Deep enough that the workers keep decoding while this process stores a batch.
            while len(in_flight) >= IN_FLIGHT_PER_WORKER * workers or in_flight_bytes >= IN_FLIGHT_BYTES:
                name, extra, size, future = in_flight.popleft()
                in_flight_bytes -= size
                yield name, extra, future.result()
        while in_flight:
            name, extra, size, future = in_flight.popleft()
            yield name, extra, future.result()


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:  # the worker reports it
        return 0


def _store_in_batches(report: ImportReport, project: Project, results, progress) -> None:
    """Store validated files batch by batch; rejected ones are reported as they come."""
    batch: list[tuple[str, ValidatedImage, dict]] = []
    batch_bytes = 0

    def flush():
        nonlocal batch, batch_bytes
        store_batch(report, project, batch)
        if progress:
            for name, _, _ in batch:
                progress(report, name)
        batch, batch_bytes = [], 0

    for name, extra, checked in results:
        if isinstance(checked, RejectedImage):
            report.rejected.append((name, str(checked)))
            logger.warning("rejected %s: %s", name, checked)
            if progress:
                progress(report, name)
            continue
        batch.append((name, checked, extra))
        batch_bytes += len(checked.data) + len(checked.thumbnail)
        if len(batch) >= BATCH_FILES or batch_bytes >= BATCH_BYTES:
            flush()
    if batch:
        flush()


def store_batch(report: ImportReport, project: Project, batch: list[tuple[str, ValidatedImage, dict]]) -> None:
    """Store validated images in one transaction with bulk inserts; ``dict`` holds store_image's keyword
    arguments (tags, caption, metadata, external_id, reference_votes). Files already in the project, or
    earlier in the batch (same sha256), are counted as duplicates. If the batch fails, its files are
    removed and nothing of it stays in the database."""
    fresh: dict[str, tuple[str, ValidatedImage, dict]] = {}
    for name, checked, extra in batch:
        if checked.sha256 in fresh:
            report.duplicates += 1
        else:
            fresh[checked.sha256] = (name, checked, extra)
    for sha256 in existing_hashes(project, list(fresh)):
        del fresh[sha256]
        report.duplicates += 1
    if not fresh:
        return
    images, stored_files = [], []
    storage = Image._meta.get_field("file").storage
    try:
        for name, checked, extra in fresh.values():
            images.append(_new_image(project, name, checked, stored_files, extra.get("caption"), extra.get("metadata"),
                                     extra.get("external_id")))
        with transaction.atomic():
            Image.objects.bulk_create(images)
            image_stats.images_added(project.pk, [image.pk for image in images])  # bulk_create sends no post_save
            _bulk_tag(project, images, [extra for _, _, extra in fresh.values()])
    except IntegrityError:
        # Another process imported one of these files a moment ago: store them one by one, which tells
        # that duplicate apart from a real error.
        _delete_stored(storage, stored_files)
        for name, checked, extra in fresh.values():
            import_one(report, project, name, b"", checked=checked, **extra)
        return
    except BaseException:
        _delete_stored(storage, stored_files)
        raise
    report.imported += len(images)
    report.image_ids.extend(image.pk for image in images)


def existing_hashes(project: Project, hashes: list[str]) -> set[str]:
    """The sha256 values among ``hashes`` that the project already holds."""
    return set(Image.objects.filter(project=project, sha256__in=hashes).values_list("sha256", flat=True))


def _bulk_tag(project: Project, images: list[Image], extras: list[dict]) -> None:
    names = {Tag.normalise(n) for extra in extras for n in extra.get("tags", ())} - {""}
    tags = {}
    if names:
        Tag.objects.bulk_create([Tag(project=project, name=n) for n in sorted(names)], ignore_conflicts=True)
        tags = dict(Tag.objects.filter(project=project, name__in=names).values_list("name", "pk"))
    image_tags, ratings = [], []
    for image, extra in zip(images, extras):
        for name in dict.fromkeys(Tag.normalise(n) for n in extra.get("tags", ())):
            if name:
                source = extra.get("tag_source", ImageTag.Source.IMPORT)
                image_tags.append(ImageTag(image=image, tag_id=tags[name], source=source, rater=extra.get("rater")))
        if extra.get("reference_votes") is not None:
            rating = ReferenceRating(image=image, source="import")
            rating.votes = extra["reference_votes"]
            ratings.append(rating)
    ImageTag.objects.bulk_create(image_tags)
    ReferenceRating.objects.bulk_create(ratings)


def _delete_stored(storage, names: list[str]) -> None:
    for stored in names:
        try:
            storage.delete(stored)
        except OSError:  # pragma: no cover - best effort clean-up
            logger.warning("could not remove %s after a failed import", stored)


def import_one(report: ImportReport, project: Project, name: str, data: bytes, **kwargs) -> None:
    """Validate (unless ``checked`` is given) and store one file in its own transaction; count it."""
    checked = kwargs.get("checked")
    if isinstance(checked, RejectedImage):
        report.rejected.append((name, str(checked)))
        logger.warning("rejected %s: %s", name, checked)
        return
    try:
        image, created = store_image(project, name, data, **kwargs)
    except RejectedImage as exc:
        report.rejected.append((name, str(exc)))
        logger.warning("rejected %s: %s", name, exc)
        return
    if created:
        report.imported += 1
        report.image_ids.append(image.pk)
    else:
        report.duplicates += 1


def read_upload(upload: BinaryIO) -> bytes:
    """An uploaded file's bytes, read up to the size limit. Raises RejectedImage when it is over."""
    limit = settings.TAGRANK_IMPORT["max_file_bytes"]
    data = upload.read(limit + 1)
    if len(data) > limit:
        raise RejectedImage(f"the file is over the limit of {limit:,} bytes")
    return data


def import_uploaded_file(project: Project, upload: BinaryIO, name: str, **kwargs) -> tuple[Image, bool]:
    """The REST upload path: same validation and storage as the CLI. Raises RejectedImage naming the file."""
    try:
        image, created = store_image(project, name, read_upload(upload), **kwargs)
    except RejectedImage as exc:
        raise RejectedImage(exc.reason, file=name) from None
    if created:
        dispatch.send_images_imported(project.pk, [image.pk])
    return image, created


@contextmanager
def import_session(project: Project) -> Iterator[ImportReport]:
    """A report for a series of ``import_one`` calls (the web upload, the demo seeder); when the series ends,
    its new images go to feature extraction."""
    report = ImportReport()
    yield report
    dispatch.send_images_imported(project.pk, report.image_ids)


# --- AVA -------------------------------------------------------------------------------------


def import_ava(
    project: Project,
    ava_list: Path,
    tags_file: Path,
    image_dir: Path,
    *,
    limit: int | None = None,
    progress: Callable[[ImportReport, str], None] | None = None,
    workers: int | None = None,
) -> ImportReport:
    """Import AVA: votes become reference ratings, semantic tags become tags. Images absent from the
    folder are counted in ``report.missing``, not fatal. ``workers`` as for import_folder."""
    workers = workers if workers is not None else (os.cpu_count() or 1)
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise ImportFileError(image_dir, None, "not a folder")
    tag_names = read_ava_tags(tags_file)
    rows = list(read_ava_list(ava_list)) if limit is None else _take(read_ava_list(ava_list), limit)
    for row in rows:  # check tag ids up front: a bad line stops before anything is stored
        for tag_id in row.semantic_tag_ids:
            if tag_id and tag_id not in tag_names:
                raise ImportFileError(ava_list, row.line, f"semantic tag id {tag_id} is not in {tags_file}")
    report = ImportReport()

    def jobs():
        for row in rows:
            path = image_dir / f"{row.image_id}.jpg"
            if not path.is_file():
                report.missing.append(row.image_id)
                continue
            extra = {"tags": [tag_names[t] for t in row.semantic_tag_ids if t], "external_id": row.image_id,
                     "metadata": {"source": "AVA", "challenge_id": row.challenge_id}, "reference_votes": row.votes}
            yield path, path.name, extra

    _store_in_batches(report, project, _validate_in_parallel(jobs(), workers), progress)
    dispatch.send_images_imported(project.pk, report.image_ids)
    return report


def _take(rows: Iterable[AvaRow], limit: int) -> list[AvaRow]:
    taken = []
    for row in rows:
        if len(taken) >= limit:
            break
        taken.append(row)
    return taken
