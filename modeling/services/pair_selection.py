"""Refilling a project's pair queue with the pairs worth judging next (issue: active selection).

``next_pair`` only reads the queue (``labeling.models.PairCandidate``); this service writes it, from a
task on the ``default`` queue. The project's ``pair_strategy`` picks how:

- ``active``: the human-score posterior (Bradley–Terry over all comparisons, with the active model's
  scores as the prior; ``modeling.services.human_scores``) is refitted, then
  ``modeling.ml.selection.select_pairs`` picks the pairs (Swiss rounds among the least compared images
  at cold start, then the largest expected information gain); the gain becomes the pair's queue priority.
  Where the last fit took longer than ``RefillPolicy.refit_budget_seconds`` (10^7 comparisons on 2 cores),
  the refill does not refit: it selects from the stored scores with the comparisons made since folded in
  (``human_scores.stored_fit``), and the periodic fit keeps the stored scores up, so a refill stays within
  its time limit at any size.
- ``random`` / ``round_robin``: the same selection library without a posterior, for A/B comparisons.

In a project with comparison groups (``Project.group_key``) every strategy picks pairs within groups
(``select_pairs(..., groups=)``); the posterior stays one Bradley–Terry fit over all images.

Pairs that already have the project's overlap of judgments (closed queue rows) are never selected
again. Whether a refill is due is read from the database (queue size, comparisons since the last
refill, ``PairRefillState``), so a lost message or a restarted worker is caught up by the next periodic run.

Keeping up with the judgments: after each stored judgment, ``refill_after_comparison`` (a hook that
labeling calls; labeling does not import modeling) checks whether a refill is due and, if so, claims
the project's in-flight flag with one conditional UPDATE and sends the refill. While that refill is in
flight (until it ends, or ``in_flight_seconds`` pass if it was lost), further judgments send nothing,
so there is at most one submit-path refill per project at a time. ``docs/active-learning.md`` says
why the queue is refilled this way rather than pairs being chosen at request time.
"""
from __future__ import annotations

import logging
import time
import zlib
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db.models import Q
from django.utils import timezone

from labeling.models import Comparison, PairCandidate, Project
from labeling.services import comparison_groups
from labeling.services.pair_queue import enqueue_pairs, open_queue_size
from modeling.ml.bradley_terry import comparison_counts
from modeling.ml.selection import pair_information, select_pairs
from modeling.models import PairRefillState
from modeling.services import human_score_writes, human_scores
from modeling.services.columns import fetch_columns, image_positions
import worker.dispatch as dispatch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RefillPolicy:
    batch_size: int = 200  # pairs written per refill
    # Refill when fewer open pairs remain than this, or than half the pairs the last refill wrote. In a
    # small project a batch holds fewer pairs than low_water (an image is in at most max_per_image pairs
    # of it), and a refill on every check would re-plan each Swiss round a few judgments at a time.
    low_water: int = 100
    refit_every: int = 25  # ... or when this many comparisons arrived since the last refill
    max_per_image: int = 2  # an image appears in at most this many pairs of one batch
    explore_share: float = 0.1  # random pairs mixed into an active batch
    in_flight_seconds: int = 360  # a sent refill that has not ended by then is taken as lost
    # The submit path asks "is a refill due?" (a few counts) at most this often per project and cache
    # (the shared Redis cache in production): once per judgment would cost more than the judgment itself.
    check_every_seconds: int = 2
    # An active refill refits the human scores first only while the stored fit took less than this; past it
    # (10^7 comparisons on 2 cores) it selects from the stored scores with the comparisons since folded in,
    # which the periodic fit keeps up: a refill stays within seconds, far from its 5-minute limit.
    refit_budget_seconds: float = 20.0


def refill_policy() -> RefillPolicy:
    return RefillPolicy(**getattr(settings, "TAGRANK_PAIR_QUEUE", {}))


def refill_due(project: Project, policy: RefillPolicy | None = None) -> bool:
    policy = policy or refill_policy()
    state = PairRefillState.objects.filter(project=project).values_list("refilled_at", "pairs_written").first()
    last_refill, pairs_written = state or (None, None)
    low_water = policy.low_water if pairs_written is None else min(policy.low_water, (pairs_written + 1) // 2)
    if last_refill is None or open_queue_size(project) < max(1, low_water):
        return True
    return Comparison.objects.filter(project=project, created_at__gt=last_refill).count() >= policy.refit_every


def claim_refill(project: Project, policy: RefillPolicy | None = None) -> bool:
    """Mark a refill of ``project`` as in flight, unless one already is. True if this caller claimed it.

    One conditional UPDATE: of two concurrent claims, the second re-reads the row the first wrote
    (PostgreSQL re-checks the WHERE after the row lock; SQLite serialises writers) and claims nothing."""
    policy = policy or refill_policy()
    now = timezone.now()
    PairRefillState.objects.bulk_create([PairRefillState(project=project)], ignore_conflicts=True)
    return bool(
        PairRefillState.objects.filter(project=project)
        .filter(Q(in_flight_until__isnull=True) | Q(in_flight_until__lte=now))
        .update(in_flight_until=now + timedelta(seconds=policy.in_flight_seconds))
    )


def refill_ended(project_id: int) -> None:
    """The claimed refill is over (done or failed): the next due judgment may send another."""
    PairRefillState.objects.filter(project_id=project_id).update(in_flight_until=None)


def refill_after_comparison(project: Project) -> bool:
    """After a judgment (the labeling hook, in the request): send a refill if one is due and none is in
    flight. Returns whether one was sent. The cheap test comes first: while a refill is in flight this
    is one primary-key read, and within ``check_every_seconds`` of the last check it is one cache write."""
    policy = refill_policy()
    if policy.check_every_seconds > 0 and not cache.add(
        f"tagrank:refill-checked:{project.pk}", True, timeout=policy.check_every_seconds
    ):
        return False
    in_flight = PairRefillState.objects.filter(project=project, in_flight_until__gt=timezone.now()).exists()
    if in_flight or not refill_due(project, policy) or not claim_refill(project, policy):
        return False
    dispatch.send_claimed_pair_refill(project.pk)
    return True


def refit_first(fit_seconds: float | None, policy: RefillPolicy) -> bool:
    """Whether an active refill refits the human scores before selecting, given how long the stored fit took
    (None: none stored, or stored before durations were kept): yes unless that was past the policy's budget
    (then the stored scores are the posterior to select from)."""
    return fit_seconds is None or fit_seconds < policy.refit_budget_seconds


def closed_pair_test(project: Project, image_ids: np.ndarray):
    """A vectorised test for pairs (as indices into ``image_ids``) that have all their judgments already.
    Read as columns (``fetch_columns``), not rows: a project at 10^7 judgments has millions of closed pairs."""
    closed = fetch_columns(PairCandidate.objects.filter(project=project, is_open=False),
                           {"image_low_id": int, "image_high_id": int})
    n = len(image_ids)
    if closed["image_low_id"].size == 0:
        return None
    low, low_known = image_positions(image_ids, closed["image_low_id"])
    high, high_known = image_positions(image_ids, closed["image_high_id"])
    known = low_known & high_known  # a pair of an image not among them (archived) closes no other pair
    keys = np.sort(low[known] * n + high[known])  # low < high, as ids are sorted

    def is_closed(first: np.ndarray, second: np.ndarray) -> np.ndarray:
        pair_keys = np.minimum(first, second) * n + np.maximum(first, second)
        position = np.clip(np.searchsorted(keys, pair_keys), 0, max(len(keys) - 1, 0))
        return keys[position] == pair_keys

    return is_closed


def group_index(project: Project, image_ids: np.ndarray) -> np.ndarray | None:
    """[N] each image's comparison group as a number (-1: none, or alone in its group), None when the
    project pairs across the whole project. The selection pairs only images of the same group."""
    if not project.group_key:
        return None
    groups = comparison_groups.image_groups(project)
    numbers = {name: number for number, name in enumerate(sorted(set(groups.values())))}
    return np.array([numbers.get(groups.get(int(image_id)), -1) for image_id in image_ids], dtype=np.int64)


def refill_pair_queue(project: Project, *, seed: int | None = None, policy: RefillPolicy | None = None) -> dict:
    """Select a batch with the project's strategy and write it to the queue (replacing the previous
    unleased selection). Returns a summary for the task log."""
    policy = policy or refill_policy()
    started = time.perf_counter()
    # Judgments stored from here on count towards the next refill (this one may not see them).
    PairRefillState.objects.update_or_create(project=project, defaults={"refilled_at": timezone.now()})
    strategy = str(project.pair_strategy)
    stored = None
    if strategy == Project.PairStrategy.ACTIVE:
        fitted_at, fit_seconds = human_score_writes.last_fit(project)
        if not refit_first(fit_seconds, policy):
            stored = human_scores.stored_fit(project, fitted_at)
    if stored is not None:
        image_ids, posterior, counts, folded_in = stored
        prior_version, reads = None, {"posterior": "stored", "comparisons_folded_in": folded_in}
    elif strategy == Project.PairStrategy.ACTIVE:
        fit = human_scores.fit_human_scores(project)  # stored: the dashboards and export show it too
        image_ids, posterior, counts = fit.image_ids, fit.posterior, fit.counts
        prior_version = fit.model_version_id
        reads = {"posterior": "refitted", "comparisons_read": fit.comparisons_read,
                 "scores_written": fit.scores_written}
    else:
        comparisons = human_scores.load_comparisons(project, include_excluded=True)
        image_ids, posterior, prior_version = comparisons.image_ids, None, None
        reads = {}
        counts = comparison_counts(comparisons.n_images, comparisons.a_index, comparisons.b_index)
    if len(image_ids) < 2:
        return {"project": project.slug, "strategy": strategy, "pairs": 0}

    # One seed per project and queue state: reproducible, yet a new batch each refill.
    seed = seed if seed is not None else zlib.crc32(f"{project.pk}:{int(counts.sum())}".encode())
    pairs = select_pairs(
        posterior, counts, policy.batch_size, np.random.default_rng(seed), strategy=strategy,
        exclude=closed_pair_test(project, image_ids), max_per_image=policy.max_per_image,
        explore_share=policy.explore_share, groups=group_index(project, image_ids),
    )
    if strategy == Project.PairStrategy.ACTIVE:
        priority = pair_information(posterior, pairs[:, 0], pairs[:, 1])
    else:  # keep the selection's order: earlier pairs first
        priority = np.linspace(1.0, 0.0, num=len(pairs), endpoint=False)
    written = enqueue_pairs(
        project,
        zip(image_ids[pairs[:, 0]].tolist(), image_ids[pairs[:, 1]].tolist(), priority.tolist()),
        source=strategy,
        replace=True,
    )
    PairRefillState.objects.filter(project=project).update(pairs_written=written)
    summary = {
        "project": project.slug,
        "strategy": strategy,
        "pairs": written,
        "images": int(len(image_ids)),
        "model_prior_version": prior_version,
        **reads,
        "seconds": round(time.perf_counter() - started, 3),
    }
    log.info("refilled the pair queue: %s", summary)
    return summary
