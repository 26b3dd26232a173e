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
This module and everything it imports stay free of Django. The commands are in ``commands.py``, the
input readers in ``readers.py``, the generated demo set in ``demo_data.py``.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from .commands import cmd_convert_ava, cmd_demo_data, cmd_doctor, cmd_evaluate, cmd_score, cmd_train
from .readers import InputError, say


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
        say(f"error: {e}")
        return 2
