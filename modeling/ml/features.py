"""Disk-backed cache of encoder features, shared by workers through a common folder.

Layout under ``root`` (one folder per encoder id, so features of two encoders never mix):

    <slug>-<hash>/encoder.json                  {"encoder_id": ...}
    <slug>-<hash>/images/<id // 1000>/<id>.npy  image tokens [T, D] float32
    <slug>-<hash>/texts/<h[:2]>/<h>.npy         text embedding [D] float32, h = sha256(text)

One small file per image: writers on different hosts never rewrite each other's files, so no
locking is needed. Every write goes to a temporary file in the same folder and is moved into
place with ``os.replace``, which is atomic: a reader sees the whole array or nothing.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from pathlib import Path

import numpy as np


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class FeatureStore:
    def __init__(self, root: Path | str, encoder_id: str):
        self.root = Path(root)
        self.encoder_id = encoder_id
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", encoder_id).strip("_")[-60:]
        digest = hashlib.sha256(encoder_id.encode("utf-8")).hexdigest()[:12]
        self.folder = self.root / f"{slug}-{digest}"
        marker = self.folder / "encoder.json"
        if marker.exists():
            found = json.loads(marker.read_text()).get("encoder_id")
            if found != encoder_id:
                raise ValueError(f"{self.folder} holds features of encoder {found!r}, not {encoder_id!r}")
        else:
            data = json.dumps({"encoder_id": encoder_id}).encode()
            _atomic_write(marker, lambda f: f.write(data))

    # -- images, keyed by integer image id ------------------------------------------------------
    def _image_path(self, image_id: int) -> Path:
        image_id = int(image_id)
        return self.folder / "images" / str(image_id // 1000) / f"{image_id}.npy"

    def put_images(self, ids, tokens) -> None:
        """Store tokens [N, T, D] for image ids [N]."""
        tokens = np.asarray(tokens, dtype=np.float32)
        if len(ids) != len(tokens):
            raise ValueError(f"{len(ids)} ids but {len(tokens)} token arrays")
        for image_id, t in zip(ids, tokens):
            _atomic_write(self._image_path(image_id), lambda f, t=t: np.save(f, t))

    def has_images(self, ids) -> np.ndarray:
        return np.array([self._image_path(i).exists() for i in ids], dtype=bool)

    def missing_images(self, ids) -> list[int]:
        return [int(i) for i in ids if not self._image_path(i).exists()]

    def get_images(self, ids) -> np.ndarray:
        """Tokens [N, T, D] float32 for image ids [N]; KeyError naming the missing ids."""
        missing = self.missing_images(ids)
        if missing:
            raise KeyError(f"no features for {len(missing)} image(s) under {self.encoder_id!r}, e.g. {missing[:5]}")
        arrays = [np.load(self._image_path(i)) for i in ids]
        if not arrays:
            return np.zeros((0, 0, 0), dtype=np.float32)
        return np.stack(arrays).astype(np.float32, copy=False)

    # -- texts, keyed by the exact text ---------------------------------------------------------
    def _text_path(self, text: str) -> Path:
        key = _text_key(text)
        return self.folder / "texts" / key[:2] / f"{key}.npy"

    def put_texts(self, texts, emb) -> None:
        """Store embeddings [N, D] for texts [N]."""
        emb = np.asarray(emb, dtype=np.float32)
        if len(texts) != len(emb):
            raise ValueError(f"{len(texts)} texts but {len(emb)} embeddings")
        for text, e in zip(texts, emb):
            _atomic_write(self._text_path(text), lambda f, e=e: np.save(f, e))

    def missing_texts(self, texts) -> list[str]:
        return [t for t in dict.fromkeys(texts) if not self._text_path(t).exists()]

    def get_texts(self, texts) -> np.ndarray:
        """Embeddings [N, D] float32; KeyError naming the missing texts."""
        missing = self.missing_texts(texts)
        if missing:
            raise KeyError(f"no embedding for {len(missing)} text(s) under {self.encoder_id!r}, e.g. {missing[:5]}")
        arrays = [np.load(self._text_path(t)) for t in texts]
        if not arrays:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack(arrays).astype(np.float32, copy=False)
