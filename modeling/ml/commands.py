"""The ML command line's commands: train, evaluate, score, demo-data, convert-ava, doctor (``modeling/ml/cli.py``
parses the arguments). Plain Python: no Django.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from core import spreadsheet_safety  # plain Python, no Django
from core.ava import read_ava_list, read_ava_tags
from core.input_files import ImportFileError

from .demo_data import write_demo_data
from .metrics import TABLE_HEADER, format_row
from .readers import InputError, Labels, compute_features, folder_images, read_comparisons, read_labels, say

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
        say(f"  {len(labels.comparisons) - len(usable)} comparison(s) left out: they involve a skipped image")
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
        say(f"  {label} epoch {e['epoch']}: loss {e['train_loss']:.4f}"
             + (f", validation agreement {pa:.3f}" if pa is not None else "")
             + f" ({e['seconds']:.1f}s)")
    return report


def cmd_train(args) -> int:
    from .checkpoints import save_checkpoint
    from .training import train_ranker

    data, names, encoder_id = build_data(args)
    cfg = _train_config(args)
    say(f"training {args.model} on {data.n_images} images, {data.n_comparisons} comparisons, "
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
    say(f"evaluating on the {source}")
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
    say(f"scored {len(names)} images in {time.perf_counter() - t0:.2f}s")
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


def cmd_convert_ava(args) -> int:
    """AVA.txt (+ tags.txt) -> a labels CSV (image, tags, votes) for the images present in the folder. The files
    are read by the import's own reader (``core.ava``); a tag id without a name is written as ``tag <id>``."""
    for path in (args.ava, args.tags_file):
        if path and not Path(path).is_file():
            raise InputError(f"{path}: no such file")
    present = set(folder_images(Path(args.images))) if args.images else None
    written = skipped = 0
    try:
        names = read_ava_tags(args.tags_file) if args.tags_file else {}
        with open(args.out, "w", newline="", encoding="utf-8") as dst:
            w = spreadsheet_safety.writer(dst)
            w.writerow(["image", "tags", "votes"])
            for row in read_ava_list(args.ava):
                name = f"{row.image_id}.jpg"
                if present is not None and name not in present:
                    skipped += 1
                    continue
                tags = [names.get(t, f"tag {t}") for t in row.semantic_tag_ids if t]
                w.writerow([name, ";".join(tags), " ".join(map(str, row.votes))])
                written += 1
    except ImportFileError as exc:
        raise InputError(str(exc)) from None
    print(f"wrote {written} rows to {args.out} ({skipped} images not in the folder)")
    return 0


def cmd_demo_data(args) -> int:
    """A small folder of generated pictures, labels and comparisons to try the commands on."""
    write_demo_data(Path(args.out), args.n_images, args.seed)
    print(f"wrote {args.n_images} images, labels.csv and comparisons.csv under {args.out}")
    return 0


def cmd_doctor(args) -> int:
    from .doctor import main as doctor

    return doctor(args)
