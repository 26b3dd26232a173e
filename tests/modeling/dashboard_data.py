"""Synthetic projects for the dashboard and human-score tests: rows written in bulk, no image files."""
from __future__ import annotations

import itertools
from datetime import timedelta

import numpy as np
from django.utils import timezone

from labeling.models import Comparison, Image, Membership, Project
from modeling.models import ImageScore, ModelVersion

_keys = itertools.count()


def make_images(project: Project, n: int) -> list[Image]:
    """``n`` image rows with placeholder file names (nothing on disk), in id order."""
    rows = [
        Image(project=project, file=f"images/{project.pk}/synthetic_{i}.png", original_name=f"synthetic_{i}.png",
              sha256=f"{project.pk:08x}{i:056x}", width=64, height=48)
        for i in range(n)
    ]  # fmt: skip
    Image.objects.bulk_create(rows, batch_size=2000)
    return list(Image.objects.filter(project=project).order_by("id"))


def user(username: str):
    """A user without a password: hashing one costs a second per user on a small machine."""
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create(username=username)


def member(project: Project, user, role=Membership.Role.RATER, excluded: bool = False) -> Membership:
    return Membership.objects.create(project=project, user=user, role=role, excluded_from_training=excluded)


def add_comparisons(project: Project, rows) -> list[Comparison]:
    """rows: (left image, right image, outcome 'a'|'b'|'tie', rater[, response_ms, is_gold, gold_correct, days_ago])."""
    defaults = (None, False, None, 0)
    rows = [tuple(row) + defaults[len(row) - 4:] for row in rows]
    created = Comparison.objects.bulk_create([
        Comparison(project=project, image_a=left, image_b=right, outcome=outcome, rater=rater,
                   response_ms=response_ms, is_gold=is_gold, gold_correct=gold_correct, client_key=f"k{next(_keys)}")
        for left, right, outcome, rater, response_ms, is_gold, gold_correct, _ in rows
    ], batch_size=5000)  # fmt: skip
    # created_at is auto_now_add: move comparisons back in time afterwards, where asked.
    now = timezone.now()
    by_day: dict[int, list[int]] = {}
    for comparison, row in zip(created, rows):
        if row[7]:
            by_day.setdefault(row[7], []).append(comparison.pk)
    for days_ago, ids in by_day.items():
        Comparison.objects.filter(pk__in=ids).update(created_at=now - timedelta(days=days_ago))
    return created


def thurstone_judgments(images, quality, n_comparisons: int, raters, rng, noise: float = 1.0, reverse=()):
    """Random pairs judged by a noisy observer on ``quality``; raters in ``reverse`` answer the opposite."""
    rows = []
    n = len(images)
    for _ in range(n_comparisons):
        i, j = rng.choice(n, size=2, replace=False)
        rater = raters[rng.integers(len(raters))]
        left_better = quality[i] + rng.normal(0, noise) > quality[j] + rng.normal(0, noise)
        if rater in reverse:
            left_better = not left_better
        rows.append((images[i], images[j], "a" if left_better else "b", rater, int(rng.integers(1500, 6000))))
    return rows


def make_model_version(project: Project, images, means, *, active: bool = True, encoder_id: str = "tiny",
                       uncertainty: float = 0.1, metrics: dict | None = None) -> ModelVersion:
    """A model version with one ImageScore per image (``means`` on 1..10), as the model loop stores them."""
    version = ModelVersion.objects.create(
        project=project, encoder_id=encoder_id, is_active=active, metrics=metrics or {},
        status=ModelVersion.Status.ACTIVE if active else ModelVersion.Status.CANDIDATE,
    )  # fmt: skip
    means = np.clip(np.asarray(means, dtype=np.float64), 1.0, 10.0)
    ImageScore.objects.bulk_create([
        ImageScore(model_version=version, image=image, mean=float(mean), distribution=[0.1] * 10,
                   uncertainty=uncertainty)
        for image, mean in zip(images, means)
    ])  # fmt: skip
    return version


def build_rated_project(project, encoder_id: str = "tiny", metrics: dict | None = None) -> dict:
    """40 images, three honest raters with shared pairs, one rater who always picks the left image."""
    images = make_images(project, 40)
    quality = np.linspace(-2, 2, 40)
    raters = [user(f"rater{k}") for k in range(3)]
    for rater in raters:
        member(project, rater)
    lefty = user("lefty")
    member(project, lefty)
    rng = np.random.default_rng(11)
    rows = thurstone_judgments(images, quality, 600, raters, rng, noise=0.6)
    # Every pair judged by every honest rater, so agreement and the ceiling have material.
    shared = []
    for left, right, _, _, _ in rows[:200]:
        for rater in raters:
            i, j = images.index(left), images.index(right)
            better = quality[i] + rng.normal(0, 0.6) > quality[j] + rng.normal(0, 0.6)
            shared.append((left, right, "a" if better else "b", rater, int(rng.integers(1500, 5000)), False, None,
                           int(rng.integers(0, 4))))
    add_comparisons(project, rows[200:] + shared)
    add_comparisons(project, [(images[i], images[i + 1], "a", lefty, 400) for i in range(30)])
    model_scores = 5.5 + 2 * quality + rng.normal(0, 0.3, 40)
    version = make_model_version(project, images, model_scores, encoder_id=encoder_id, metrics=metrics)
    return {"images": images, "quality": quality, "raters": raters, "lefty": lefty, "version": version}
