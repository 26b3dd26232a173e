"""``python -m modeling``: evaluate, train, score, input errors; and no Django in the library."""
import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from modeling.ml.cli import main

REPO = Path(__file__).resolve().parents[2]
FAST = ["--epochs", "3", "--config", json.dumps({"ranker": {"width": 16, "heads": 2, "ensemble": 2}})]


def run_module(*args, timeout=240):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def test_library_and_cli_import_no_django():
    code = ("import sys, modeling.ml.encoder, modeling.ml.features, modeling.ml.ranker, modeling.ml.losses, "
            "modeling.ml.metrics, modeling.ml.training, modeling.ml.checkpoints, modeling.ml.synthetic, "
            "modeling.ml.cli, modeling.__main__; "
            "bad = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.')); "
            "print(bad); sys.exit(1 if bad else 0)")
    r = run_module("-c", code)
    assert r.returncode == 0, r.stdout + r.stderr


def test_evaluate_synthetic_prints_the_table():
    r = run_module("-m", "modeling", "evaluate", "--synthetic", "--n-images", "300", "--n-comparisons", "3000",
                   "--quiet", *FAST)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| Method"))
    assert lines[header] == "| Method | Error | LCC | SRCC | KL | EMD | Pairwise |"
    rows = lines[header + 2: header + 4]
    assert rows[0].startswith("| Image only") and rows[1].startswith("| Tags")
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 7
        assert "±" in cells[1]
        for value in cells[2:]:
            assert -1.0 <= float(value) <= 10.0


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    assert main(["demo-data", str(folder), "--n-images", "45"]) == 0
    return folder


def test_train_then_score_a_folder(demo, tmp_path, capsys):
    features = tmp_path / "features"
    args = ["--images", str(demo / "images"), "--labels", str(demo / "labels.csv"),
            "--comparisons", str(demo / "comparisons.csv"), "--encoder", "tiny", "--features", str(features)]
    model = tmp_path / "m.pt"
    assert main(["train", *args, "--out", str(model), *FAST]) == 0
    out = capsys.readouterr()
    assert "encoded 45/45 images" in out.err and model.exists()
    assert "| tags |" in out.out

    # a second run reads every feature from the cache
    assert main(["train", *args, "--out", str(tmp_path / "m2.pt"), *FAST]) == 0
    assert "encoded" not in capsys.readouterr().err

    scores = tmp_path / "scores.csv"
    assert main(["score", "--model", str(model), "--images", str(demo / "images"),
                 "--labels", str(demo / "labels.csv"), "--features", str(features), "--out", str(scores)]) == 0
    rows = list(csv.DictReader(open(scores)))
    assert len(rows) == 45
    assert set(rows[0]) == {"image", "score", "uncertainty", *(f"p{k}" for k in range(1, 11))}
    assert all(1.0 <= float(r["score"]) <= 10.0 for r in rows)
    assert abs(sum(float(rows[0][f"p{k}"]) for k in range(1, 11)) - 1.0) < 1e-3


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("name, content, where", [
    ("labels.csv", "image,tags,votes\nimg0000.png,red,1 2 3 4 5 6 7 8 9 10\nimg0001.png,blue,1 2 3\n", "labels.csv:3"),
    ("labels.csv", "image,tags\nimg0000.png,red\n,blue\n", "labels.csv:3"),
    ("labels.jsonl", '{"image": "img0000.png", "tags": ["red"]}\n{"image": "img0001.png", tags}\n', "labels.jsonl:2"),
    ("labels.csv", "image,tags\nimg0000.png,red\nnot_there.png,red\n", "labels.csv:3"),
])
def test_bad_labels_name_file_and_line(demo, tmp_path, capsys, name, content, where):
    bad = write(tmp_path / name, content)
    code = main(["train", "--images", str(demo / "images"), "--labels", str(bad), "--encoder", "tiny",
                 "--features", str(tmp_path / "f"), "--out", str(tmp_path / "m.pt")])
    assert code == 2
    assert where in capsys.readouterr().err


@pytest.mark.parametrize("content, where", [
    ("image_a,image_b,winner\nimg0000.png,img0001.png,a\nimg0002.png,img0003.png,maybe\n", "comparisons.csv:3"),
    ("image_a,image_b,outcome\nimg0000.png,img0001.png,0.7\n", "comparisons.csv:2"),
    ("image_a,image_b,winner\nimg0000.png,img0000.png,a\n", "comparisons.csv:2"),
])
def test_bad_comparisons_name_file_and_line(demo, tmp_path, capsys, content, where):
    bad = write(tmp_path / "comparisons.csv", content)
    code = main(["train", "--images", str(demo / "images"), "--comparisons", str(bad), "--encoder", "tiny",
                 "--features", str(tmp_path / "f"), "--out", str(tmp_path / "m.pt")])
    assert code == 2
    assert where in capsys.readouterr().err


def test_score_with_a_corrupt_checkpoint_is_a_clear_error(demo, tmp_path, capsys):
    model = write(tmp_path / "broken.pt", "garbage")
    code = main(["score", "--model", str(model), "--images", str(demo / "images"), "--out", str(tmp_path / "s.csv")])
    assert code == 2
    assert "broken.pt" in capsys.readouterr().err


def test_convert_ava(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    for image_id in (953619, 953958):
        (tmp_path / "images" / f"{image_id}.jpg").write_bytes(b"x")
    ava = write(tmp_path / "AVA.txt", "1 953619 0 1 5 17 38 36 15 6 5 1 1 22 1396\n"
                                      "2 953958 10 7 15 26 26 21 10 8 1 2 15 0 1396\n"
                                      "3 954184 0 0 4 8 41 56 10 3 4 0 0 0 1396\n")
    tags = write(tmp_path / "tags.txt", "1 Abstract\n15 Nature\n22 Black and White\n")
    out = tmp_path / "labels.csv"
    assert main(["convert-ava", "--ava", str(ava), "--tags-file", str(tags), "--images", str(tmp_path / "images"),
                 "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out)))
    assert rows == [
        {"image": "953619.jpg", "tags": "Abstract;Black and White", "votes": "0 1 5 17 38 36 15 6 5 1"},
        {"image": "953958.jpg", "tags": "Nature", "votes": "10 7 15 26 26 21 10 8 1 2"},
    ]
    write(tmp_path / "AVA.txt", "1 953619 0 1 5\n")
    assert main(["convert-ava", "--ava", str(ava), "--out", str(out)]) == 2
    assert "AVA.txt:1" in capsys.readouterr().err


def test_doctor_prints_device_precision_and_rates(capsys):
    assert main(["doctor", "--device", "cpu", "--n-images", "4", "--train-images", "200",
                 "--train-comparisons", "2048"]) == 0
    out = capsys.readouterr().out
    assert "device      cpu (CPU), float32" in out
    assert " images/s " in out and " steps/s " in out


def test_doctor_fails_when_cuda_is_requested_but_missing(capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("TAGRANK_DEVICE", "cuda")
    assert main(["doctor"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_the_protocol_never_trains_or_stops_on_the_test_split():
    from modeling.ml.protocol import fixed_test_split, protocol_split
    from modeling.ml.synthetic import synthetic_data

    data, _ = synthetic_data(n_images=400, n_comparisons=4000, dim=16, seed=0)
    names = [f"{i}.jpg" for i in range(400)]
    by_hash = fixed_test_split(names)
    assert 20 < by_hash.sum() < 60 and np.array_equal(by_hash, fixed_test_split(names))  # fixed, about 10%
    listed = fixed_test_split(names, ["3", "17.jpg", "999"])                              # AVA ids or file names
    assert np.flatnonzero(listed).tolist() == [3, 17]
    test = set(np.flatnonzero(by_hash).tolist())
    splits = [protocol_split(data, by_hash, 0.1, seed) for seed in (0, 1, 2)]
    for split in splits:
        assert not test & set(split.train_images.tolist()) and not test & set(split.val_images.tolist())
        assert len(split.train_images) + len(split.val_images) == 400 - len(test)
        used = np.concatenate([split.train_comparisons, split.val_comparisons])
        assert not test & (set(data.comp_a[used].tolist()) | set(data.comp_b[used].tolist()))
    assert not np.array_equal(splits[0].val_images, splits[1].val_images)                 # validation per seed


def test_evaluate_on_a_folder_prints_the_three_tables_skips_bad_images_and_rehashes_nothing(demo, tmp_path, capsys):
    images = tmp_path / "images"
    shutil.copytree(demo / "images", images)
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    rows = list(csv.DictReader(open(demo / "labels.csv")))
    with open(tmp_path / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["image", "tags", "votes", "cfg_scale"])
        w.writeheader()
        for i, row in enumerate(rows):
            w.writerow({**row, "cfg_scale": 3 + 2 * (i % 3)})
        w.writerow({"image": "broken.png", "tags": "red", "votes": "1 1 1 1 1 1 1 1 1 1", "cfg_scale": 5})
    args = ["evaluate", "--images", str(images), "--labels", str(tmp_path / "labels.csv"), "--encoder", "tiny",
            "--features", str(tmp_path / "features"), "--seeds", "0", "1", "--bootstrap", "50", "--tag-table",
            "--by", "cfg_scale", "--quiet", *FAST]
    assert main(args) == 0
    out = capsys.readouterr()
    assert "skipped 1 unreadable image(s), e.g. broken.png" in out.err
    assert "hashed 46 new or changed files" in out.err
    assert "Test split (name-hash-v1" in out.out and "never used for training or early stopping" in out.out
    assert "| Image only (NIMA head) |" in out.out and "| Tags (cross-attention) |" in out.out
    assert "2 seeds [0, 1]" in out.out and "95% CI" in out.out
    assert "| TextTag | Baseline | Ours | Human | Images |" in out.out
    assert "| cfg_scale | Baseline | Ours | Human | Images |" in out.out and "| 3 |" in out.out
    assert "Spearman with cfg_scale" in out.out

    assert main(args) == 0                                  # features and file ids come from the caches
    again = capsys.readouterr()
    assert "new or changed files" not in again.err and "encoded" not in again.err
    assert "skipped 1 unreadable image(s), e.g. broken.png" in again.err   # still counted, not decoded again


def test_score_prints_scores_by_a_metadata_column(demo, tmp_path, capsys):
    features = tmp_path / "features"
    base = ["--images", str(demo / "images"), "--labels", str(demo / "labels.csv"), "--encoder", "tiny",
            "--features", str(features)]
    assert main(["train", *base, "--out", str(tmp_path / "m.pt"), *FAST]) == 0
    rows = list(csv.DictReader(open(demo / "labels.csv")))
    with open(tmp_path / "gen.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["image", "tags", "cfg_scale"])
        w.writeheader()
        for i, row in enumerate(rows):
            w.writerow({"image": row["image"], "tags": row["tags"], "cfg_scale": [4, 7.5, 12][i % 3]})
    capsys.readouterr()
    assert main(["score", "--model", str(tmp_path / "m.pt"), "--images", str(demo / "images"), "--labels",
                 str(tmp_path / "gen.csv"), "--features", str(features), "--out", str(tmp_path / "s.csv"),
                 "--by", "cfg_scale"]) == 0
    out = capsys.readouterr().out
    assert "| cfg_scale | Ours | Images |" in out and "| 7.5 |" in out and "| 12 | " in out


def test_fewer_pooled_tokens_are_an_option_with_their_own_cache(demo, tmp_path, capsys):
    from modeling.ml.checkpoints import load_checkpoint

    features = tmp_path / "features"
    args = ["--images", str(demo / "images"), "--labels", str(demo / "labels.csv"), "--encoder", "tiny",
            "--features", str(features)]
    assert main(["train", *args, "--regions", "1", "--out", str(tmp_path / "r1.pt"), *FAST]) == 0
    assert "encoded 45/45" in capsys.readouterr().err
    model, meta = load_checkpoint(tmp_path / "r1.pt", device="cpu")
    assert meta["encoder_id"] == "tiny-v1@regions=1"
    # class token + one pooled region: the store holds [45, 2, 64]
    from modeling.ml.features import FeatureStore

    shards = [np.load(p, mmap_mode="r").shape for p in FeatureStore(features, "tiny-v1@regions=1").shards.glob("*.tokens.npy")]
    assert sum(s[0] for s in shards) == 45 and {s[1:] for s in shards} == {(2, 64)}
    assert main(["score", "--model", str(tmp_path / "r1.pt"), "--images", str(demo / "images"),
                 "--features", str(features), "--out", str(tmp_path / "s.csv")]) == 0
    assert "encoded" not in capsys.readouterr().err             # the checkpoint's encoder id finds the cache
