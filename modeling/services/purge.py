"""Deleting a project's data on purpose: export first, then delete, and log what went.

The app never deletes judgments by accident (comparisons PROTECT their project and images); this is
the one way to remove them, used by ``manage.py purge_project``. The export (scores CSV, comparisons
CSV, a manifest) is written and flushed before anything is deleted; the delete is one transaction;
the image files go after it commits.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from labeling.models import Comparison, GoldPair, Image, PairCandidate, PairLease, Project
from core.streaming import Column, iter_csv, keyset_chunks, mapped
from modeling.services import score_export

log = logging.getLogger("tagrank.purge")


@dataclass
class PurgeReport:
    slug: str
    export_dir: Path
    exported: dict[str, int] = field(default_factory=dict)  # file name -> bytes
    deleted: dict[str, int] = field(default_factory=dict)  # model label -> rows
    files_removed: int = 0


# The comparisons file: the judgments as the purge leaves them behind (docs/data-safety.md).
COMPARISON_COLUMNS = [
    Column(name) for name in (
        "id", "created_at", "rater", "image_a", "image_b", "image_a_file", "image_b_file", "outcome",
        "response_ms", "is_gold", "gold_correct", "client_key",
    )
]
_COMPARISON_FIELDS = [
    "id", "created_at", "rater__username", "image_a_id", "image_b_id", "image_a__original_name",
    "image_b__original_name", "outcome", "response_ms", "is_gold", "gold_correct", "client_key",
]


def iter_comparisons_csv(project: Project) -> Iterator[str]:
    """Every comparison of the project, oldest first, in chunks (keyset by id, like the scores)."""
    chunks = keyset_chunks(Comparison.objects.filter(project=project), _COMPARISON_FIELDS)
    return iter_csv(COMPARISON_COLUMNS, mapped(chunks, lambda row: (row[0], row[1].isoformat(), *row[2:])))


def write_export(chunks: Iterable[str], path) -> int:
    """Write an export's chunks to ``path``; returns the bytes written."""
    written = 0
    with open(path, "w", encoding="utf-8", newline="") as handle:
        for chunk in chunks:
            written += handle.write(chunk)
    return written


def export_project(project: Project, export_dir: Path) -> dict[str, int]:
    export_dir.mkdir(parents=True, exist_ok=True)
    version_id = score_export.active_version_id(project)
    written = {
        "scores.csv": write_export(
            iter_csv(*score_export.export_rows("csv", project, version_id)), export_dir / "scores.csv"
        ),
        "comparisons.csv": write_export(iter_comparisons_csv(project), export_dir / "comparisons.csv"),
    }
    manifest = {
        "project": project.slug, "name": project.name, "exported_at": timezone.now().isoformat(),
        "model_version": version_id, "images": Image.objects.filter(project=project).count(),
        "comparisons": Comparison.objects.filter(project=project).count(), "files": written,
    }
    (export_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return written


def purge_project(project: Project, export_dir: Path) -> PurgeReport:
    report = PurgeReport(project.slug, export_dir)
    report.exported = export_project(project, export_dir)
    log.warning("purge of project %r: export written to %s (%s)", project.slug, export_dir, report.exported)
    stored = Image.objects.filter(project=project).values_list("file", "thumbnail")
    files = [name for pair in stored for name in pair if name]
    with transaction.atomic():
        # Judgments first (they PROTECT images and the project), then what serves pairs, then the rest.
        for model in (PairLease, PairCandidate, GoldPair, Comparison):
            report.deleted[model._meta.label] = model.objects.filter(project=project).delete()[0]
        _, by_model = Project.objects.filter(pk=project.pk).delete()
        for label, count in by_model.items():
            report.deleted[label] = report.deleted.get(label, 0) + count

        def remove_files():
            for name in files:
                try:
                    default_storage.delete(name)
                    report.files_removed += 1
                except OSError:
                    log.warning("purge of %r: could not remove %s", project.slug, name)

        transaction.on_commit(remove_files)
    log.warning("purge of project %r: deleted %s; removed %d files", report.slug, report.deleted, report.files_removed)
    return report
