"""The incremental model loop: cached comparisons read past a watermark, and only the moved scores written back.

Every test compares the incremental path against a full read / full refit of the same data."""
from dataclasses import replace

import numpy as np
import pytest
from django.db import transaction

from labeling.models import Comparison, Image, PairCandidate
from modeling.models import HumanScore, HumanScoreStamp
from modeling.services import comparison_cache, human_score_writes, human_scores
from modeling.services.pair_selection import RefillPolicy, refill_pair_queue
from tests.modeling.dashboard_data import add_comparisons, make_images, make_model_version, member, user

POLICY = RefillPolicy(batch_size=20, low_water=4, refit_every=3, max_per_image=2, explore_share=0.1)


def full_read(project, settings, **kwargs):
    """What a worker without a cache reads."""
    settings.TAGRANK_INCREMENTAL_FIT = False
    try:
        return human_scores.load_comparisons(project, **kwargs)
    finally:
        settings.TAGRANK_INCREMENTAL_FIT = True


def assert_same_arrays(left, right):
    for name in ("image_ids", "a_index", "b_index", "outcome", "rater_id", "response_ms", "gold", "comparison_id",
                 "heldout"):
        np.testing.assert_array_equal(getattr(left, name), getattr(right, name), err_msg=name)


def assert_matches_full_read(project, settings, fills: int | None = None):
    """The cached read equals a full read; ``fills``: how many full reads the cache has made by now."""
    assert_same_arrays(human_scores.load_comparisons(project), full_read(project, settings))
    if fills is not None:
        assert comparison_cache.cached_fills(project.pk) == fills


def random_rows(rng, images, raters, n):
    rows = []
    for _ in range(n):
        i, j = rng.choice(len(images), size=2, replace=False)
        outcome = rng.choice(["a", "b", "tie", "bad"], p=[0.45, 0.45, 0.05, 0.05])
        response = None if rng.random() < 0.2 else int(rng.integers(500, 5000))
        rows.append((images[i], images[j], outcome, raters[rng.integers(len(raters))], response))
    return rows


@pytest.fixture
def rated(project):
    project.allow_ties = project.allow_both_bad = True
    project.save()
    images = make_images(project, 40)
    raters = [user(f"cache-rater-{k}") for k in range(5)]
    for rater in raters:
        member(project, rater)
    add_comparisons(project, random_rows(np.random.default_rng(0), images, raters, 150))
    return images, raters


@pytest.mark.django_db
def test_reads_after_the_first_fetch_only_new_rows_and_equal_a_full_read(project, rated, settings):
    images, raters = rated
    rng = np.random.default_rng(1)
    first = comparison_cache.project_comparisons(project)
    assert first.rows_read == 150 and comparison_cache.cached_fills(project.pk) == 1
    for n_new in (1, 7, 0, 30):
        add_comparisons(project, random_rows(rng, images, raters, n_new))
        assert comparison_cache.project_comparisons(project).rows_read == n_new
        assert_matches_full_read(project, settings)
    assert comparison_cache.cached_fills(project.pk) == 1  # never reread everything
    # The arrays handed out are the cache's: read-only, and unchanged by later appends.
    held = human_scores.load_comparisons(project, include_excluded=True)
    with pytest.raises(ValueError):
        held.outcome[0] = 0.0
    snapshot = held.outcome.copy()
    add_comparisons(project, random_rows(rng, images, raters, 50))
    human_scores.load_comparisons(project)
    np.testing.assert_array_equal(held.outcome, snapshot)


@pytest.mark.django_db
def test_a_deletion_rebuilds_the_cache_even_when_an_append_restores_the_count(project, rated, settings):
    images, raters = rated
    human_scores.load_comparisons(project)
    Comparison.objects.filter(project=project).order_by("id")[:1].get().delete()  # an undo, a purge, by hand
    add_comparisons(project, random_rows(np.random.default_rng(2), images, raters, 1))  # same count as cached
    assert_matches_full_read(project, settings, fills=2)


@pytest.mark.django_db
def test_a_judgment_committed_below_the_watermark_rebuilds_the_cache(project, rated, settings):
    """Two judgments in flight: the one with the smaller id commits after the cache read past it."""
    images, raters = rated
    late = Comparison.objects.filter(project=project).order_by("-id")[5]
    late_row = {field: getattr(late, field) for field in
                ("id", "project_id", "image_a_id", "image_b_id", "outcome", "rater_id", "client_key")}
    late.delete()
    human_scores.load_comparisons(project)  # watermark above the missing id
    Comparison.objects.bulk_create([Comparison(**late_row)])  # ... which commits now
    assert_matches_full_read(project, settings, fills=2)


@pytest.mark.django_db
def test_excluding_a_rater_filters_the_cache_without_rereading(project, rated, settings):
    images, raters = rated
    human_scores.load_comparisons(project)
    membership = raters[0].memberships.get(project=project)
    membership.excluded_from_training = True
    membership.save()
    without = human_scores.load_comparisons(project)
    assert raters[0].pk not in set(without.rater_id.tolist()) and without.n_comparisons > 0
    assert_same_arrays(without, full_read(project, settings))
    assert_same_arrays(human_scores.load_comparisons(project, include_excluded=True),
                       full_read(project, settings, include_excluded=True))
    membership.excluded_from_training = False
    membership.save()
    assert_matches_full_read(project, settings, fills=1)


@pytest.mark.django_db
def test_new_and_deleted_images_keep_the_indices_right(project, rated, settings):
    images, raters = rated
    human_scores.load_comparisons(project)
    Image.objects.bulk_create([  # six new images, larger ids
        Image(project=project, file=f"images/new_{i}.png", original_name=f"new_{i}.png", sha256=f"{i:064x}"[::-1],
              width=64, height=48) for i in range(6)])
    added = list(Image.objects.filter(project=project).order_by("id"))[40:]
    add_comparisons(project, random_rows(np.random.default_rng(3), added[1:] + images[:3], raters, 10))
    assert_matches_full_read(project, settings)
    # An image nobody compared is deleted: the ids above it shift down, the cached indices are mapped.
    assert not Comparison.objects.filter(image_a=added[0]).exists() and not Comparison.objects.filter(
        image_b=added[0]).exists()
    added[0].delete()
    assert_matches_full_read(project, settings, fills=1)


@pytest.mark.django_db
def test_incremental_refit_equals_a_full_refit_after_random_appends(
        project, rated, settings, django_capture_on_commit_callbacks):
    images, raters = rated
    make_model_version(project, images, np.linspace(2, 9, len(images)))  # the model prior takes part too
    rng = np.random.default_rng(4)
    with django_capture_on_commit_callbacks(execute=True):  # as after a commit: the copy of the scores is kept
        human_scores.fit_human_scores(project)
    written = []
    for round_ in range(6):
        add_comparisons(project, random_rows(rng, images, raters, int(rng.integers(1, 12))))
        incremental = human_scores.fit_project_posterior(project)
        # A full refit, as a fresh worker does it: every comparison read, the warm start read from the table.
        stored = human_scores.stored_posterior(project, incremental.image_ids)
        full = human_scores.fit_project_posterior(
            project, comparisons=full_read(project, settings), warm_start=np.nan_to_num(stored[0]))
        assert incremental.n_comparisons == full.n_comparisons
        np.testing.assert_allclose(incremental.posterior.mean, full.posterior.mean, rtol=0, atol=1e-6)
        np.testing.assert_allclose(incremental.posterior.var, full.posterior.var, rtol=0, atol=1e-6)
        with django_capture_on_commit_callbacks(execute=True):
            written.append(human_scores.store_human_scores(project, incremental))
        rows = {row[0]: row[1:] for row in HumanScore.objects.filter(project=project).values_list(
            "image_id", "mean", "variance", "n_comparisons")}
        index = {image_id: k for k, image_id in enumerate(incremental.image_ids.tolist())}
        for image_id, (mean, variance, count) in rows.items():
            k = index[image_id]
            fitted_variance = incremental.posterior.var[k]  # stored to within a share of its uncertainty
            assert abs(mean - incremental.posterior.mean[k]) <= human_score_writes.MOVED_SHARE * fitted_variance ** 0.5
            assert abs(variance - fitted_variance) <= human_score_writes.MOVED_SHARE * fitted_variance
            assert count == incremental.counts[k]
    assert comparison_cache.cached_fills(project.pk) == 1
    assert HumanScoreStamp.objects.get(project=project).version == 7
    assert all(0 < n <= len(images) for n in written)


@pytest.mark.django_db
def test_only_moved_scores_are_written_while_the_copy_is_current(project, rated, django_capture_on_commit_callbacks):
    images, _ = rated
    with django_capture_on_commit_callbacks(execute=True):
        human_scores.fit_human_scores(project)  # the first fit writes every row
    assert HumanScore.objects.filter(project=project).count() == len(images)
    first = human_scores.fit_project_posterior(project)  # warm-started from the stored means (now copied)
    with django_capture_on_commit_callbacks(execute=True):
        human_scores.store_human_scores(project, first)
    with django_capture_on_commit_callbacks(execute=True):
        assert human_scores.store_human_scores(project, first) == 0  # nothing moved
    # Another worker writes (the stamp moves on): this process's copy is stale, so every row is written.
    HumanScore.objects.filter(project=project, image=images[0]).update(mean=5.0)
    HumanScoreStamp.objects.filter(project=project).update(version=99)
    with django_capture_on_commit_callbacks(execute=True):
        assert human_scores.store_human_scores(project, first) == len(images)
    assert HumanScore.objects.get(image=images[0]).mean == pytest.approx(first.posterior.mean[0])


@pytest.mark.django_db
def test_a_score_is_rewritten_once_it_moved_by_a_share_of_its_uncertainty(project, rated,
                                                                          django_capture_on_commit_callbacks):
    images, _ = rated
    with django_capture_on_commit_callbacks(execute=True):
        human_scores.fit_human_scores(project)
    fit = human_scores.fit_project_posterior(project)  # reads the stored scores: this process's copy is current
    with django_capture_on_commit_callbacks(execute=True):
        human_scores.store_human_scores(project, fit)
    share = human_score_writes.MOVED_SHARE
    std = np.sqrt(fit.posterior.var)

    def store(shift):
        mean = fit.posterior.mean.copy()
        mean[:2] += shift[:2]
        with django_capture_on_commit_callbacks(execute=True):
            written = human_scores.store_human_scores(project, replace(fit, posterior=replace(fit.posterior, mean=mean)))
        return written, HumanScore.objects.get(image_id=fit.image_ids[0]).mean

    stored_before = HumanScore.objects.get(image_id=fit.image_ids[0]).mean
    assert store(0.6 * share * std) == (0, stored_before)  # too little to matter: not written
    # The stored row, not the last fit, is what a score is held against: a drift is written once it adds up.
    written, stored = store(1.2 * share * std)
    assert written == 2 and stored == pytest.approx(fit.posterior.mean[0] + 1.2 * share * std[0], abs=1e-12)
    assert store(1.2 * share * std)[0] == 0
    variance = fit.posterior.var.copy()
    variance[3] *= 1 + 2 * share
    with django_capture_on_commit_callbacks(execute=True):
        assert human_scores.store_human_scores(project, replace(fit, posterior=replace(
            fit.posterior, mean=fit.posterior.mean + np.r_[1.2 * share * std[:2], np.zeros(len(images) - 2)],
            var=variance))) == 1


@pytest.mark.django_db
def test_a_fit_of_older_data_does_not_overwrite_a_newer_one(project, rated):
    first = human_scores.fit_project_posterior(project)
    second = human_scores.fit_project_posterior(project)
    human_scores.store_human_scores(project, second)
    assert human_scores.store_human_scores(project, first) == 0
    assert HumanScoreStamp.objects.get(project=project).fitted_at == second.data_as_of


@pytest.mark.django_db
def test_a_restarted_worker_gives_the_same_queue(project, rated, django_capture_on_commit_callbacks):
    images, raters = rated
    with django_capture_on_commit_callbacks(execute=True):
        refill_pair_queue(project, policy=POLICY)  # the warm worker: comparisons cached, scores copied
    add_comparisons(project, random_rows(np.random.default_rng(5), images, raters, 9))

    def queue():
        return sorted(PairCandidate.objects.filter(project=project, is_open=True).values_list(
            "image_low_id", "image_high_id", "priority"))

    def scores():
        return sorted(HumanScore.objects.filter(project=project).values_list("image_id", "mean", "variance"))

    savepoint = transaction.savepoint()
    refill_pair_queue(project, policy=POLICY)
    warm_queue, warm_scores = queue(), scores()
    assert comparison_cache.cached_fills(project.pk) == 1
    transaction.savepoint_rollback(savepoint)
    comparison_cache.forget()  # the restart: nothing in memory
    human_score_writes.forget()
    refill_pair_queue(project, policy=POLICY)
    cold_queue, cold_scores = queue(), scores()
    assert [row[:2] for row in warm_queue] == [row[:2] for row in cold_queue] and len(warm_queue) > 0
    np.testing.assert_allclose([row[2] for row in warm_queue], [row[2] for row in cold_queue], atol=1e-6)
    assert [row[0] for row in warm_scores] == [row[0] for row in cold_scores]
    np.testing.assert_allclose(np.array([row[1:] for row in warm_scores]), np.array([row[1:] for row in cold_scores]),
                               atol=1e-6)


@pytest.mark.django_db
def test_the_project_used_longest_ago_is_dropped_beyond_the_limit(project, rated, monkeypatch, settings):
    from labeling.models import Project

    other = Project.objects.create(name="Other", slug="other", overlap=1)
    monkeypatch.setattr(comparison_cache, "MAX_PROJECTS", 1)
    human_scores.load_comparisons(project)
    assert comparison_cache.cached_fills(project.pk) == 1
    human_scores.load_comparisons(other)
    assert comparison_cache.cached_fills(project.pk) == 0 and comparison_cache.cached_fills(other.pk) == 1
    assert_matches_full_read(project, settings)  # refilled
