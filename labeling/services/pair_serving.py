"""Pair serving: ``next_pair(project, rater)`` hands a rater a pair of images under a lease.

Where a pair comes from, in order:

1. a **gold pair** (known answer, marked by a manager), with probability ``project.gold_rate``;
2. the **pair queue**: the open ``PairCandidate`` with the highest priority that this rater may judge.
   Active selection fills the queue from a Celery task (``enqueue_pairs``); ``next_pair`` only reads it;
3. the **fallback strategy** when the queue has nothing for this rater: among the images with the
   fewest comparisons (an index range scan on ``ImageStats``), random partners.

A project with comparison groups (``Project.group_key``, ``comparison_groups.py``) is served only pairs
of two images in the same group, from every source: gold pairs across groups are passed over, the queue
query skips candidates across groups, and the fallback takes partners from the image's own group.

Slots. A pair may be handed out ``project.overlap`` times: its stored comparisons (either order) plus
its live leases never exceed that. Every lease goes through the pair's ``PairCandidate`` row, locked
with ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL, and the slot count is re-checked under that
lock, so concurrent requests never double-lease a slot; a request that meets a locked row moves on
to the next one instead of waiting. SQLite has no row locks, but Tagrank's SQLite transactions are
IMMEDIATE (config/settings.py): each lease transaction holds the database's write lock, which
serialises them. A candidate that is fully leased carries ``full_until`` (the earliest expiry among
its live leases), so the queue query skips it without counting leases; once that time passes, the
re-check under the lock sees the expired lease no longer counts and the slot is served again.

A rater never gets a pair they already judged (in either order), nor one they skipped or hold.
Left and right are randomised per lease and recorded (``Comparison.image_a`` is the left image), so
that position bias can be measured.

The pieces: the hot-path SQL in ``pair_sql.py``, the queue rows in ``pair_queue.py``, the leases and
how they end in ``leases.py``, the per-image counters the fallback reads in ``image_stats.py``.
"""
from __future__ import annotations

import random
from typing import Iterator

from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from core import prepared_sql
from core.refusals import Refusal
from labeling.models import Comparison, GoldPair, PairLease, Project
from labeling.services import comparison_groups, crowd_links, pair_sql, qualification
from labeling.services.image_stats import recount_image_stats
from labeling.services.leases import attach_images, blocking_leases, held_lease, new_lease, release_one

# The fallback looks at the images with the fewest comparisons: first a small pool, then a larger one.
# A project no bigger than the last pool is searched exhaustively, so "nothing to rate" is exact there.
FALLBACK_POOL_SIZES = (64, 512)
# Lock attempts per request before giving up on a source (each attempt is one short transaction).
QUEUE_ATTEMPTS = 4
FALLBACK_ATTEMPTS = 24

_random = random.SystemRandom()


# --- next_pair -------------------------------------------------------------------------------------


class CampaignComplete(Refusal):
    """The campaign reached its target and serves no more pairs. The message reveals no score or setting."""

    code = "campaign_complete"


CAMPAIGN_COMPLETE_MESSAGE = "This campaign is complete: no more pairs are needed. Thank you for your judgments!"


def next_pair(project: Project, rater, *, rng: random.Random | None = None):
    """The next pair for ``rater``: ``((left image, right image), lease)``, or None when nothing is left.

    A rater holds at most TAGRANK_MAX_LIVE_LEASES live leases in a project (0: no cap): past that, the
    oldest live one is handed back instead of a new pair, so one client cannot hoard the queue.

    Raises ``CampaignComplete`` while ``project.campaign_completed_at`` is set (the model loop's stopping
    rule sets it; leases already held may still be judged, and their judgments are stored)."""
    rng = rng or _random
    if project.archived_at is not None:
        return None
    if project.campaign_completed_at is not None:
        raise CampaignComplete(CAMPAIGN_COMPLETE_MESSAGE)
    quota_lease = crowd_links.quota_gate(project, rater)  # crowd workers: raises at the quota
    if quota_lease is not None:  # their live leases fill the quota: no new pair
        attach_images(quota_lease)
        return quota_lease.pair, quota_lease
    if qualification.gold_only(project, rater):  # raises for a rater who failed or is paused
        return _qualification_pair(project, rater, rng)
    held = held_lease(project, rater)
    if held is not None:
        attach_images(held)
        return held.pair, held
    lease = None
    if project.gold_rate > 0 and rng.random() < project.gold_rate:
        lease = lease_gold_pair(project, rater, rng=rng)
    if lease is None:
        lease = lease_from_queue(project, rater, rng=rng)
    if lease is None:
        lease = lease_from_fallback(project, rater, rng=rng)
    if lease is None:
        return None
    held = held_lease(project, rater, just_leased=lease)
    if held is not None:  # concurrent requests of this rater went past the cap: give the new slot back
        release_one(project, lease)
        lease = held
    attach_images(lease)
    return lease.pair, lease


def _qualification_pair(project: Project, rater, rng):
    """A gold pair for a rater still in the qualification round (``labeling/services/qualification.py``): never
    an ordinary pair, whatever they hold. None when no gold pair is left for them."""
    held = held_lease(project, rater)
    lease = held if held is not None and held.is_gold else lease_gold_pair(project, rater, rng=rng)
    if lease is None:
        return None
    attach_images(lease)
    return lease.pair, lease


def _left_right(first, second, rng) -> tuple:
    return (first, second) if rng.random() < 0.5 else (second, first)


def _lease_writes_need_no_flush() -> None:
    """Inside a gold-pair lease transaction, which locks no candidate row to carry ``pair_sql.NO_FLUSH``:
    commit without waiting for the WAL flush (why: ``pair_sql.NO_FLUSH``)."""
    if connection.vendor == "postgresql":
        prepared_sql.execute("SET LOCAL synchronous_commit TO OFF", [])


# --- The queue --------------------------------------------------------------------------------------


def lease_from_queue(project: Project, rater, *, rng=None) -> PairLease | None:
    rng = rng or _random
    passed_over: list[int] = []
    for _ in range(QUEUE_ATTEMPTS):
        now = timezone.now()
        with transaction.atomic():
            row = pair_sql.queue_candidate(project, rater, now, passed_over)  # also: commit without flush
            if row is None:
                return None
            lease = _lease_locked_candidate(project, rater, row, now, rng)
        if lease is not None:
            return lease
        passed_over.append(row[0])
    return None


def _lease_locked_candidate(project, rater, row: tuple, now, rng) -> PairLease | None:
    """Lease one slot of the candidate ``row`` (locked by the caller) after re-checking it under the lock."""
    candidate_id, low, high = row
    judged, judged_by_rater, live, earliest, barred = pair_sql.slots(project, candidate_id, low, high, rater.pk, now)
    if judged + live >= project.overlap:
        pair_sql.store_slots(candidate_id, judged, live, earliest, project.overlap)
        return None
    if judged_by_rater or barred:
        return None
    left, right = _left_right(low, high, rng)
    lease = new_lease(project, rater, left, right, now, candidate_id=candidate_id)
    earliest = min(earliest, lease.expires_at) if earliest else lease.expires_at
    pair_sql.store_slots(candidate_id, judged, live + 1, earliest, project.overlap)
    return lease


# --- Fallback: fewest comparisons, random partners ------------------------------------------------


def lease_from_fallback(project: Project, rater, *, rng=None) -> PairLease | None:
    rng = rng or _random
    if project.group_key:
        return lease_from_group_fallback(project, rater, rng=rng)
    attempts = 0
    for pool_size in FALLBACK_POOL_SIZES:
        pool = fewest_compared(project, pool_size)
        if len(pool) < 2:
            return None
        blocked = pair_sql.blocked_pairs(project, rater, [image_id for image_id, _ in pool], timezone.now())
        for low, high in _pairs_fewest_first(pool, rng):
            if (low, high) in blocked:
                continue
            lease = _lease_pair(project, rater, low, high, rng)
            if lease is not None:
                return lease
            attempts += 1
            if attempts >= FALLBACK_ATTEMPTS:
                return None
        if len(pool) < pool_size:
            return None  # the pool was the whole project, searched exhaustively
    return None


def fewest_compared(project: Project, limit: int) -> list[tuple[int, int]]:
    """(image id, comparison count) of the ``limit`` images with the fewest comparisons."""
    pool = pair_sql.fewest_compared_rows(project, limit)
    if len(pool) < limit and recount_image_stats(project, only_missing=True):
        pool = pair_sql.fewest_compared_rows(project, limit)  # images written in bulk had no counters yet
    return pool


def _pairs_fewest_first(pool: list[tuple[int, int]], rng) -> Iterator[tuple[int, int]]:
    """Pairs of the pool: first images by fewest comparisons (ties in random order), partners at random."""
    firsts = sorted(pool, key=lambda row: (row[1], rng.random()))
    ids = [image_id for image_id, _ in pool]
    for first, _ in firsts:
        partners = ids[:]
        rng.shuffle(partners)
        for partner in partners:
            if partner != first:
                yield pair_sql.ordered(first, partner)


# --- Fallback within comparison groups (``Project.group_key``) --------------------------------------


def lease_from_group_fallback(project: Project, rater, *, rng=None) -> PairLease | None:
    """The fallback of a grouped project: the least compared images that have a group, each with random
    partners from its own group. The last pass takes every grouped image, so "nothing to rate" is exact
    even when the least compared images are alone in their groups (never served: they stay at zero)."""
    rng = rng or _random
    attempts = 0
    for pool_size in (*FALLBACK_POOL_SIZES, None):
        pool = pair_sql.fewest_compared_grouped_rows(project, pool_size)
        members = comparison_groups.members_of(project, {group for _, _, group in pool})
        ids = sorted({image_id for group_ids in members.values() for image_id in group_ids})
        if len(ids) < 2:
            return None
        blocked = pair_sql.blocked_pairs(project, rater, ids, timezone.now())
        for first, _, group in sorted(pool, key=lambda row: (row[1], rng.random())):
            partners = [image_id for image_id in members.get(group, []) if image_id != first]
            rng.shuffle(partners)
            for partner in partners:
                low, high = pair_sql.ordered(first, partner)
                if (low, high) in blocked:
                    continue
                lease = _lease_pair(project, rater, low, high, rng)
                if lease is not None:
                    return lease
                blocked.add((low, high))
                attempts += 1
                if attempts >= FALLBACK_ATTEMPTS:
                    return None
        if pool_size is None or len(pool) < pool_size:
            return None  # the pool held every grouped image: searched exhaustively
    return None


def _lease_pair(project: Project, rater, low: int, high: int, rng) -> PairLease | None:
    # One transaction per attempt, touching one candidate row: it may wait on another request's insert of
    # the same pair (the unique index), but never while holding a lock that request needs, so no deadlock.
    now = timezone.now()
    with transaction.atomic():
        row = pair_sql.insert_and_lock_candidate(project, low, high, now)  # also: commit without flush
        if row is None:
            return None  # another request holds it right now
        return _lease_locked_candidate(project, rater, row, now, rng)


# --- Gold pairs ------------------------------------------------------------------------------------


def lease_gold_pair(project: Project, rater, *, rng=None) -> PairLease | None:
    """A gold pair this rater has not seen yet. Gold pairs have no overlap limit: every rater gets each."""
    rng = rng or _random
    now = timezone.now()
    judged = Comparison.objects.filter(rater=rater)
    gold_pairs = GoldPair.objects.filter(project=project, is_active=True, image_a__archived_at=None, image_b__archived_at=None)
    available = list(
        gold_pairs
        .exclude(Exists(PairLease.objects.filter(rater=rater, gold=OuterRef("pk")).filter(blocking_leases(now))))
        .exclude(Exists(judged.filter(image_a=OuterRef("image_a"), image_b=OuterRef("image_b"))))
        .exclude(Exists(judged.filter(image_a=OuterRef("image_b"), image_b=OuterRef("image_a"))))
        .values_list("pk", flat=True)[:500]
    )
    if project.group_key:
        available = comparison_groups.same_group_gold(project, GoldPair.objects.filter(pk__in=available))
    if not available:
        return None
    gold = GoldPair.objects.get(pk=rng.choice(available))
    left, right = _left_right(gold.image_a_id, gold.image_b_id, rng)
    with transaction.atomic():
        _lease_writes_need_no_flush()
        return new_lease(project, rater, left, right, now, gold_id=gold.pk)
