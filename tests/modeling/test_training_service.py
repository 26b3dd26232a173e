"""The model loop's services, run in this process: datasets and the held-out set, training runs,
champion/challenger, rescoring with the switch at the end, the linear head chosen automatically.
Promotion and rollback: ``test_promotion_rollback.py``; the trigger policy and the tasks: ``test_training_triggers.py``."""
from __future__ import annotations

import itertools
import uuid
from datetime import timedelta

import numpy as np
import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from labeling.models import Comparison, Membership, ReferenceRating
from modeling.models import ImageFeatures, ImageScore, ModelVersion, Promotion, TrainingRun, TrainingSettings
from modeling.services import datasets, feature_extraction, promotion, scoring, training_runs
from tests.modeling.model_loop_support import fast_training, simulate_comparisons

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_heartbeat_thread(settings):
    # In-process runs share the test's transaction; the progress writes are the heartbeat here.
    settings.TAGRANK_TRAINING_HEARTBEAT_SECONDS = 0


def train_now(project, **kwargs):
    run, created = training_runs.request_training(project, dispatch=False, **kwargs)
    assert created
    result = training_runs.execute_run(run.pk, task_id="in-process")
    run.refresh_from_db()
    return run, result


# --- The held-out set ------------------------------------------------------------------------------


def test_holdout_is_symmetric_stable_and_about_ten_percent():
    pairs = [(p, a, b) for p in (1, 7) for a, b in itertools.combinations(range(1, 400, 3), 2)]
    held = [datasets.is_holdout(p, a, b) for p, a, b in pairs]
    assert held == [datasets.is_holdout(p, b, a) for p, a, b in pairs]  # order does not matter
    for project_id in (1, 7):  # the array form, used to read a dataset
        mine = [(a, b, h) for (p, a, b), h in zip(pairs, held) if p == project_id]
        a, b, expected = (np.array(column) for column in zip(*mine))
        assert datasets.holdout_mask(project_id, a, b).tolist() == expected.tolist()
    share = sum(held) / len(held)
    assert 0.08 < share < 0.12, share
    # Another project holds out other pairs: the set is per project.
    first = {(a, b) for (p, a, b), h in zip(pairs, held) if h and p == 1}
    second = {(a, b) for (p, a, b), h in zip(pairs, held) if h and p == 7}
    assert first != second


def test_sql_holdout_selects_exactly_the_python_holdout(project, rater, loop_images):
    rows = []
    for left, right in itertools.permutations(loop_images, 2):
        rows.append(Comparison(project=project, image_a=left, image_b=right, outcome="a", rater=rater,
                               client_key=uuid.uuid4().hex))
    Comparison.objects.bulk_create(rows)
    everything = Comparison.objects.filter(project=project)
    in_sql = set(datasets.holdout_comparisons(everything).values_list("pk", flat=True))
    in_python = {c.pk for c in everything if datasets.is_holdout(project.pk, c.image_a_id, c.image_b_id)}
    assert in_sql == in_python
    assert 0 < len(in_sql) < everything.count()
    assert set(datasets.training_comparisons(everything).values_list("pk", flat=True)) == (
        set(everything.values_list("pk", flat=True)) - in_python
    )


# --- The dataset -----------------------------------------------------------------------------------


def test_dataset_leaves_out_excluded_raters_and_holds_out_pairs(project, rater, make_user, loop_images):
    feature_extraction.extract_features([i.pk for i in loop_images])
    simulate_comparisons(project, rater, loop_images, 120)
    spammer = make_user("spammer")
    Membership.objects.create(project=project, user=spammer, excluded_from_training=True)
    simulate_comparisons(project, spammer, loop_images, 30, seed=5)
    rating = ReferenceRating(image=loop_images[0])
    rating.votes = [0, 0, 1, 2, 5, 9, 5, 2, 1, 0]
    rating.save()

    dataset = datasets.build_dataset(project)
    counts = dataset.counts
    assert counts["images"] == 16
    assert counts["comparisons"] == 120 and counts["excluded_rater_comparisons"] == 30
    assert counts["training_comparisons"] + counts["holdout_comparisons"] == 120
    expected_held = sum(
        datasets.is_holdout(project.pk, a, b)
        for a, b in Comparison.objects.filter(rater=rater).values_list("image_a_id", "image_b_id")
    )
    assert counts["holdout_comparisons"] == expected_held
    assert dataset.data.n_comparisons == counts["training_comparisons"]
    # No held-out pair is among the training comparisons.
    ids = dataset.image_ids
    train_pairs = {frozenset((ids[a], ids[b])) for a, b in zip(dataset.data.comp_a, dataset.data.comp_b)}
    held_pairs = {frozenset((ids[a], ids[b])) for a, b in zip(dataset.holdout_a, dataset.holdout_b)}
    assert not train_pairs & held_pairs
    # Texts: two tags each, plus a caption on every third image.
    assert dataset.data.tag_mask.sum(axis=1).tolist() == [3 if k % 3 == 0 else 2 for k in range(16)]
    assert dataset.ref_dist is not None and dataset.ref_dist[0].sum() == pytest.approx(1.0)
    assert dataset.last_comparison_id == Comparison.objects.order_by("-pk").first().pk


def test_features_are_extracted_once_and_recorded(project, loop_images):
    ids = [i.pk for i in loop_images]
    first = feature_extraction.extract_features(ids)
    assert len(first.extracted) == 16 and first.already == 0 and not first.failed
    assert ImageFeatures.objects.filter(image__project=project, encoder_id=first.encoder_id).count() == 16
    assert feature_extraction.feature_store().get_images(ids).shape[0] == 16
    again = feature_extraction.extract_features(ids)
    assert again.extracted == [] and again.already == 16
    assert feature_extraction.encoder_id_for() == feature_extraction.current_encoder().encoder_id
    assert not feature_extraction.images_missing_features(project).exists()


def test_an_unreadable_image_is_reported_and_the_others_get_features(project, loop_images):
    broken = loop_images[3]
    broken.file.storage.delete(broken.file.name)
    report = feature_extraction.extract_features([i.pk for i in loop_images[:6]])
    assert [image_id for image_id, _ in report.failed] == [broken.pk]
    assert len(report.extracted) == 5


# --- Training runs -----------------------------------------------------------------------------------


def test_a_training_run_stores_a_version_with_both_models_metrics(project, rater, manager, loop_images):
    fast_training(project)
    simulate_comparisons(project, rater, loop_images, 200)
    run, result = train_now(project, user=manager, reason="test")

    assert run.status == TrainingRun.Status.SUCCEEDED, run.error
    assert run.progress == 1.0 and run.finished_at and run.started_at and run.attempts == 1
    assert "training the tags model" in run.log and "image-only epoch" in run.log
    version = run.model_version
    assert version.encoder_id == feature_extraction.encoder_id_for()
    assert version.trained_by == manager
    assert version.n_comparisons == version.metrics["counts"]["training_comparisons"] > 0
    assert version.last_comparison_id == Comparison.objects.order_by("-pk").first().pk
    holdout = version.metrics["holdout"]
    assert set(holdout) == {"tags", "image_only", "linear_bt"}  # the linear head is always evaluated beside it
    assert holdout["tags"]["n_comparisons"] == version.metrics["counts"]["holdout_comparisons"] > 0
    assert 0.0 <= holdout["tags"]["pairwise_agreement"] <= 1.0
    assert version.metrics["pairwise_agreement"] == holdout["tags"]["pairwise_agreement"]
    assert version.metrics["baseline_pairwise_agreement"] == holdout["image_only"]["pairwise_agreement"]
    # The project's λ (default 1) puts the tag similarity into the comparisons' ranking key; never the baseline's.
    assert version.metrics["losses_used"]["tags"] == {"pairwise": 1.0, "pairwise_lambda": 1.0}
    assert version.metrics["losses_used"]["image_only"] == {"pairwise": 1.0, "pairwise_lambda": 0.0}
    assert version.metrics["training_seconds"]["total"] > 0 and version.training_seconds > 0
    assert version.config["train_config"]["epochs"] == 4  # the project's override was used
    assert version.config["train_config"]["ranker"]["width"] == 32

    # The weights file is in media storage and loads.
    model, meta = scoring.load_version_model(version)
    assert meta["encoder_id"] == version.encoder_id and meta["training_run"] == run.pk

    # First version: promoted automatically, waiting for its scores before it becomes active.
    assert version.status == ModelVersion.Status.SCORING and not version.is_active
    log = Promotion.objects.get(to_version=version)
    assert log.kind == Promotion.Kind.AUTOMATIC and log.decided_by is None and log.from_version is None
    assert "First model version" in log.reason and log.completed_at is None


def test_rescoring_switches_only_when_every_image_is_scored(project, rater, loop_images, settings):
    fast_training(project)
    simulate_comparisons(project, rater, loop_images, 150)
    first = train_now(project)[0].model_version
    # A promoted version is stored with the scores its evaluation computed: the rescoring only switches it in.
    stored = dict(ImageScore.objects.filter(model_version=first).values_list("image_id", "mean"))
    assert len(stored) == 16 and first.scoring_done == first.scoring_total == 16
    assert scoring.rescore(first.pk) == {"version": first.pk, "scored": 0, "activated": True}
    model, _ = scoring.load_version_model(first)
    ImageScore.objects.filter(model_version=first).delete()
    scoring.score_and_store(first, list(stored), model=model)  # the same scores as the rescoring task's own
    assert dict(ImageScore.objects.filter(model_version=first).values_list("image_id", "mean")) == pytest.approx(stored)
    first.refresh_from_db()
    assert first.is_active and first.status == ModelVersion.Status.ACTIVE and first.activated_at
    assert ImageScore.objects.filter(model_version=first).count() == 16
    assert first.scoring_done == first.scoring_total == 16
    assert Promotion.objects.get(to_version=first).completed_at is not None

    simulate_comparisons(project, rater, loop_images, 60, seed=9)
    training_settings = fast_training(project)
    training_settings.promotion_tolerance = 1.0  # the challenger wins whatever its agreement
    training_settings.save()
    second = train_now(project)[0].model_version
    assert second.status == ModelVersion.Status.SCORING
    assert second.metrics["champion"]["version"] == first.pk
    assert second.metrics["champion"]["holdout"]["pairwise_agreement"] is not None

    # Scoring in batches, as for a version promoted by hand later (no scores stored by its training run).
    ImageScore.objects.filter(model_version=second).delete()
    settings.TAGRANK_SCORING_BATCH_SIZE = 5
    seen = []

    def during(done, total):
        # Mid-way, the first version still serves with all of its scores: no mixture, no gap.
        active = ModelVersion.objects.get(project=project, is_active=True)
        seen.append((done, total, active.pk, ImageScore.objects.filter(model_version=active).count()))

    assert scoring.rescore(second.pk, progress=during)["activated"]
    assert [s[0] for s in seen] == [5, 10, 15, 16]
    assert all(active == first.pk and count == 16 for _, _, active, count in seen)
    first.refresh_from_db(), second.refresh_from_db()
    assert second.is_active and not first.is_active and first.status == ModelVersion.Status.RETIRED
    assert ModelVersion.objects.filter(project=project, is_active=True).count() == 1
    scores = ImageScore.objects.filter(model_version=second)
    assert scores.count() == 16
    assert all(1 <= s.mean <= 10 and len(s.distribution) == 10 for s in scores)
    assert scoring.rescore(second.pk) == {"version": second.pk, "skipped": "not waiting to be scored"}


def test_the_image_only_baseline_is_trained_only_when_due(project, rater, loop_images):
    fast_training(project, promotion_tolerance=1.0)
    simulate_comparisons(project, rater, loop_images, 150)
    first_run = train_now(project)[0]
    first = first_run.model_version
    assert first.config["baseline"]["trained"] and "no earlier baseline" in first.config["baseline"]["reason"]
    assert "image-only epoch" in first_run.log

    # A few more comparisons: the newest baseline is evaluated again on this run's held-out set, not retrained.
    simulate_comparisons(project, rater, loop_images, 40, seed=5)
    second_run = train_now(project)[0]
    second = second_run.model_version
    assert "image-only epoch" not in second_run.log and "reused from version" in second_run.log
    assert second.config["baseline"] == {"trained": False, "reason": second.config["baseline"]["reason"],
                                         "version": first.pk, "training_comparisons": first.n_comparisons}
    assert second.config["baseline_weights"] == first.config["baseline_weights"]
    baseline, _ = scoring.load_weights_file(first.config["baseline_weights"])
    dataset = datasets.build_dataset(project, last_comparison_id=second.last_comparison_id)
    expected = training_runs.evaluate_on_holdout(baseline, dataset)
    assert second.metrics["holdout"]["image_only"]["n_comparisons"] == second.metrics["counts"]["holdout_comparisons"]
    assert second.metrics["baseline_pairwise_agreement"] == pytest.approx(expected["pairwise_agreement"])
    assert second.metrics["training_seconds"]["image_only"] is None

    # Twice the training comparisons of the reused one: trained again.
    simulate_comparisons(project, rater, loop_images, 400, seed=6)
    third = train_now(project)[0].model_version
    assert third.config["baseline"]["trained"] and "at least 2x" in third.config["baseline"]["reason"]
    assert third.config["baseline_weights"] != first.config["baseline_weights"]
    # Other training settings: trained again, even on the same data.
    fast_training(project, promotion_tolerance=1.0, hyperparameters={"lr": 0.01})
    simulate_comparisons(project, rater, loop_images, 5, seed=7)
    fourth = train_now(project)[0].model_version
    assert fourth.config["baseline"]["trained"] and "settings changed" in fourth.config["baseline"]["reason"]
    # Turned off: no baseline row at all.
    fast_training(project, promotion_tolerance=1.0, hyperparameters={"lr": 0.01}, train_baseline=False)
    simulate_comparisons(project, rater, loop_images, 5, seed=8)
    fifth = train_now(project)[0].model_version
    assert "image_only" not in fifth.metrics["holdout"] and "baseline" not in fifth.config


def test_a_weaker_challenger_is_kept_as_a_candidate_with_the_reason(project, rater, loop_images, monkeypatch):
    fast_training(project)
    simulate_comparisons(project, rater, loop_images, 150)
    first = train_now(project)[0].model_version
    scoring.rescore(first.pk)
    simulate_comparisons(project, rater, loop_images, 60, seed=3)
    # The champion scores above what any challenger can reach (agreement is at most 1, and the tolerance
    # is 0): with an encoder that sees quality, a challenger can agree perfectly on a small held-out set.
    TrainingSettings.objects.update_or_create(project=project, defaults={"promotion_tolerance": 0.0})
    monkeypatch.setattr(training_runs, "champion_on_holdout",
                        lambda champion, dataset: ({"pairwise_agreement": 1.001, "n_comparisons": 9}, "stub"))
    refits = []
    monkeypatch.setattr("worker.dispatch.send_metrics_refresh", refits.append)
    run, _ = train_now(project)
    second = run.model_version
    assert run.status == TrainingRun.Status.SUCCEEDED
    assert second.status == ModelVersion.Status.CANDIDATE and not second.is_active
    assert refits == [project.pk]  # no activation follows: the dashboard is refreshed after training
    assert second.status_reason.startswith("Kept as a candidate: held-out pairwise agreement")
    assert f"active version {first.pk}" in second.status_reason
    assert not Promotion.objects.filter(to_version=second).exists()
    assert ModelVersion.objects.get(project=project, is_active=True) == first


@pytest.mark.parametrize(
    "new, old, tolerance, promoted",
    [(0.70, 0.71, 0.02, True), (0.69, 0.71, 0.02, True), (0.68, 0.71, 0.02, False), (0.80, 0.71, 0.0, True)],
)
def test_champion_challenger_tolerance(new, old, tolerance, promoted):
    verdict = promotion.judge({"pairwise_agreement": new, "n_comparisons": 40}, {"pairwise_agreement": old}, tolerance, 3)
    assert verdict.promote is promoted
    assert f"{new:.3f} vs {old:.3f}" in verdict.reason


def test_champion_challenger_falls_back_to_srcc_and_refuses_when_nothing_compares():
    assert promotion.judge({"pairwise_agreement": None, "srcc": 0.5}, {"pairwise_agreement": None, "srcc": 0.6},
                           0.02, 3).promote is False
    verdict = promotion.judge({"pairwise_agreement": None}, {"pairwise_agreement": 0.8}, 0.02, 3)
    assert verdict.promote is False and "A manager can promote it" in verdict.reason
    assert promotion.judge({}, None, 0.02, None).promote is True


def test_a_run_with_nothing_to_train_on_fails_with_the_reason(project, loop_images):
    fast_training(project)
    run, result = train_now(project)
    assert run.status == TrainingRun.Status.FAILED and run.failure_kind == TrainingRun.Failure.ERROR
    assert "nothing to train on" in run.error
    assert not ModelVersion.objects.filter(project=project).exists()
    assert training_runs.open_run(project) is None  # the project is free for the next run


def test_a_run_is_claimed_once(project, loop_images):
    run, _ = training_runs.request_training(project, dispatch=False)
    assert training_runs.claim_run(run.pk, "first") is not None
    assert training_runs.claim_run(run.pk, "second") is None  # a duplicate message does nothing
    assert training_runs.execute_run(run.pk) == {"run": run.pk, "skipped": "not queued"}


# --- At most one open run per project ------------------------------------------------------------


def test_the_database_refuses_a_second_open_run(project):
    TrainingRun.objects.create(project=project)
    with pytest.raises(IntegrityError), transaction.atomic():
        TrainingRun.objects.create(project=project, status=TrainingRun.Status.RUNNING)
    # Finished runs do not count.
    TrainingRun.objects.update(status=TrainingRun.Status.FAILED)
    TrainingRun.objects.create(project=project)


def test_requesting_while_a_run_is_open_returns_that_run(project, manager):
    first, created = training_runs.request_training(project, dispatch=False)
    second, created_again = training_runs.request_training(project, user=manager, dispatch=False)
    assert created and not created_again and second.pk == first.pk
    assert TrainingRun.objects.filter(project=project).count() == 1


def test_a_dead_run_is_failed_and_frees_the_project(project, settings):
    settings.TAGRANK_TRAINING_STALE_SECONDS = 60
    run, _ = training_runs.request_training(project, dispatch=False)
    training_runs.claim_run(run.pk)
    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=30))
    assert training_runs.fail_dead_runs(project) == []  # 30 s without a heartbeat is not dead yet
    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=90))
    assert training_runs.fail_dead_runs(project) == [run.pk]
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.FAILED and run.failure_kind == TrainingRun.Failure.WORKER_LOST
    assert "No heartbeat" in run.error
    again, created = training_runs.request_training(project, dispatch=False)
    assert created and again.pk != run.pk


def test_a_run_taken_away_stops_at_its_next_write(project):
    run, _ = training_runs.request_training(project, dispatch=False)
    claimed = training_runs.claim_run(run.pk)
    reporter = training_runs.RunReporter(claimed)
    reporter.log("working")
    TrainingRun.objects.filter(pk=run.pk).update(status=TrainingRun.Status.FAILED)
    with pytest.raises(training_runs.RunAbandoned):
        reporter.log("still working")


# --- The model that learns from few judgments: the linear head, chosen automatically --------------------


def test_a_small_project_trains_the_linear_head_alone_and_it_serves(project, rater, loop_images):
    fast_training(project, hyperparameters={"model_kind": "auto"})
    simulate_comparisons(project, rater, loop_images, 120)
    run, _ = train_now(project)
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error
    assert "fast path" in run.log and "training the tags model" not in run.log
    version = run.model_version
    assert version.config["model_kind"] == "linear_bt" and version.metrics["model_kind"] == "linear_bt"
    assert set(version.metrics["holdout"]) >= {"linear_bt"} and "tags" not in version.metrics["holdout"]
    model, meta = scoring.load_version_model(version)
    assert model.kind == "linear_bt" and meta["training_run"] == run.pk
    scoring.rescore(version.pk)
    version.refresh_from_db()
    assert version.is_active and ImageScore.objects.filter(model_version=version).count() == len(loop_images)
    # Its scores follow the simulated rater's latent quality (noiseless judgments, 120 of 16 images).
    from tests.modeling.model_loop_support import latent_quality

    quality = latent_quality(loop_images)
    scores = dict(ImageScore.objects.filter(model_version=version).values_list("image_id", "mean"))
    from scipy.stats import spearmanr

    assert spearmanr([scores[i.pk] for i in loop_images], [quality[i.pk] for i in loop_images])[0] > 0.5


def test_the_automatic_choice_keeps_the_better_held_out_agreement():
    better_ranker = {"linear_bt": {"pairwise_agreement": 0.61, "n_comparisons": 40}, "tags": {"pairwise_agreement": 0.7}}
    assert training_runs.choose_model(better_ranker)[0] == "tags"
    better_linear = {"linear_bt": {"pairwise_agreement": 0.8, "n_comparisons": 40}, "tags": {"pairwise_agreement": 0.7}}
    kind, reason = training_runs.choose_model(better_linear)
    assert kind == "linear_bt" and "tags 0.700, linear_bt 0.800" in reason
    tie = {"linear_bt": {"pairwise_agreement": 0.7, "n_comparisons": 40}, "tags": {"pairwise_agreement": 0.7}}
    assert training_runs.choose_model(tie)[0] == "linear_bt"  # the smaller model on a tie
    assert training_runs.choose_model({"linear_bt": {}})[0] == "linear_bt"


def test_a_pinned_model_kind_is_checked(project):
    fast_training(project, hyperparameters={"model_kind": "gpt"})
    with pytest.raises(ValueError, match="model_kind"):
        training_runs.model_choice(project)


def test_the_human_score_fit_cross_fits_the_head_on_the_cached_features(project, rater, loop_images):
    from modeling.services import human_scores, model_prior

    feature_extraction.ensure_image_features([image.pk for image in loop_images])
    ids = np.array(sorted(image.pk for image in loop_images))
    have, pooled = model_prior.pooled_project_features(ids, feature_extraction.encoder_id_for())
    assert have.all() and pooled.shape[0] == len(loop_images) and np.isfinite(pooled).all()
    simulate_comparisons(project, rater, loop_images, 60)
    fit = human_scores.fit_project_posterior(project)
    assert fit.prior_source.startswith("linear_bt, each image left out") and fit.model_version_id is None
