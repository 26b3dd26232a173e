"""``python -m modeling``: evaluate, train, score, input errors; and no Django in the library."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

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
            "modeling.ml.metrics, modeling.ml.training, modeling.ml.cli, modeling.__main__; "
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
