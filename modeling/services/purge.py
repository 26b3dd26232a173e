"""Deleting a project's data on purpose: export everything first, then delete, remove its files, log what went.

The app never deletes judgments by accident (comparisons PROTECT their project and images); this is
the one way to remove them, used by ``manage.py purge_project``. The export is written and flushed before
anything is deleted: the scores, the comparisons, the image tags (raters' work), the raters, the gold
pairs and the model versions with their metrics and configuration, as CSV (the columns of the API's
exports), and a manifest. The delete is one transaction; after it commits go the files: originals and
thumbnails, model weights, cached explanations and cached image features (``FeatureStore.drop_images``).
Text embeddings stay: they are keyed by the text alone and shared with every project that has that tag.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from core.streaming import Column, iter_csv, keyset_chunks, mapped
from labeling.models import Comparison, GoldPair, Image, ImageTag, PairCandidate, PairLease, Project
from labeling.services import data_exports
from modeling.ml.features import FeatureStore
from modeling.models import ModelVersion
from modeling.services import exports

log = logging.getLogger("tagrank.purge")

GOLD_PAIR_COLUMNS = [
    Column("gold_pair", "int"), Column("image_a", "int"), Column("image_b", "int"), Column("expected"),
    Column("is_active", "bool"), Column("note"), Column("created_by"), Column("created_at", "time"),
]
_GOLD_PAIR_FIELDS = ["id", "image_a_id", "image_b_id", "expected", "is_active", "note", "created_by__username",
                     "created_at"]


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
    """Every comparison of the project, oldest first, in chunks (keyset by id, like the scores); with several
    criteria, each judgment's answers in the comparisons export's ``answer_<key>`` columns after the others."""
    chunks = keyset_chunks(Comparison.objects.filter(project=project), _COMPARISON_FIELDS)
    rows = mapped(chunks, lambda row: (row[0], row[1].isoformat(), *row[2:]))
    return iter_csv(COMPARISON_COLUMNS + data_exports.answer_columns(project), data_exports.with_answers(rows, project))


def write_export(chunks: Iterable[str], path) -> int:
    """Write an export's chunks to ``path``; returns the bytes written."""
    written = 0
    with open(path, "w", encoding="utf-8", newline="") as handle:
        for chunk in chunks:
            written += handle.write(chunk)
    return written


def export_project(project: Project, export_dir: Path) -> dict[str, int]:
    export_dir.mkdir(parents=True, exist_ok=True)
    version_id = exports.active_version_id(project)
    tables = {
        "image-tags.csv": (data_exports.IMAGE_TAG_COLUMNS, data_exports.image_tag_chunks(project)),
        "raters.csv": (data_exports.RATER_COLUMNS, data_exports.rater_chunks(project)),
        "gold-pairs.csv": (GOLD_PAIR_COLUMNS,
                           keyset_chunks(GoldPair.objects.filter(project=project), _GOLD_PAIR_FIELDS)),
        "model-versions.csv": (exports.MODEL_VERSION_COLUMNS, exports.model_version_chunks(project)),
    }
    written = {
        "scores.csv": write_export(iter_csv(*exports.export_rows("csv", project, version_id)), export_dir / "scores.csv"),
        "comparisons.csv": write_export(iter_comparisons_csv(project), export_dir / "comparisons.csv"),
        **{name: write_export(iter_csv(columns, chunks), export_dir / name)
           for name, (columns, chunks) in tables.items()},
    }
    manifest = {
        "project": project.slug, "name": project.name, "exported_at": timezone.now().isoformat(),
        "model_version": version_id, "images": Image.objects.filter(project=project).count(),
        "comparisons": Comparison.objects.filter(project=project).count(),
        "image_tags": ImageTag.objects.filter(image__project=project).count(),
        "gold_pairs": GoldPair.objects.filter(project=project).count(),
        "model_versions": ModelVersion.objects.filter(project=project).count(), "files": written,
    }
    (export_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return written


def stored_files(project: Project) -> list[str]:
    """Names in media storage of the project's originals, thumbnails, weights and cached explanations."""
    images = Image.objects.filter(project=project).values_list("file", "thumbnail")
    names = [name for pair in images for name in pair if name]
    versions = list(ModelVersion.objects.filter(project=project).values_list("pk", "weights"))
    names += [weights for _, weights in versions if weights]
    for version_id, _ in versions:
        folder = f"explanations/v{version_id}"
        try:
            names += [f"{folder}/{name}" for name in default_storage.listdir(folder)[1]]
        except FileNotFoundError:
            pass
    return names


def feature_stores() -> list[FeatureStore]:
    """A store for every encoder that has a folder under TAGRANK_FEATURES_DIR."""
    root = Path(settings.TAGRANK_FEATURES_DIR)
    stores = []
    for marker in sorted(root.glob("*/encoder.json")) if root.exists() else []:
        try:
            stores.append(FeatureStore(root, json.loads(marker.read_text())["encoder_id"]))
        except (ValueError, KeyError):
            log.warning("purge: %s does not name its encoder; its features were left alone", marker)
    return stores


def purge_project(project: Project, export_dir: Path) -> PurgeReport:
    report = PurgeReport(project.slug, export_dir)
    report.exported = export_project(project, export_dir)
    log.warning("purge of project %r: export written to %s (%s)", project.slug, export_dir, report.exported)
    files = stored_files(project)
    image_ids = list(Image.objects.filter(project=project).values_list("pk", flat=True))
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
            for store in feature_stores():
                try:
                    report.files_removed += store.drop_images(image_ids)
                except OSError:
                    log.warning("purge of %r: could not remove features under %s", project.slug, store.folder)

        transaction.on_commit(remove_files)
    log.warning("purge of project %r: deleted %s; removed %d files", report.slug, report.deleted, report.files_removed)
    return report
