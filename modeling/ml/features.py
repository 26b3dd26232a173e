"""Disk-backed cache of encoder features, shared by workers through a common folder.

Layout under ``root`` (one folder per encoder id, so features of two encoders never mix):

    <slug>-<hash>/encoder.json                          {"encoder_id": ...}
    <slug>-<hash>/shards/<time>-<uid>.tokens.npy        image tokens [n, T, D] float16, one write's images
    <slug>-<hash>/shards/<time>-<uid>.ids.npy           their image ids [n] int64
    <slug>-<hash>/images/<id // 1000>/<id>.npy          older layout: tokens [T, D] float32, one per image (read only)
    <slug>-<hash>/texts/<h[:2]>/<h>.npy                 text embedding [D] float32, h = sha256(text)

Image tokens are L2-normalised, so float16 keeps them to ~1e-3 at half the bytes; many images per
file keep a million images to thousands of files. A shard is never rewritten: each ``put_images``
writes a new one (writers on different hosts never touch each other's files, no locking), and when
an image is written again the newest shard wins (names sort by time). The tokens file is written
first and the ids file last, each through a temporary file and ``os.replace`` (atomic), so a reader
sees a shard whole or not at all. Reads memory-map the shards and copy out only the rows asked for.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from pathlib import Path

import numpy as np

SHARD_DTYPE = np.float16
_F16_MAX = float(np.finfo(np.float16).max)


def atomic_write(path: Path, write) -> None:
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
            atomic_write(marker, lambda f: f.write(data))
        self._index: dict[int, tuple[str, int]] = {}   # image id -> (shard name, row)
        self._seen: set[str] = set()                    # shards already indexed

    # -- images, keyed by integer image id ------------------------------------------------------
    @property
    def shards(self) -> Path:
        return self.folder / "shards"

    def _legacy_path(self, image_id: int) -> Path:
        image_id = int(image_id)
        return self.folder / "images" / str(image_id // 1000) / f"{image_id}.npy"

    def _add_shard(self, name: str, ids) -> None:
        for row, image_id in enumerate(np.asarray(ids, dtype=np.int64).tolist()):
            found = self._index.get(image_id)
            if found is None or found[0] <= name:  # the newest shard of an image wins
                self._index[image_id] = (name, row)
        self._seen.add(name)

    def _refresh(self) -> None:
        """Index the shards other writers added since the last look (one directory listing)."""
        try:
            names = sorted(n[: -len(".ids.npy")] for n in os.listdir(self.shards) if n.endswith(".ids.npy"))
        except FileNotFoundError:
            return
        for name in names:
            if name not in self._seen:
                self._add_shard(name, np.load(self.shards / f"{name}.ids.npy"))

    def _located(self, ids) -> tuple[list[int], list[int]]:
        """(ids in a shard, ids only in the older per-image layout); the rest are missing."""
        ids = [int(i) for i in ids]
        if any(i not in self._index for i in ids):
            self._refresh()
        sharded = [i for i in ids if i in self._index]
        in_legacy = self._legacy_ids([i for i in ids if i not in self._index])
        legacy = [i for i in ids if i in in_legacy]
        return sharded, legacy

    def _legacy_ids(self, ids: list[int]) -> set[int]:
        """Of ``ids``, those in the older per-image layout: one listing per folder of 1,000 images, not a file
        check per image (10^6 of those took a minute in every refit's model prior)."""
        folder = self.folder / "images"
        if not ids or not folder.is_dir():
            return set()
        found = set()
        for bucket in {i // 1000 for i in ids}:
            try:
                names = os.listdir(folder / str(bucket))
            except FileNotFoundError:
                continue
            found.update(int(name[:-4]) for name in names if name.endswith(".npy") and name[:-4].isdigit())
        return found.intersection(ids)

    def put_images(self, ids, tokens) -> None:
        """Store tokens [N, T, D] for image ids [N], as one float16 shard."""
        tokens = np.asarray(tokens, dtype=np.float32)
        ids = np.asarray([int(i) for i in ids], dtype=np.int64)
        if len(ids) != len(tokens):
            raise ValueError(f"{len(ids)} ids but {len(tokens)} token arrays")
        if not len(ids):
            return
        if not np.isfinite(tokens).all() or np.abs(tokens).max() > _F16_MAX:
            raise ValueError("image tokens must be finite and within float16 range")
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}"
        half = tokens.astype(SHARD_DTYPE)
        atomic_write(self.shards / f"{name}.tokens.npy", lambda f: np.save(f, half))
        atomic_write(self.shards / f"{name}.ids.npy", lambda f: np.save(f, ids))  # last: the shard is whole
        self._add_shard(name, ids)

    def has_images(self, ids) -> np.ndarray:
        sharded, legacy = self._located(ids)
        present = set(sharded) | set(legacy)
        return np.array([int(i) in present for i in ids], dtype=bool)

    def missing_images(self, ids) -> list[int]:
        sharded, legacy = self._located(ids)
        present = set(sharded) | set(legacy)
        return [int(i) for i in ids if int(i) not in present]

    def get_images(self, ids, dtype=np.float32) -> np.ndarray:
        """Tokens [N, T, D] for image ids [N] (float32 unless ``dtype`` says otherwise, e.g. float16 to
        halve a training set's memory); KeyError naming the missing ids."""
        ids = [int(i) for i in ids]
        missing = self.missing_images(ids)
        if missing:
            raise KeyError(f"no features for {len(missing)} image(s) under {self.encoder_id!r}, e.g. {missing[:5]}")
        if not ids:
            return np.zeros((0, 0, 0), dtype=dtype)
        by_shard: dict[str, tuple[list[int], list[int]]] = {}
        legacy = []
        for pos, image_id in enumerate(ids):
            found = self._index.get(image_id)
            if found is None:
                legacy.append(pos)
            else:
                positions, rows = by_shard.setdefault(found[0], ([], []))
                positions.append(pos)
                rows.append(found[1])
        out = None
        for name, (positions, rows) in by_shard.items():
            shard = np.load(self.shards / f"{name}.tokens.npy", mmap_mode="r")  # [n,T,D] float16, on disk
            if out is None:
                out = np.empty((len(ids), *shard.shape[1:]), dtype=SHARD_DTYPE)
            order = np.argsort(rows, kind="stable")  # ascending rows read the file front to back
            out[np.asarray(positions)[order]] = shard[np.asarray(rows)[order]]
        if out is not None:
            out = out.astype(dtype, copy=False)  # one cast at the end: casting while gathering is ~4x slower
        for pos in legacy:
            t = np.load(self._legacy_path(ids[pos]))
            if out is None:
                out = np.empty((len(ids), *t.shape), dtype=dtype)
            out[pos] = t
        return out

    def drop_images(self, ids) -> int:
        """Delete the features of image ids [N] (a purge); returns the files removed.

        A shard holding only those images goes; one that also holds others is written again without
        them, under a name that sorts right after the old one (so a newer shard of a kept image still
        wins), before the old one goes: ids file first, so a reader sees the old shard whole or not at all.
        """
        drop = {int(i) for i in ids}
        removed = 0
        try:
            names = sorted(n[: -len(".ids.npy")] for n in os.listdir(self.shards) if n.endswith(".ids.npy"))
        except FileNotFoundError:
            names = []
        for name in names:
            shard_ids = np.load(self.shards / f"{name}.ids.npy")  # [n] int64
            hit = np.isin(shard_ids, list(drop))
            if not hit.any():
                continue
            if not hit.all():
                kept = np.load(self.shards / f"{name}.tokens.npy")[~hit]  # [k,T,D] float16
                kept_ids = shard_ids[~hit]
                atomic_write(self.shards / f"{name}r.tokens.npy", lambda f: np.save(f, kept))
                atomic_write(self.shards / f"{name}r.ids.npy", lambda f: np.save(f, kept_ids))
            for suffix in (".ids.npy", ".tokens.npy"):
                (self.shards / f"{name}{suffix}").unlink(missing_ok=True)
                removed += 1
        for image_id in drop:
            path = self._legacy_path(image_id)
            if path.exists():
                path.unlink()
                removed += 1
        self._seen.clear()
        self._index.clear()  # shard names changed: index again on the next read
        return removed

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
            atomic_write(self._text_path(text), lambda f, e=e: np.save(f, e))

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
