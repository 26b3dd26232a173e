"""Benchmark: the ``quality-stats`` encoder (speed, leave-one-photo-out on the demo ladder, model prior).

    .venv/bin/python benchmarks/quality_stats.py                 # all three, ~ see docs/benchmarks.md
    .venv/bin/python benchmarks/quality_stats.py speed lopo      # some of them
    .venv/bin/python benchmarks/quality_stats.py --constants     # print the standardisation constants

* ``speed``: images per second of ``encode_images`` on one thread for 100 pictures of 512 x 512
  (512-pixel crops of four scikit-image pictures), best of 3, as CPU time and as wall time.
* ``lopo``: what the demo walkthrough's model does on photos it never saw compared. The demo ladder
  (labeling.services.demo: 7 photos x 13 versions: the original and blur, noise, JPEG and colour shift
  at strengths 1..3, built exactly as ``seed_demo`` builds them) is encoded; for each photo in turn,
  the walkthrough's 300 judgments (2 raters x 150) are simulated as it simulates them (hidden quality
  -strength, Thurstone noise 0.7), but on random pairs of the *other* six photos' images only; the tags
  model is trained with the platform's training config; the held-out photo's 13 versions are scored and
  the figure is the SRCC between score and -distortion strength on them. Mean over photos and seeds.
  No server: the platform's pair selection (active, overlap 2) is replaced by random pairs.
* ``prior``: the model prior on a generated set (modeling.ml.degraded_set: 600 crops at 256 px, blur,
  noise and JPEG at random levels, known latent quality; not the set the constants came from). 0.5
  judgments per image (300 random pairs, a Thurstone observer with unit noise on the standardised
  quality), the tags model trained as above (no tags), all images scored: SRCC against the latent
  quality, on all images and on the ones never compared.

``--encoders`` picks the encoders compared (default ``quality-stats,tiny``).
"""
from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")  # one core, as the targets say

import platform
import time

import numpy as np
from scipy.stats import spearmanr

from bench_setup import benchmark_parser  # and the repository on sys.path

from modeling.ml.degraded_set import judge, make_degraded_set, random_pairs
from modeling.ml.encoder import load_encoder
from modeling.ml.quality_stats import (N_STATS, STAT_NAMES, QualityStatsConfig,
                                       QualityStatsEncoder)
from modeling.ml.training import TrainConfig, score_images, train_ranker
from modeling.ml.training_data import RankingData

# The platform's training config (modeling.services.training.PLATFORM_TRAIN_DEFAULTS; that module needs
# Django, so the values are repeated here and checked against it in tests/modeling/test_quality_stats.py).
PLATFORM_TRAIN_DEFAULTS = {"split_by_image": False, "val_fraction": 0.1, "min_steps": 300, "max_steps": 300,
                           "batch_pairs": 512, "ranker": {"width": 64}}


def encoder(name: str):
    import torch

    torch.set_num_threads(1)
    return load_encoder(name, device="cpu")


def text_tokens(enc, texts_per_image: list[list[str]]):
    """[N,K,D] tokens and [N,K] mask of each image's texts."""
    k = max((len(t) for t in texts_per_image), default=0)
    tokens = np.zeros((len(texts_per_image), k, enc.dim), dtype=np.float32)
    mask = np.zeros((len(texts_per_image), k), dtype=bool)
    for i, texts in enumerate(texts_per_image):
        if texts:
            tokens[i, :len(texts)] = enc.encode_texts(texts)
            mask[i, :len(texts)] = True
    return tokens, mask


def train_and_score(image_tokens, tags, mask, a, b, outcome, seed: int):
    data = RankingData(image_tokens, tags, mask, a, b, outcome)
    cfg = TrainConfig.from_dict({**PLATFORM_TRAIN_DEFAULTS, "seed": seed, "device": "cpu"})
    result = train_ranker(data, cfg, model_kind="tags")
    return score_images(result.model, image_tokens, tags, mask)[0]


# -- constants ---------------------------------------------------------------------------------------------
def constants() -> None:
    ds = make_degraded_set(600, seed=0)
    raw = QualityStatsEncoder(QualityStatsConfig(standardise=False)).encode_images(ds.images)[..., :N_STATS]
    flat = raw.reshape(-1, N_STATS).astype(np.float64)  # every token: whole squares and regions
    mean, std = flat.mean(axis=0), np.maximum(flat.std(axis=0), 1e-6)
    fmt = lambda v: ",\n".join("    " + ", ".join(f"{x:.6g}" for x in v[i:i + 7]) for i in range(0, len(v), 7))  # noqa: E731
    print("# over the tokens of make_degraded_set(600, seed=0)")
    print(f"STAT_MEAN = np.array([\n{fmt(mean)},\n], dtype=np.float32)")
    print(f"STAT_STD = np.array([\n{fmt(std)},\n], dtype=np.float32)")
    for name, m, s in zip(STAT_NAMES, mean, std):
        print(f"#   {name:18s} {m:10.4f} {s:10.4f}")


# -- speed -------------------------------------------------------------------------------------------------
def speed_pictures(n: int = 100):
    from PIL import Image

    from modeling.ml.degraded_set import load_content

    rng = np.random.default_rng(0)
    sources = [load_content(name) for name in ("retina.jpg", "motorcycle_right.png", "brick.png", "ihc.png")]
    pictures = []
    for i in range(n):
        source = sources[i % len(sources)]
        w, h = source.size
        side = min(w, h, 512)
        left, top = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        pictures.append(source.crop((left, top, left + side, top + side)).resize((512, 512), Image.Resampling.BICUBIC))
    return pictures


def speed(names: list[str]) -> None:
    """Wall time (best of 3) and CPU time of this process (best of 3): on a shared, oversubscribed host
    the CPU time is what one core of our own would take; both are printed, with the load average."""
    pictures = speed_pictures()
    for name in names:
        enc = encoder(name)
        enc.encode_images(pictures[:2])  # warm up (imports, first calls)
        load = os.getloadavg()[0]
        wall, cpu = [], []
        for _ in range(3):
            started, started_cpu = time.perf_counter(), time.process_time()
            enc.encode_images(pictures)
            wall.append(time.perf_counter() - started)
            cpu.append(time.process_time() - started_cpu)
        print(f"speed {name}: {len(pictures) / min(cpu):.1f} images/s of CPU time, {len(pictures) / min(wall):.1f} "
              f"images/s of wall time, one thread, 512 x 512 (best of 3 runs of {len(pictures)}; load average "
              f"{load:.1f}-{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores); tokens {enc.n_tokens} x {enc.dim} "
              f"float32 = {enc.n_tokens * enc.dim * 4} bytes per image", flush=True)


# -- leave one photo out on the demo ladder ---------------------------------------------------------------
def demo_ladder():
    """The demo's images as seed_demo makes them: (pictures, photo index, strength, tags)."""
    import logging

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DEBUG", "true")  # no server: the development settings
    django.setup()
    logging.getLogger("modeling.ml.training").setLevel(logging.WARNING)  # Django's logging config: per-step lines
    from labeling.services.demo import DEMO_PHOTOS, DISTORTIONS, distort, load_photo

    pictures, photo, strength, tags = [], [], [], []
    for photo_index, (file_name, photo_tags) in enumerate(DEMO_PHOTOS.items()):
        clean = load_photo(file_name)
        variants = [(clean, 0)]
        for kind, (_field, values) in DISTORTIONS.items():
            for level, value in enumerate(values, start=1):
                variants.append((distort(clean, kind, value, photo_index * 100 + level), level))
        for picture, level in variants:
            pictures.append(picture)
            photo.append(photo_index)
            strength.append(level)
            tags.append(sorted(photo_tags))
    return pictures, np.array(photo), np.array(strength), tags


def lopo(names: list[str], seeds: int, judgments: int = 300, noise: float = 0.7) -> None:
    pictures, photo, strength, tags = demo_ladder()
    quality = -strength.astype(np.float64)
    for name in names:
        enc = encoder(name)
        started = time.perf_counter()
        tokens = enc.encode_images(pictures)
        tag_tokens, mask = text_tokens(enc, tags)
        encode_s = time.perf_counter() - started
        per_photo = np.zeros((photo.max() + 1, seeds))
        for held_out in range(photo.max() + 1):
            train_images = np.flatnonzero(photo != held_out)
            test_images = np.flatnonzero(photo == held_out)
            for seed in range(seeds):
                rng = np.random.default_rng(1000 * seed + held_out)
                pairs = train_images[random_pairs(len(train_images), judgments, rng)]
                seen = quality[pairs] + rng.normal(0, noise, pairs.shape)
                outcome = np.where(np.abs(seen[:, 0] - seen[:, 1]) < 0.05, 0.5, (seen[:, 0] > seen[:, 1]) * 1.0)
                scores = train_and_score(tokens, tag_tokens, mask, pairs[:, 0], pairs[:, 1], outcome, seed)
                per_photo[held_out, seed] = spearmanr(scores[test_images], quality[test_images]).statistic
        rows = ", ".join(f"{p}: {v:.2f}" for p, v in zip(range(len(per_photo)), per_photo.mean(axis=1)))
        print(f"lopo {name}: SRCC(score, -strength) on the held-out photo's 13 versions, mean over "
              f"{len(per_photo)} photos x {seeds} seeds = {per_photo.mean():.3f} (std over photos "
              f"{per_photo.mean(axis=1).std():.3f}; min photo {per_photo.mean(axis=1).min():.3f}); "
              f"per photo {rows}; encoding {len(pictures)} images {encode_s:.1f} s", flush=True)


# -- the model prior on a generated set -------------------------------------------------------------------
def prior(names: list[str], seeds: int, n_images: int = 600, per_image: float = 0.5) -> None:
    sets = [make_degraded_set(n_images, seed=1 + s) for s in range(seeds)]
    for name in names:
        enc = encoder(name)
        all_srcc, unseen_srcc = [], []
        for s, ds in enumerate(sets):
            tokens = enc.encode_images(ds.images)
            no_tags = np.zeros((n_images, 0, enc.dim), dtype=np.float32)
            no_mask = np.zeros((n_images, 0), dtype=bool)
            rng = np.random.default_rng(s)
            pairs = random_pairs(n_images, int(per_image * n_images), rng)
            outcome = judge(ds.quality, pairs, rng)
            scores = train_and_score(tokens, no_tags, no_mask, pairs[:, 0], pairs[:, 1], outcome, s)
            unseen = np.setdiff1d(np.arange(n_images), pairs.ravel())
            all_srcc.append(spearmanr(scores, ds.quality).statistic)
            unseen_srcc.append(spearmanr(scores[unseen], ds.quality[unseen]).statistic)
        print(f"prior {name}: {per_image} judgments per image ({int(per_image * n_images)} pairs, {n_images} images), "
              f"SRCC(model score, latent quality) all images {np.mean(all_srcc):.3f} (per set "
              f"{', '.join(f'{v:.3f}' for v in all_srcc)}); never-compared images {np.mean(unseen_srcc):.3f} "
              f"(about {len(unseen)} of {n_images})", flush=True)


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("parts", nargs="*", help="speed, lopo, prior (default: all three)")
    parser.add_argument("--encoders", default="quality-stats,tiny")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--constants", action="store_true", help="print the standardisation constants and stop")
    args = parser.parse_args()
    if args.constants:
        constants()
        return
    names = args.encoders.split(",")
    parts = args.parts or ["speed", "lopo", "prior"]
    if set(parts) - {"speed", "lopo", "prior"}:
        parser.error(f"unknown part(s) {sorted(set(parts) - {'speed', 'lopo', 'prior'})}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, one thread", flush=True)
    for part in parts:
        {"speed": lambda: speed(names), "lopo": lambda: lopo(names, args.seeds),
         "prior": lambda: prior(names, args.seeds)}[part]()


if __name__ == "__main__":
    main()
