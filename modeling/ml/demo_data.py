"""A small generated dataset to try the ML command line on: shapes in three colours, blurred at random, half of
them tagged with what they show; votes and comparisons follow a hidden quality (sharp and honestly tagged is better).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core import spreadsheet_safety  # plain Python, no Django


def write_demo_data(out: Path, n_images: int = 120, seed: int = 0) -> None:
    """``n_images`` generated pictures under ``out/images``, ``labels.csv`` and ``comparisons.csv``."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    (out / "images").mkdir(parents=True, exist_ok=True)
    shapes = ["circle", "square", "triangle"]
    colours = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 70, 220)}
    rows, quality = [], []
    for i in range(n_images):
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
        for _ in range(n_images * 10):
            a, b = rng.choice(n_images, 2, replace=False)
            win = rng.random() < 1 / (1 + np.exp(-1.5 * (quality[a] - quality[b])))
            w.writerow([rows[a]["image"], rows[b]["image"], "a" if win else "b"])
