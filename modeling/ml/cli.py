"""``python -m modeling train | evaluate | score | demo-data | convert-ava | doctor``.

Inputs are a folder of images plus label files, each CSV (with a header) or JSONL:

labels file, one row per image (every column but ``image`` optional):
    image    file name relative to the images folder
    tags     CSV: tag names separated by ";"      JSONL: a list of strings
    prompt   a caption or generation prompt, used as one more text token
    votes    CSV: 10 vote counts for scores 1..10 separated by spaces   JSONL: a list of 10 numbers

comparisons file, one row per human comparison:
    image_a, image_b, and either winner (a | b | tie) or outcome (1 = a wins, 0 = b wins, 0.5 = tie)

Features are computed once per image and encoder and cached in the feature store
(``--features``, default $TAGRANK_FEATURES_DIR or var/features), keyed by a hash of the file's
bytes, so a second run on the same images does not encode them again.

A problem in an input file stops the command with ``file:line: what is wrong`` and exit status 2.
This module and everything it imports stay free of Django.
"""
from __future__ import annotations

import argparse
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

from .metrics import TABLE_HEADER, format_row

from core import spreadsheet_safety  # plain Python, no Django

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


class InputError(Exception):
    """A bad input file; the message starts with file:line."""


def _say(*args):
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
        from .features import _atomic_write

        data = json.dumps(self.known).encode()
        _atomic_write(self.path, lambda f: f.write(data))


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
        _say(f"  hashed {file_ids.hashed} new or changed files ({len(ids) - file_ids.hashed} known)")
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
            _say(f"  encoded {done}/{len(todo)} images ({done / (time.perf_counter() - t0):.1f}/s)")
    skipped = [(n, bad[i]) for n, i in zip(names, ids) if i in bad]
    for n, reason in skipped:
        file_ids.mark_bad(n, reason)
    file_ids.save()
    if skipped:
        _say(f"  skipped {len(skipped)} unreadable image(s), e.g. {skipped[0][0]}: {skipped[0][1]}")
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


def build_data(args):
    """RankingData from --images, --labels and --comparisons, plus the image names in row order."""
    from .encoder import load_encoder
    from .similarity import image_tag_similarity
    from .features import FeatureStore
    from .training_data import RankingData

    labels = Labels()
    for path in args.labels or []:
        read_labels(path, labels)
    for path in args.comparisons or []:
        read_comparisons(path, labels)
    names = labels.images
    if not names:
        raise InputError("no images: give --labels and/or --comparisons")
    from .encoder import DEFAULT_REGIONS

    encoder = load_encoder(args.encoder, batch_size=args.batch_size, regions=args.regions or DEFAULT_REGIONS)
    store = FeatureStore(args.features, encoder.encoder_id)
    feats = compute_features(Path(args.images), names, labels, encoder, store, args.batch_size)
    X, G, M, names = feats.image_tokens, feats.tag_tokens, feats.tag_mask, feats.names
    row = {n: i for i, n in enumerate(names)}
    usable = [c for c in labels.comparisons if c[0] in row and c[1] in row]
    if len(usable) < len(labels.comparisons):
        _say(f"  {len(labels.comparisons) - len(usable)} comparison(s) left out: they involve a skipped image")
    a = [row[c[0]] for c in usable]
    b = [row[c[1]] for c in usable]
    y = [c[2] for c in usable]
    ref_dist = ref_mask = None
    if labels.votes:
        ref_dist = np.zeros((len(names), 10), dtype=np.float32)
        ref_mask = np.zeros(len(names), dtype=bool)
        for n, v in labels.votes.items():
            if n in row:
                ref_dist[row[n]] = v / v.sum()
                ref_mask[row[n]] = True
    data = RankingData(X, G, M, a, b, y, ref_dist=ref_dist, ref_mask=ref_mask,
                       similarity=image_tag_similarity(X, G, M))
    args.skipped_images = feats.skipped
    args.labels_read = labels
    return data, names, encoder.encoder_id


# -- commands --------------------------------------------------------------------------------------------
def _train_config(args):
    from .training import TrainConfig

    cfg = TrainConfig.from_dict(json.loads(args.config)) if args.config else TrainConfig()
    for name in ("epochs", "seed", "lam", "val_fraction", "lr"):
        if getattr(args, name, None) is not None:
            setattr(cfg, name, getattr(args, name))
    if getattr(args, "width", None):
        cfg.ranker.width = args.width
    return cfg


def _progress(label):
    def report(e):
        pa = e.get("val_pairwise_agreement")
        _say(f"  {label} epoch {e['epoch']}: loss {e['train_loss']:.4f}"
             + (f", validation agreement {pa:.3f}" if pa is not None else "")
             + f" ({e['seconds']:.1f}s)")
    return report


def cmd_train(args) -> int:
    from .checkpoints import save_checkpoint
    from .training import train_ranker

    data, names, encoder_id = build_data(args)
    cfg = _train_config(args)
    _say(f"training {args.model} on {data.n_images} images, {data.n_comparisons} comparisons, "
         f"{data.n_references} vote distributions")
    result = train_ranker(data, cfg, model_kind=args.model, progress=_progress(args.model))
    save_checkpoint(args.out, result, {"encoder_id": encoder_id, "images": data.n_images,
                                       "label_files": [str(p) for p in (args.labels or []) + (args.comparisons or [])]})
    print(TABLE_HEADER)
    print(format_row(args.model, result.metrics))
    print(f"saved {args.out} (losses: {result.losses_used}, {result.metrics['train_seconds']:.1f}s)")
    return 0


def cmd_evaluate(args) -> int:
    from .protocol import (MODELS, TEST_SPLIT_DEFINITION, fixed_test_split, main_table, metadata_table,
                           run_protocol, seed_metrics, tag_table)
    from .synthetic import synthetic_data

    cfg = _train_config(args)
    tags, meta = None, None
    if args.synthetic:
        data, _ = synthetic_data(args.n_images, args.n_comparisons, dim=args.dim, seed=args.data_seed)
        names = [f"synthetic{i:07d}" for i in range(data.n_images)]
        source = f"synthetic set: {data.n_images} images, {data.n_comparisons} comparisons, dim {args.dim}"
    else:
        if not args.images:
            raise InputError("evaluate needs --images with --labels/--comparisons, or --synthetic")
        data, names, encoder_id = build_data(args)
        labels = args.labels_read
        tags = [labels.tags.get(n, []) for n in names]
        meta = [labels.meta.get(n, {}) for n in names]
        skipped = len(args.skipped_images)
        source = (f"{args.images}: {data.n_images} images ({skipped} unreadable skipped), "
                  f"{data.n_comparisons} comparisons, encoder {encoder_id}")
    test_list = None
    if args.test_list:
        test_list = Path(args.test_list).read_text().split()
    is_test = fixed_test_split(names, test_list)
    if not is_test.any() or is_test.all():
        raise InputError(f"{args.test_list or 'the name-hash rule'}: the test split has {int(is_test.sum())} of "
                         f"{len(names)} images; it must leave images for training")
    _say(f"evaluating on the {source}")
    progress = None if args.quiet else (lambda kind, seed: _progress(f"{kind} seed {seed}"))
    runs = run_protocol(data, is_test, cfg, seeds=args.seeds, progress=progress)
    c = runs.counts
    split = f"the images in {args.test_list}" if args.test_list else TEST_SPLIT_DEFINITION
    print(f"Test split ({split}): {c['test_images']} images, {c['test_comparisons']} comparisons; never used "
          f"for training or early stopping (validation: {c['val_images']} of the other images, per seed; "
          f"{c['cross_test_comparisons_unused']} comparisons across the test boundary unused)")
    print(main_table(runs, data, n_bootstrap=args.bootstrap))
    if args.tag_table:
        print()
        print(tag_table(runs, data, tags or [[] for _ in names]))
    if args.by:
        t = runs.test_images
        human = np.full(len(t), np.nan)
        if data.ref_dist is not None:
            human = np.where(data.ref_mask[t], data.ref_dist[t] @ np.arange(1, 11), np.nan)
        print()
        print(metadata_table(args.by, [(meta[i] if meta else {}).get(args.by) for i in t],
                             {"Baseline": runs.mean["image_only"].mean(axis=0), "Ours": runs.mean["tags"].mean(axis=0),
                              "Human": human}))
    if args.json:
        results = {label: {**seed_metrics(runs, data, kind), "losses_used": runs.losses_used[kind]}
                   for kind, label in MODELS}
        results["counts"], results["seeds"] = runs.counts, runs.seeds
        Path(args.json).write_text(json.dumps(results, indent=2, default=float))
    return 0


def cmd_score(args) -> int:
    from .encoder import DEFAULT_REGIONS, TINY_ID, load_encoder
    from .features import FeatureStore
    from .checkpoints import load_checkpoint
    from .training import score_images

    model, meta = load_checkpoint(args.model)
    encoder_id = meta.get("encoder_id") or ""
    # "tiny-v1", a hub id or a folder, with "@regions=N" when the pooling grid is not the default
    base, _, regions = encoder_id.partition("@regions=")
    name = args.encoder or ("tiny" if base == TINY_ID else base or None)
    encoder = load_encoder(name, batch_size=args.batch_size, regions=int(regions or DEFAULT_REGIONS))
    if encoder_id and encoder.encoder_id != encoder_id:
        raise InputError(f"{args.model}: trained on encoder {encoder_id!r}, not {encoder.encoder_id!r}")
    labels = Labels()
    for path in args.labels or []:
        read_labels(path, labels)
    names = folder_images(Path(args.images))
    store = FeatureStore(args.features, encoder.encoder_id)
    feats = compute_features(Path(args.images), names, labels, encoder, store, args.batch_size)
    X, G, M, names = feats.image_tokens, feats.tag_tokens, feats.tag_mask, feats.names
    t0 = time.perf_counter()
    mean, dist, unc = score_images(model, X, G, M)
    _say(f"scored {len(names)} images in {time.perf_counter() - t0:.2f}s")
    with open(args.out, "w", newline="", encoding="utf-8") as f:
        w = spreadsheet_safety.writer(f)
        w.writerow(["image", "score", "uncertainty"] + [f"p{k}" for k in range(1, 11)])
        for n, s, u, d in zip(names, mean, unc, dist):
            w.writerow([n, f"{s:.4f}", f"{u:.4f}"] + [f"{x:.4f}" for x in d])
    print(f"wrote {len(names)} scores to {args.out}" + (f"; skipped {len(feats.skipped)} unreadable image(s)"
                                                         if feats.skipped else ""))
    if args.by:
        from .protocol import metadata_table

        print(metadata_table(args.by, [labels.meta.get(n, {}).get(args.by) for n in names], {"Ours": mean}))
    return 0


def cmd_demo_data(args) -> int:
    """A small folder of generated pictures, labels and comparisons to try the commands on."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(args.seed)
    out = Path(args.out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    shapes = ["circle", "square", "triangle"]
    colours = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 70, 220)}
    rows, quality = [], []
    for i in range(args.n_images):
        shape, colour = shapes[i % 3], list(colours)[(i // 3) % 3]
        blur = float(rng.uniform(0, 4))
        im = Image.new("RGB", (96, 96), (235, 235, 225))
        d = ImageDraw.Draw(im)
        box = [20 + rng.integers(-8, 8), 20 + rng.integers(-8, 8), 76, 76]
        if shape == "circle":
            d.ellipse(box, fill=colours[colour])
        elif shape == "square":
            d.rectangle(box, fill=colours[colour])
        else:
            d.polygon([(48, box[1]), (box[0], 76), (76, 76)], fill=colours[colour])
        im = im.filter(ImageFilter.GaussianBlur(blur))
        name = f"img{i:04d}.png"
        im.save(out / "images" / name)
        honest = rng.random() < 0.5  # half the images are tagged with what they show
        tags = [shape, colour] if honest else [shapes[(i + 1) % 3], list(colours)[(i // 3 + 1) % 3]]
        q = np.clip(7.5 - blur + (1.0 if honest else -1.0), 1, 10)
        quality.append(q)
        p = np.exp(-0.5 * ((np.arange(1, 11) - q) / 1.3) ** 2)
        votes = rng.multinomial(50, p / p.sum())
        rows.append({"image": name, "tags": ";".join(tags), "votes": " ".join(map(str, votes))})
    with open(out / "labels.csv", "w", newline="") as f:
        w = spreadsheet_safety.SafeDictWriter(f, ["image", "tags", "votes"])
        w.writeheader()
        w.writerows(rows)
    quality = np.array(quality)
    with open(out / "comparisons.csv", "w", newline="") as f:
        w = spreadsheet_safety.writer(f)
        w.writerow(["image_a", "image_b", "winner"])
        for _ in range(args.n_images * 10):
            a, b = rng.choice(args.n_images, 2, replace=False)
            win = rng.random() < 1 / (1 + np.exp(-1.5 * (quality[a] - quality[b])))
            w.writerow([rows[a]["image"], rows[b]["image"], "a" if win else "b"])
    print(f"wrote {args.n_images} images, labels.csv and comparisons.csv under {out}")
    return 0


def cmd_convert_ava(args) -> int:
    """AVA.txt (+ tags.txt) -> a labels CSV (image, tags, votes) for the images present in the folder."""
    names = {}
    for path in (args.ava, args.tags_file):
        if path and not Path(path).is_file():
            raise InputError(f"{path}: no such file")
    if args.tags_file:
        with open(args.tags_file, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                parts = line.strip().split(None, 1)
                if len(parts) == 2 and parts[0].isdigit():
                    names[int(parts[0])] = parts[1].strip()
                elif line.strip():
                    raise InputError(f"{args.tags_file}:{n}: expected 'id name'")
    present = set(folder_images(Path(args.images))) if args.images else None
    written = skipped = 0
    with open(args.ava, encoding="utf-8") as src, open(args.out, "w", newline="", encoding="utf-8") as dst:
        w = spreadsheet_safety.writer(dst)
        w.writerow(["image", "tags", "votes"])
        for n, line in enumerate(src, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 15 or not all(p.isdigit() for p in parts):
                raise InputError(f"{args.ava}:{n}: expected 15 integers (index, image id, 10 votes, 2 tags, challenge)")
            name = f"{parts[1]}.jpg"
            if present is not None and name not in present:
                skipped += 1
                continue
            tags = [names.get(int(t), f"tag {t}") for t in parts[12:14] if t != "0"]
            w.writerow([name, ";".join(tags), " ".join(parts[2:12])])
            written += 1
    print(f"wrote {written} rows to {args.out} ({skipped} images not in the folder)")
    return 0


def cmd_doctor(args) -> int:
    from .doctor import main as doctor

    return doctor(args)


# -- argument parsing ------------------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m modeling", description="Tagrank's image-quality ranker: "
                                "train, evaluate (the poster's table), score.")
    sub = p.add_subparsers(dest="command", required=True)
    default_features = os.environ.get("TAGRANK_FEATURES_DIR", "var/features")

    def data_args(s, required=True):
        s.add_argument("--images", type=Path, required=required, help="folder of images")
        s.add_argument("--labels", type=Path, action="append", help="labels CSV/JSONL (image, tags, prompt, votes)")
        s.add_argument("--comparisons", type=Path, action="append", help="comparisons CSV/JSONL")
        s.add_argument("--encoder", default=None, help="quality-stats, tiny, a hub id or a local CLIP folder (default $TAGRANK_ENCODER or quality-stats)")
        s.add_argument("--features", type=Path, default=Path(default_features), help="feature store folder")
        s.add_argument("--batch-size", dest="batch_size", type=int, default=32,
                       help="images per encoder batch (on CUDA it grows with the free memory)")
        s.add_argument("--regions", type=int, default=None,
                       help="patch tokens pooled to an N x N grid (default 2: 5 tokens an image; 1: 2 tokens, "
                            "less disk and faster heads); a separate feature cache per N")

    def train_args(s):
        s.add_argument("--epochs", type=int)
        s.add_argument("--seed", type=int)
        s.add_argument("--lr", type=float)
        s.add_argument("--lam", type=float, help="lambda of the CLIP image-tag similarity in the ranking target")
        s.add_argument("--val-fraction", dest="val_fraction", type=float)
        s.add_argument("--width", type=int, help="head width")
        s.add_argument("--config", help='TrainConfig overrides as JSON, e.g. \'{"ranker": {"layers": 2}}\'')

    s = sub.add_parser("train", help="train a ranker and save a checkpoint")
    data_args(s)
    train_args(s)
    s.add_argument("--model", choices=["tags", "image_only"], default="tags")
    s.add_argument("--out", type=Path, required=True, help="checkpoint path")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("evaluate", help="the poster's table: image-only baseline vs tags model, same split")
    data_args(s, required=False)
    train_args(s)
    s.add_argument("--synthetic", action="store_true", help="use a generated feature set, no files needed")
    s.add_argument("--n-images", dest="n_images", type=int, default=2000)
    s.add_argument("--n-comparisons", dest="n_comparisons", type=int, default=20000)
    s.add_argument("--dim", type=int, default=64, help="feature size of the synthetic set")
    s.add_argument("--data-seed", dest="data_seed", type=int, default=0, help="seed of the synthetic set")
    s.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (default 0 1 2)")
    s.add_argument("--test-list", dest="test_list", type=Path,
                   help="the standard test split: image names or ids, whitespace-separated (AVA: generic_test.jpgl)")
    s.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples of the test images")
    s.add_argument("--tag-table", dest="tag_table", action="store_true", help="also print the per-tag table")
    s.add_argument("--by", help="also print mean scores by this labels column (e.g. cfg_scale)")
    s.add_argument("--json", type=Path, help="also write the metrics as JSON")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("score", help="score every image of a folder into a CSV")
    s.add_argument("--model", type=Path, required=True, help="checkpoint from train")
    s.add_argument("--images", type=Path, required=True)
    s.add_argument("--labels", type=Path, action="append", help="tags and prompts of the images")
    s.add_argument("--encoder", default=None, help="default: the checkpoint's encoder")
    s.add_argument("--features", type=Path, default=Path(default_features))
    s.add_argument("--batch-size", dest="batch_size", type=int, default=32, help="images per encoder batch")
    s.add_argument("--out", type=Path, required=True, help="CSV to write")
    s.add_argument("--by", help="also print mean scores by this labels column (e.g. cfg_scale)")
    s.set_defaults(func=cmd_score)

    s = sub.add_parser("demo-data", help="write a small generated dataset (images, labels, comparisons)")
    s.add_argument("out", type=Path)
    s.add_argument("--n-images", dest="n_images", type=int, default=120)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_demo_data)

    s = sub.add_parser("doctor", help="device, precision, encoder images/s and training steps/s on this host")
    s.add_argument("--device", default=None, help="auto | cpu | cuda (default $TAGRANK_DEVICE or auto)")
    s.add_argument("--encoder", default=None, help="default $TAGRANK_ENCODER or tiny")
    s.add_argument("--n-images", dest="n_images", type=int, default=64, help="images to encode")
    s.add_argument("--train-images", dest="train_images", type=int, default=2000)
    s.add_argument("--train-comparisons", dest="train_comparisons", type=int, default=20480)
    s.set_defaults(func=cmd_doctor)

    s = sub.add_parser("convert-ava", help="AVA.txt + tags.txt -> labels CSV")
    s.add_argument("--ava", type=Path, required=True)
    s.add_argument("--tags-file", dest="tags_file", type=Path)
    s.add_argument("--images", type=Path, help="only rows whose image is in this folder")
    s.add_argument("--out", type=Path, required=True)
    s.set_defaults(func=cmd_convert_ava)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    from .checkpoints import CheckpointError

    try:
        return args.func(args)
    except (InputError, CheckpointError) as e:
        _say(f"error: {e}")
        return 2
