"""Encoder features of images and of their texts, extracted once per (image, encoder) and cached.

The arrays live in the feature store on disk (``modeling.ml.features.FeatureStore`` under
``TAGRANK_FEATURES_DIR``); an ``ImageFeatures`` row records that an image has them, so that the
sweep for images still missing features is one query. Extraction is idempotent: images that
already have features are skipped, so a repeated or duplicated task message costs nothing.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Iterable

import numpy as np
from django.conf import settings
from django.db.models import Exists, OuterRef

from labeling.models import Image, ImageTag, Project
from modeling.models import ImageFeatures

logger = logging.getLogger(__name__)

# Texts per image given to the ranker: its tags (alphabetical), then its caption; more are cut.
MAX_TEXTS_PER_IMAGE = 16


def encoder_name() -> str:
    return settings.TAGRANK_ENCODER


def encoder_id_for(name: str | None = None) -> str:
    """The encoder id that ``load_encoder(name)`` will report (default: the configured encoder), without loading torch."""
    from modeling.ml.encoder import encoder_id

    return encoder_id(name or encoder_name())


@lru_cache(maxsize=2)
def _load_encoder(name: str):
    from modeling.ml.encoder import load_encoder

    logger.info("loading encoder %s", name)
    return load_encoder(name)


def current_encoder():
    """The configured encoder, loaded once per process (a worker keeps it between tasks)."""
    return _load_encoder(encoder_name())


def feature_store(encoder_id: str | None = None):
    from modeling.ml.features import FeatureStore

    return FeatureStore(settings.TAGRANK_FEATURES_DIR, encoder_id or encoder_id_for())


# --- Texts -------------------------------------------------------------------------------------


def texts_by_image(image_ids: Iterable[int]) -> dict[int, list[str]]:
    """Each image's texts for the ranker: its tag names (sorted), then its caption when it has one."""
    ids = list(image_ids)
    texts: dict[int, list[str]] = {image_id: [] for image_id in ids}
    rows = ImageTag.objects.filter(image_id__in=ids).values_list("image_id", "tag__name").order_by("image_id", "tag__name")
    for image_id, name in rows.iterator(chunk_size=5000):
        texts[image_id].append(name)
    for image_id, caption in Image.objects.filter(pk__in=ids).exclude(caption="").values_list("id", "caption"):
        texts[image_id].append(caption.strip())
    return {image_id: [t for t in values if t][:MAX_TEXTS_PER_IMAGE] for image_id, values in texts.items()}


def ensure_text_features(store, texts: Iterable[str], encoder_loader: Callable = current_encoder) -> int:
    """Embed the texts the store does not have yet (tags get added after import). Returns how many."""
    missing = store.missing_texts(list(texts))
    if missing:
        encoder = encoder_loader()
        store.put_texts(missing, encoder.encode_texts(missing))
    return len(missing)


# --- Images ------------------------------------------------------------------------------------


@dataclass
class ExtractionReport:
    encoder_id: str
    extracted: list[int] = field(default_factory=list)
    already: int = 0
    failed: list[tuple[int, str]] = field(default_factory=list)
    texts: int = 0

    def as_dict(self) -> dict:
        return {
            "encoder_id": self.encoder_id,
            "extracted": len(self.extracted),
            "already": self.already,
            "failed": [{"image": image_id, "reason": reason} for image_id, reason in self.failed],
            "texts": self.texts,
        }


def images_missing_features(project: Project, encoder_id: str | None = None):
    """The project's images with no features under the encoder (by the bookkeeping rows)."""
    has = ImageFeatures.objects.filter(image=OuterRef("pk"), encoder_id=encoder_id or encoder_id_for())
    return Image.objects.filter(project=project).filter(~Exists(has))


def feature_coverage(project: Project, encoder_id: str | None = None) -> dict:
    total = Image.objects.filter(project=project).count()
    done = ImageFeatures.objects.filter(image__project=project, encoder_id=encoder_id or encoder_id_for()).count()
    return {"images": total, "with_features": done, "missing": max(total - done, 0)}


def _open_image(image: Image):
    from PIL import Image as PILImage

    with image.file.open("rb") as handle:
        picture = PILImage.open(handle)
        picture.load()
    return picture.convert("RGB")


def extract_features(
    image_ids: Iterable[int],
    *,
    encoder=None,
    batch_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ExtractionReport:
    """Compute and store the features of these images (and of their texts) that are not cached yet.

    An image whose file cannot be read is reported in ``failed`` and skipped; the others go on.
    ``progress(done, total)`` is called after each batch.
    """
    encoder = encoder or current_encoder()
    store = feature_store(encoder.encoder_id)
    # At least the encoder's own batch, which grows with a GPU's free memory (modeling.ml.device).
    batch_size = batch_size or max(int(settings.TAGRANK_FEATURE_BATCH_SIZE), getattr(encoder, "batch_size", 0))
    ids = sorted({int(i) for i in image_ids})
    report = ExtractionReport(encoder.encoder_id)
    recorded = set(
        ImageFeatures.objects.filter(image_id__in=ids, encoder_id=encoder.encoder_id).values_list("image_id", flat=True)
    )
    on_disk_missing = set(store.missing_images(ids))
    # A bookkeeping row whose file is gone (the features folder was wiped) is not trusted.
    todo = [i for i in ids if i not in recorded or i in on_disk_missing]
    report.already = len(ids) - len(todo)
    images = {image.pk: image for image in Image.objects.filter(pk__in=todo).only("id", "file")}
    todo = [i for i in todo if i in images]  # deleted since the message was sent: nothing to do
    for start in range(0, len(todo), batch_size):
        batch_ids, pictures = [], []
        for image_id in todo[start:start + batch_size]:
            try:
                pictures.append(_open_image(images[image_id]))
                batch_ids.append(image_id)
            except Exception as exc:  # a missing or unreadable file must not stop the others
                report.failed.append((image_id, f"{type(exc).__name__}: {exc}"))
                logger.warning("cannot read image %s for features: %s", image_id, exc)
        if batch_ids:
            store.put_images(batch_ids, encoder.encode_images(pictures))
            ImageFeatures.objects.bulk_create(
                [ImageFeatures(image_id=i, encoder_id=encoder.encoder_id) for i in batch_ids], ignore_conflicts=True
            )
            report.extracted.extend(batch_ids)
        if progress:
            progress(min(start + batch_size, len(todo)), len(todo))
    texts = [t for values in texts_by_image(ids).values() for t in values]
    report.texts = ensure_text_features(store, texts, lambda: encoder)
    return report


def ensure_image_features(image_ids: Iterable[int], *, progress=None) -> ExtractionReport | None:
    """Extract whatever is missing for these images, loading the encoder only when something is."""
    ids = list(image_ids)
    encoder_id = encoder_id_for()
    store = feature_store(encoder_id)
    recorded = set(
        ImageFeatures.objects.filter(image_id__in=ids, encoder_id=encoder_id).values_list("image_id", flat=True)
    )
    missing = [i for i in ids if i not in recorded] + [i for i in store.missing_images(recorded)]
    if not missing:
        return None
    return extract_features(missing, progress=progress)


def text_tokens(store, image_ids, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The ranker's text tokens of these images: [N,K,D] embeddings and the [N,K] mask of real ones."""
    texts = texts_by_image([int(i) for i in image_ids])
    K = max((len(v) for v in texts.values()), default=0)
    tokens = np.zeros((len(image_ids), K, dim), dtype=np.float32)
    mask = np.zeros((len(image_ids), K), dtype=bool)
    unique = sorted({t for values in texts.values() for t in values})
    if unique:
        ensure_text_features(store, unique)
        embeddings = store.get_texts(unique)                                     # [U,D], each text once
        number = {text: u for u, text in enumerate(unique)}
        rows, slots, which = [], [], []
        for row, image_id in enumerate(image_ids):
            for k, text in enumerate(texts[int(image_id)]):
                rows.append(row), slots.append(k), which.append(number[text])
        tokens[rows, slots] = embeddings[which]                                  # one gather for all images
        mask[rows, slots] = True
    return tokens, mask
