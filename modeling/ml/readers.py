"""The ML command line's inputs: label and comparison files (CSV or JSONL), a folder's images and their
features, cached in the feature store by a hash of each file's bytes.

A problem in an input file raises ``InputError`` with ``file:line: what is wrong``. Plain Python: no Django.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .features import atomic_write

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


class InputError(Exception):
    """A bad input file; the message starts with file:line."""


def say(*args):
    print(*args, file=sys.stderr, flush=True)


# -- reading label files -------------------------------------------------------------------------------
def _rows(path: Path):
    """(line number, dict) for each row of a CSV (with header) or JSONL file."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise InputError(f"{path}:{n}: not valid JSON ({e.msg})") from None
                if not isinstance(row, dict):
                    raise InputError(f"{path}:{n}: expected a JSON object")
                yield n, row
    else:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames:
                raise InputError(f"{path}:1: empty file, expected a header row")
            for row in reader:
                if None in row:
                    raise InputError(f"{path}:{reader.line_num}: more cells than header columns")
                yield reader.line_num, row


@dataclass
class Labels:
    """What the label files say about the images, by file name."""

    tags: dict = field(default_factory=dict)         # name -> [tag, ...]
    prompts: dict = field(default_factory=dict)      # name -> caption
    votes: dict = field(default_factory=dict)        # name -> [10] vote counts
    comparisons: list = field(default_factory=list)  # (name a, name b, outcome)
    where: dict = field(default_factory=dict)        # name -> "file:line" of its first mention
    meta: dict = field(default_factory=dict)         # name -> {other column: value}, e.g. cfg_scale

    @property
    def images(self) -> list[str]:
        return list(self.where)


def read_labels(path: Path, labels: Labels) -> Labels:
    path = Path(path)
    for n, row in _rows(path):
        name = str(row.get("image") or "").strip()
        if not name:
            raise InputError(f"{path}:{n}: missing 'image'")
        labels.where.setdefault(name, f"{path}:{n}")
        extra = {k: v for k, v in row.items() if k not in ("image", "tags", "prompt", "votes") and v not in (None, "")}
        if extra:
            labels.meta.setdefault(name, {}).update(extra)
        tags = row.get("tags") or []
        if isinstance(tags, str):
            tags = tags.split(";")
        if not isinstance(tags, list):
            raise InputError(f"{path}:{n}: 'tags' must be a list or a ';'-separated string")
        labels.tags[name] = [str(t).strip() for t in tags if str(t).strip()]
        if row.get("prompt"):
            labels.prompts[name] = str(row["prompt"]).strip()
        votes = row.get("votes")
        if votes not in (None, "", []):
            try:
                v = np.array(votes.split() if isinstance(votes, str) else votes, dtype=np.float64)
            except (ValueError, TypeError):
                raise InputError(f"{path}:{n}: 'votes' must be 10 numbers") from None
            if v.shape != (10,) or (v < 0).any() or v.sum() <= 0 or not np.isfinite(v).all():
                raise InputError(f"{path}:{n}: 'votes' must be 10 non-negative counts with a positive sum")
            labels.votes[name] = v
    return labels


WINNERS = {"a": 1.0, "b": 0.0, "tie": 0.5}


def read_comparisons(path: Path, labels: Labels) -> Labels:
    path = Path(path)
    for n, row in _rows(path):
        a, b = str(row.get("image_a") or "").strip(), str(row.get("image_b") or "").strip()
        if not a or not b:
            raise InputError(f"{path}:{n}: missing 'image_a' or 'image_b'")
        if a == b:
            raise InputError(f"{path}:{n}: an image compared with itself")
        if row.get("winner") not in (None, ""):
            winner = str(row["winner"]).strip().lower()
            if winner not in WINNERS:
                raise InputError(f"{path}:{n}: 'winner' must be a, b or tie, got {row['winner']!r}")
            outcome = WINNERS[winner]
        else:
            try:
                outcome = float(row.get("outcome"))
            except (TypeError, ValueError):
                raise InputError(f"{path}:{n}: needs 'winner' (a|b|tie) or 'outcome' (1|0|0.5)") from None
            if outcome not in (0.0, 0.5, 1.0):
                raise InputError(f"{path}:{n}: 'outcome' must be 1, 0 or 0.5, got {outcome}")
        for name in (a, b):
            labels.where.setdefault(name, f"{path}:{n}")
        labels.comparisons.append((a, b, outcome))
    return labels


# -- features --------------------------------------------------------------------------------------------
def image_id(path: Path) -> int:
    """A feature-store key from the file's bytes: the same picture under two names is encoded once."""
    return int(hashlib.sha256(path.read_bytes()).hexdigest()[:15], 16)


def folder_images(folder: Path) -> list[str]:
    return sorted(p.name for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


class FileIds:
    """Feature-store ids of a folder's files, remembered by (size, mtime) so that a second run does not
    read and hash every file again. Kept beside the store: ``<features>/file-ids/<folder hash>.json``."""

    def __init__(self, features_root: Path, folder: Path):
        folder = Path(folder).resolve()
        key = hashlib.sha256(str(folder).encode()).hexdigest()[:16]
        self.path = Path(features_root) / "file-ids" / f"{key}.json"
        self.known = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.hashed = 0

    def id_of(self, path: Path) -> int:
        st = path.stat()
        found = self.known.get(path.name)
        if found and found[0] == st.st_size and found[1] == st.st_mtime_ns:
            return found[2]
        self.hashed += 1
        i = image_id(path)
        self.known[path.name] = [st.st_size, st.st_mtime_ns, i]
        return i

    def bad_reason(self, name: str) -> str | None:
        """Why this file (unchanged since) could not be decoded last time; None if it could."""
        found = self.known.get(name)
        return found[3] if found and len(found) > 3 else None

    def mark_bad(self, name: str, reason: str) -> None:
        self.known[name] = self.known[name][:3] + [reason]

    def save(self) -> None:
        data = json.dumps(self.known).encode()
        atomic_write(self.path, lambda f: f.write(data))


@dataclass
class Features:
    image_tokens: np.ndarray       # [N,T,D] of the readable images
    tag_tokens: np.ndarray         # [N,K,D]
    tag_mask: np.ndarray           # [N,K]
    names: list                    # the readable images, in the order asked
    skipped: list                  # (name, reason) of images that could not be read


def compute_features(folder: Path, names: list[str], labels: Labels, encoder, store, batch_size: int = 32,
                     features_root: Path | None = None) -> Features:
    """Features of the named images, from the cache where possible. An image's texts are its tags, then
    its prompt. A file that is missing is an input error; one that cannot be decoded is skipped and
    counted (large photo sets always have a few)."""
    from PIL import Image

    paths = []
    for name in names:
        p = Path(folder) / name
        if not p.is_file():
            raise InputError(f"{labels.where.get(name, name)}: image {name!r} not found in {folder}")
        paths.append(p)
    file_ids = FileIds(features_root or store.root, folder)
    ids = [file_ids.id_of(p) for p in paths]
    if file_ids.hashed:
        say(f"  hashed {file_ids.hashed} new or changed files ({len(ids) - file_ids.hashed} known)")
    # Files that failed to decode before (and have not changed) are not tried again.
    bad = {i: file_ids.bad_reason(p.name) for i, p in zip(ids, paths) if file_ids.bad_reason(p.name)}
    batch_size = max(batch_size, getattr(encoder, "batch_size", batch_size))  # grown to the GPU's memory
    todo = sorted(set(store.missing_images([i for i in ids if i not in bad])))
    by_id = dict(zip(ids, paths))
    t0 = time.perf_counter()

    def load(k):
        try:
            with Image.open(by_id[k]) as im:
                return im.convert("RGB")
        except Exception as e:
            bad[k] = f"{type(e).__name__}: {e}"
            return None

    # Decoding runs in threads (PIL releases the GIL) so that a GPU encoder is not starved.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for i in range(0, len(todo), batch_size):
            batch = todo[i:i + batch_size]
            pictures = list(pool.map(load, batch))
            good = [(k, im) for k, im in zip(batch, pictures) if im is not None]
            if good:
                store.put_images([k for k, _ in good], encoder.encode_images([im for _, im in good]))
            done = min(i + batch_size, len(todo))
            say(f"  encoded {done}/{len(todo)} images ({done / (time.perf_counter() - t0):.1f}/s)")
    skipped = [(n, bad[i]) for n, i in zip(names, ids) if i in bad]
    for n, reason in skipped:
        file_ids.mark_bad(n, reason)
    file_ids.save()
    if skipped:
        say(f"  skipped {len(skipped)} unreadable image(s), e.g. {skipped[0][0]}: {skipped[0][1]}")
    keep = [k for k, i in enumerate(ids) if i not in bad]
    names = [names[k] for k in keep]
    image_tokens = store.get_images([ids[k] for k in keep], dtype=np.float16)

    texts = [labels.tags.get(n, []) + ([labels.prompts[n]] if n in labels.prompts else []) for n in names]
    missing = store.missing_texts([t for ts in texts for t in ts])
    if missing:
        store.put_texts(missing, encoder.encode_texts(missing))
    K = max((len(ts) for ts in texts), default=0)
    D = image_tokens.shape[-1] if image_tokens.size else encoder.dim
    tag_tokens = np.zeros((len(names), K, D), dtype=np.float32)
    tag_mask = np.zeros((len(names), K), dtype=bool)
    distinct = list(dict.fromkeys(t for ts in texts for t in ts))
    embedding = dict(zip(distinct, store.get_texts(distinct))) if distinct else {}
    for i, ts in enumerate(texts):
        for k, t in enumerate(ts):
            tag_tokens[i, k] = embedding[t]
            tag_mask[i, k] = True
    return Features(image_tokens, tag_tokens, tag_mask, names, skipped)
