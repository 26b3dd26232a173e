"""Training runs: request one (at most one open per project, enforced by the database), claim it in a
worker, train the tags ranker (and the image-only baseline when it is due, ``baselines.py``), evaluate
both on the held-out comparisons, store a ModelVersion, and let champion/challenger decide whether it
becomes active. A promoted version is stored with the scores the evaluation computed for every image.

A run that a worker claimed writes a heartbeat (a thread, plus every progress update). When the worker
dies, the heartbeat goes stale and ``fail_dead_runs`` (called by the trigger check every minute)
marks the run failed, which frees the project for the next run. A run that was marked failed while
its worker was merely slow finds out at its next progress write and stops without storing anything.

Beside it: ``run_reporter.py`` (what a claimed run writes to its row as it trains) and ``challenger.py``
(the candidates' held-out metrics, the choice between them, the champion on the same held-out set).
"""
from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
import traceback
from dataclasses import asdict

from datetime import timedelta

from django.conf import settings
from django.core.files import File
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from labeling.models import Image, Project
from modeling.ml.json_values import plain_json
from modeling.models import ModelVersion, Promotion, TrainingRun
from modeling.services.challenger import (
    LINEAR_KIND,
    champion_on_holdout,
    choose_model,
    evaluate_on_holdout,
    holdout_metrics,
    score_dataset,
    train_linear_head,
)
from modeling.services.run_reporter import LOG_LIMIT, RunAbandoned, RunReporter, epoch_progress
from modeling.services import baselines, criterion_scores, datasets, feature_extraction, notifications, promotion, scoring
import worker.dispatch as dispatch

logger = logging.getLogger(__name__)

# What the platform changes from the library's TrainConfig defaults: the held-out comparisons are
# the real test, so early stopping may use a split by comparison that drops none of them.
# A project's first versions train on a few hundred comparisons: one step per epoch, so at least 300 steps.
# Steps sized to the data rather than epochs: a step costs about as much as its distinct images, and half
# the comparisons per step reached the same validation agreement in about as many steps, for less work.
# Early stopping ends a run; max_steps bounds one whose validation keeps creeping up, so that the time of
# a retrain stays bounded as the data grow: more data, fewer passes (docs/benchmarks.md, "Model loop (Celery)").
# Width 64: a step costs a fraction of width 128's, and on the head benchmark both reached the same
# validation agreement (docs/benchmarks.md, "Head training on cached features").
PLATFORM_TRAIN_DEFAULTS = {"split_by_image": False, "val_fraction": 0.1, "min_steps": 300, "max_steps": 300,
                           "batch_pairs": 512, "ranker": {"width": 64}}
# Fewer training comparisons than this: only the linear head is fitted (a second), the ranker is not
# trained: at a few hundred comparisons it cannot win the choice (docs/ranker.md, "Few judgments").
RANKER_MIN_COMPARISONS = 1000


def stale_after() -> timedelta:
    return timedelta(seconds=float(settings.TAGRANK_TRAINING_STALE_SECONDS))


def redispatch_after() -> timedelta:
    return timedelta(seconds=float(settings.TAGRANK_TRAINING_REDISPATCH_SECONDS))


def merged_hyperparameters(project: Project) -> dict:
    """Platform defaults < settings (``TAGRANK_TRAIN_CONFIG``) < the project's own (its λ field, then its
    free-form hyperparameters)."""
    merged: dict = {}
    own = promotion.training_settings(project)
    for layer in (
        PLATFORM_TRAIN_DEFAULTS,
        settings.TAGRANK_TRAIN_CONFIG,
        {"lam": own.ranking_lambda},
        own.hyperparameters or {},
    ):
        layer = dict(layer)
        ranker = layer.pop("ranker", None)
        merged.update(layer)
        if ranker:
            merged["ranker"] = {**merged.get("ranker", {}), **ranker}
    return merged


def train_config(project: Project):
    """The TrainConfig for a project: library defaults < ``merged_hyperparameters``."""
    from modeling.ml.training import TrainConfig

    return TrainConfig.from_dict(merged_hyperparameters(project))


def model_choice(project: Project) -> tuple[str, int]:
    """(``model_kind``: "auto", "tags" or "linear_bt"; ``ranker_min_comparisons``) from the hyperparameters.

    "auto" (the default) fits both and keeps the better on the held-out comparisons; below
    ``ranker_min_comparisons`` training comparisons only the linear head is fitted (the fast path).
    A manager can pin one kind with ``{"model_kind": "tags"}`` in the project's hyperparameters."""
    merged = merged_hyperparameters(project)
    kind = str(merged.get("model_kind", "auto"))
    if kind not in ("auto", "tags", LINEAR_KIND):
        raise ValueError(f"model_kind must be auto, tags or {LINEAR_KIND}, not {kind!r}")
    return kind, int(merged.get("ranker_min_comparisons", RANKER_MIN_COMPARISONS))


# --- Requesting ------------------------------------------------------------------------------


def open_run(project: Project) -> TrainingRun | None:
    return TrainingRun.objects.filter(project=project, status__in=TrainingRun.OPEN_STATUSES).first()


def request_training(
    project: Project, *, trigger: str = TrainingRun.Trigger.MANUAL, reason: str = "", user=None, dispatch: bool = True
) -> tuple[TrainingRun, bool]:
    """Queue a training run for the project, or return the one already open. Returns (run, created).

    The database's partial unique index decides between concurrent requests: exactly one insert wins.
    """
    for _attempt in range(3):
        try:
            with transaction.atomic():
                run = TrainingRun.objects.create(
                    project=project, trigger=trigger, trigger_reason=reason[:300], requested_by=user
                )
                if dispatch:
                    # Not send_after_commit: a sent run is stamped (dispatched_at) for the re-send check.
                    transaction.on_commit(lambda run_id=run.pk: dispatch_run(run_id))
            logger.info("training run %s queued for %s (%s)", run.pk, project.slug, reason or trigger)
            return run, True
        except IntegrityError:
            existing = open_run(project)
            if existing is not None:
                return existing, False
            # The open run finished between our insert and our look-up: try again.
    raise RuntimeError(f"could not queue a training run for {project.slug}")


def dispatch_run(run_id: int) -> bool:
    """Send the run's task. When the broker refuses, the run stays queued and the trigger check re-sends it."""
    if not dispatch.send_training_run(run_id):
        return False
    TrainingRun.objects.filter(pk=run_id).update(dispatched_at=timezone.now())
    return True


def redispatch_queued(project: Project | None = None) -> list[int]:
    """Re-send queued runs whose message never left (broker down) or was lost long ago.

    A duplicate message is harmless: only one worker can claim a queued run.
    """
    from django.db.models import Q

    cutoff = timezone.now() - redispatch_after()
    runs = TrainingRun.objects.filter(status=TrainingRun.Status.QUEUED).filter(
        Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=cutoff)
    )
    if project is not None:
        runs = runs.filter(project=project)
    return [run_id for run_id in runs.values_list("pk", flat=True) if dispatch_run(run_id)]


def fail_dead_runs(project: Project | None = None) -> list[int]:
    """Mark running runs whose heartbeat is stale as failed (their worker died). Returns their ids."""
    now = timezone.now()
    cutoff = now - stale_after()
    runs = TrainingRun.objects.filter(status=TrainingRun.Status.RUNNING, heartbeat_at__lt=cutoff)
    if project is not None:
        runs = runs.filter(project=project)
    failed = []
    for run in runs:
        # Conditional on the heartbeat we saw: a run that just wrote one is alive after all.
        updated = TrainingRun.objects.filter(
            pk=run.pk, status=TrainingRun.Status.RUNNING, heartbeat_at=run.heartbeat_at
        ).update(
            status=TrainingRun.Status.FAILED,
            failure_kind=TrainingRun.Failure.WORKER_LOST,
            finished_at=now,
            error=(
                f"No heartbeat from worker {run.worker or '?'} since {run.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC "
                f"(more than {int(stale_after().total_seconds())} s): the worker died or was killed."
            ),
        )
        if updated:
            logger.warning("training run %s of project %s marked failed: worker lost", run.pk, run.project_id)
            failed.append(run.pk)
            notifications.training_failed(run.pk)
    return failed


# --- Running -----------------------------------------------------------------------------------


def claim_run(run_id: int, task_id: str = "") -> TrainingRun | None:
    """Take a queued run for this worker. None when it is not queued (already taken, finished, gone)."""
    now = timezone.now()
    claimed = TrainingRun.objects.filter(pk=run_id, status=TrainingRun.Status.QUEUED).update(
        status=TrainingRun.Status.RUNNING,
        started_at=now,
        heartbeat_at=now,
        celery_task_id=task_id[:255],
        worker=f"{socket.gethostname()}:{os.getpid()}"[:255],
        attempts=F("attempts") + 1,
        stage="starting",
    )
    if not claimed:
        return None
    return TrainingRun.objects.select_related("project").get(pk=run_id)


def execute_run(run_id: int, task_id: str = "") -> dict:
    """The body of ``tagrank.training.train``: claim the run and train. Idempotent: a run that is not
    queued any more (taken by another worker, finished, failed) is left alone."""
    from celery.exceptions import SoftTimeLimitExceeded

    run = claim_run(run_id, task_id)
    if run is None:
        return {"run": run_id, "skipped": "not queued"}
    reporter = RunReporter(run)
    reporter.start_heartbeat()
    try:
        version = _train_and_store(run, reporter)
        if version.status == ModelVersion.Status.CANDIDATE:
            # Not promoted, so no activation refreshes the dashboard: show the new version's numbers now.
            dispatch.send_metrics_refresh(run.project_id)
        return {"run": run_id, "status": "succeeded", "model_version": version.pk, "version_status": version.status}
    except RunAbandoned as exc:
        logger.warning("%s", exc)
        return {"run": run_id, "abandoned": str(exc)}
    except SoftTimeLimitExceeded:
        reporter.fail(TrainingRun.Failure.TIME_LIMIT, "The training reached its time limit.")
        return {"run": run_id, "status": "failed", "failure": "time_limit"}
    except Exception as exc:
        logger.exception("training run %s failed", run_id)
        reporter.fail(TrainingRun.Failure.ERROR, f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}")
        return {"run": run_id, "status": "failed", "failure": f"{type(exc).__name__}: {exc}"}
    finally:
        reporter.stop_heartbeat()


def _train_and_store(run: TrainingRun, reporter: RunReporter) -> ModelVersion:
    from modeling.ml.training import train_ranker

    project = run.project
    t0 = time.perf_counter()
    cfg = train_config(project)
    reporter.log(f"training run {run.pk} for {project.slug}: {run.get_trigger_display()}. {run.trigger_reason}".strip())

    reporter.stage("extracting missing features", 0.02)
    image_ids = list(Image.objects.filter(project=project).values_list("pk", flat=True))
    extraction = feature_extraction.ensure_image_features(
        image_ids, progress=lambda done, total: reporter.progress(0.02 + 0.08 * done / max(total, 1))
    )
    if extraction is not None:
        reporter.log(f"features extracted for {len(extraction.extracted)} image(s), {len(extraction.failed)} unreadable")
        if extraction.failed:
            raise ValueError(f"{len(extraction.failed)} image(s) have no features: {extraction.failed[:3]}")

    reporter.stage("reading the dataset", 0.10)
    criterion = criterion_scores.training_criterion(project)  # a model version is trained on one criterion
    dataset = datasets.build_dataset(project, criterion=criterion)
    reporter.log("data: " + ", ".join(f"{k} {v}" for k, v in dataset.counts.items()))

    reporter.stage("fitting the linear Bradley–Terry head", 0.12)
    linear_model, linear_head = train_linear_head(dataset)
    reporter.log(f"linear_bt head: ridge {linear_head.ridge:g}, {linear_head.n_comparisons} comparisons")
    n_training = dataset.counts["training_comparisons"]
    pinned, ranker_min = model_choice(project)
    tags_result = None
    if pinned == "tags" or (pinned == "auto" and n_training >= ranker_min):
        reporter.stage("training the tags model", 0.15)
        tags_result = train_ranker(
            dataset.data, cfg, model_kind="tags", progress=epoch_progress(reporter, "tags", 0.15, 0.5, cfg.epochs)
        )
    elif pinned == "auto":
        reporter.log(f"fast path: {n_training} training comparisons, fewer than {ranker_min}: "
                     "the cross-attention ranker is not trained, the linear head is the challenger")
    baseline = baselines.plan_baseline(project, cfg, dataset.encoder_id, dataset.counts["training_comparisons"])
    baseline_result, baseline_model = None, None
    if baseline is not None and baseline.train:
        reporter.stage(f"training the image-only baseline ({baseline.reason})", 0.65)
        baseline_result = train_ranker(
            dataset.data, cfg, model_kind="image_only",
            progress=epoch_progress(reporter, "image-only", 0.65, 0.25, cfg.epochs),
        )
        baseline_model = baseline_result.model
    elif baseline is not None:
        reporter.log(f"image-only baseline {baseline.reason}")
        baseline_model = baseline.model

    reporter.stage("evaluating on the held-out comparisons", 0.90)
    # Every image's score under each candidate: the held-out metrics, and the chosen one's stored scores if it
    # is promoted.
    candidates = {LINEAR_KIND: (linear_model, score_dataset(linear_model, dataset))}
    if tags_result is not None:
        candidates["tags"] = (tags_result.model, score_dataset(tags_result.model, dataset))
    holdout = {kind: holdout_metrics(scores, dataset) for kind, (_, scores) in candidates.items()}
    model_kind, choice_reason = choose_model(holdout) if pinned == "auto" else (pinned, f"model kind pinned: {pinned}")
    reporter.log(choice_reason)
    chosen_model, tags_scores = candidates[model_kind]
    if baseline_model is not None:
        holdout["image_only"] = evaluate_on_holdout(baseline_model, dataset)
    champion = promotion.active_version(project)
    champion_metrics, champion_note = champion_on_holdout(champion, dataset)
    if champion is not None:
        reporter.log(f"active version {champion.pk} on the same held-out set: {champion_note}")
    training_seconds = time.perf_counter() - t0

    metrics = {
        "pairwise_agreement": holdout[model_kind].get("pairwise_agreement"),
        "model_kind": model_kind,
        "model_choice": choice_reason,
        "baseline_pairwise_agreement": holdout.get("image_only", {}).get("pairwise_agreement"),
        "holdout": holdout,
        "holdout_definition": datasets.HOLDOUT_DEFINITION,
        "validation": {
            **({"tags": tags_result.metrics} if tags_result is not None else {}),
            LINEAR_KIND: {"ridge": linear_head.ridge, "log_evidence": linear_head.extra.get("log_evidence")},
            **({"image_only": baseline_result.metrics} if baseline_result is not None else {}),
        },
        "champion": {"version": champion.pk if champion else None, "holdout": champion_metrics, "note": champion_note},
        "counts": {**dataset.counts, **({"split": tags_result.counts} if tags_result is not None else {})},
        "losses_used": {
            **({"tags": tags_result.losses_used} if tags_result is not None else {}),
            **({"image_only": baseline_result.losses_used} if baseline_result is not None else {}),
        },
        "training_seconds": {
            "tags": tags_result.metrics.get("train_seconds") if tags_result is not None else None,
            "image_only": baseline_result.metrics.get("train_seconds") if baseline_result is not None else None,
            "total": training_seconds,
        },
        "history": {"tags": tags_result.history} if tags_result is not None else {},
    }
    config = {
        "train_config": asdict(cfg),
        "encoder_id": dataset.encoder_id,
        "model_kind": model_kind,
        "data": {"last_comparison_id": dataset.last_comparison_id, "holdout_definition": datasets.HOLDOUT_DEFINITION},
        "training_run": run.pk,
    }
    if project.criteria:  # which criterion's answers it learned (one-question projects: the question's)
        config["criterion"] = criterion or criterion_scores.primary(project)
    if baseline is not None:
        config["baseline"] = baseline.record(dataset.counts["training_comparisons"])
        if not baseline.train:
            config["baseline_weights"] = baseline.weights  # the reused checkpoint, for the per-tag analyses

    reporter.stage("saving the model version", 0.95)
    tolerance = promotion.training_settings(project).promotion_tolerance
    verdict = promotion.judge(holdout[model_kind], champion_metrics, tolerance, champion.pk if champion else None)
    with tempfile.TemporaryDirectory() as folder:
        from modeling.ml.checkpoints import save_checkpoint

        path = os.path.join(folder, "weights.pt")
        save_checkpoint(path, tags_result if model_kind == "tags" else chosen_model,
                        {"encoder_id": dataset.encoder_id, "project": project.slug, "training_run": run.pk,
                         "holdout": holdout[model_kind]})
        with transaction.atomic():
            # Still ours? A run marked dead while it was slow must not store a version.
            locked = TrainingRun.objects.select_for_update().filter(
                pk=run.pk, status=TrainingRun.Status.RUNNING, attempts=run.attempts
            ).first()
            if locked is None:
                raise RunAbandoned(f"training run {run.pk} is no longer running on this worker")
            version = ModelVersion.objects.create(
                project=project, status=ModelVersion.Status.CANDIDATE, encoder_id=dataset.encoder_id,
                config=config, metrics=plain_json(metrics), n_comparisons=dataset.counts["training_comparisons"],
                last_comparison_id=dataset.last_comparison_id, training_seconds=training_seconds,
                trained_by=run.requested_by, status_reason="" if verdict.promote else verdict.reason,
            )
            with open(path, "rb") as handle:
                version.weights.save(f"v{version.pk}-run{run.pk}.pt", File(handle), save=True)
            if baseline_result is not None:
                # The image-only baseline beside it, for the per-tag analyses (modeling/services/analyses.py).
                baseline_path = os.path.join(folder, "baseline.pt")
                save_checkpoint(baseline_path, baseline_result, {"encoder_id": dataset.encoder_id,
                                                                 "project": project.slug, "training_run": run.pk})
                from modeling.models import weights_upload_path

                with open(baseline_path, "rb") as handle:
                    version.config["baseline_weights"] = version.weights.storage.save(
                        weights_upload_path(version, f"v{version.pk}-run{run.pk}-baseline.pt"), File(handle))
                version.save(update_fields=["config"])
            if verdict.promote:
                # The scores just computed for the held-out metrics: the rescoring task only adds images
                # imported since the dataset was read, then switches the version in.
                scoring.store_scores(version, dataset.image_ids, *tags_scores)
            reporter.lines.append(f"model version {version.pk} stored; {verdict.reason}")
            TrainingRun.objects.filter(pk=run.pk).update(
                status=TrainingRun.Status.SUCCEEDED, finished_at=timezone.now(), progress=1.0, stage="done",
                model_version=version, heartbeat_at=timezone.now(), log="\n".join(reporter.lines)[-LOG_LIMIT:],
            )
            if verdict.promote:
                promotion.request_promotion(version, kind=Promotion.Kind.AUTOMATIC, reason=verdict.reason)
    version.refresh_from_db()
    return version
