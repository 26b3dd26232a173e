"""Where the human-score fit's model prior comes from; ``modeling/ml/prior_fusion.py`` weighs it.

A prior is ``prior_fusion.ModelPrior``: a score per image on the model's scale (NaN where none) and
whether that score is *out of fold*, made by a model that never trained on that image's comparisons.

- The project's active version is a cross-attention ranker (model kind ``tags``): its stored scores of
  the images none of its training comparisons touched (compared only since, in held-out pairs, or
  never) are out of fold; the images it trained on have none (cross-fitting the ranker would cost K
  trainings). So it is a candidate only while it covers at least half of the images.
- Whatever the active version (a ``linear_bt`` or a ranker, or none yet): the linear Bradley–Terry head fitted on the
  current comparisons and the cached features, each image scored without its own comparisons
  (``linear_bt.leave_one_image_out_scores``), so every image is out of fold. It runs where the fit runs
  (a second or so at 10^3 images) and needs no training run: the prior counts from the project's first
  comparisons, as soon as the images have features.
- A warm start (``warm_start.py``, another project's version, all out of fold) competes with the
  others for as long as it is named: the better predictor of the comparisons wins at every fit. (It
  used to stop at the project's first own version, a head trained on 50 comparisons, which ranked far
  worse: ``docs/benchmarks.md``, "Campaign cost".)
- None when no image has features yet and there is no warm start.
"""
from __future__ import annotations

import logging

import numpy as np

from labeling.models import Project
from modeling.ml import linear_bt, prior_fusion
from modeling.ml.prior_fusion import ModelPrior
from modeling.models import ImageScore, ModelVersion
from modeling.services import feature_extraction, warm_start
from modeling.services.columns import fetch_columns, per_image

log = logging.getLogger(__name__)

LINEAR_CONFIG = linear_bt.LinearBTConfig()
RANKER_KIND = "tags"
MIN_RANKER_COVERAGE = 0.5  # share of the images with an out-of-fold ranker score for it to be the prior


def project_prior(project: Project, comparisons, version: ModelVersion | None) -> ModelPrior | None:
    """The prior for a fit of ``comparisons`` (``human_scores.ComparisonArrays``), given the active version.

    The candidates: the warm start (``warm_start.warm_start_prior``, while one is named), the project's own
    linear head with each image left out, and an active ranker's out-of-fold scores where they cover at
    least ``MIN_RANKER_COVERAGE`` of the images (the ranker has none for the images it trained on: alone
    it would drop the model from their human scores; measured, the fused ranking fell to the pairs
    alone). The one that predicts the comparisons best (``prior_fusion.better_prior``; the first, the warm
    start, while there are too few comparisons to tell)."""
    encoder_id = version.encoder_id if version is not None else feature_extraction.encoder_id_for()
    warm = warm_start.warm_start_prior(project, comparisons.image_ids)
    if warm is not None:
        warm = ModelPrior(warm.mean, warm.out_of_fold, source=warm.source, version_id=warm.version_id)
    candidates = [warm, own_head_prior(comparisons, encoder_id, version)]
    if version is not None and version_kind(version) == RANKER_KIND:
        ranker = ranker_prior(version, comparisons)
        if np.isfinite(ranker.score).mean() >= MIN_RANKER_COVERAGE:
            candidates.append(ranker)
    return prior_fusion.better_prior(candidates, comparisons.a_index, comparisons.b_index, comparisons.outcome,
                                     comparisons.weight)


def version_kind(version: ModelVersion) -> str:
    return (version.config or {}).get("model_kind", RANKER_KIND)


def pooled_project_features(image_ids: np.ndarray, encoder_id: str) -> tuple[np.ndarray, np.ndarray] | None:
    """([N] bool: has features, [n,F] pooled features of those images), None when none has any."""
    store = feature_extraction.feature_store(encoder_id)
    missing = set(store.missing_images(image_ids.tolist()))
    have = np.array([int(i) not in missing for i in image_ids], dtype=bool)
    if not have.any():
        return None
    ids = image_ids[have]
    tokens = store.get_images(ids, dtype=np.float16)  # [n,T,D]
    tag_tokens, tag_mask = feature_extraction.text_tokens(store, ids, dim=tokens.shape[-1])
    return have, linear_bt.pooled_features(tokens, tag_tokens, tag_mask)


def own_head_prior(comparisons, encoder_id: str, version: ModelVersion | None = None) -> ModelPrior | None:
    """The linear head on this project's comparisons, each image scored without its own comparisons."""
    image_ids = comparisons.image_ids
    pooled = pooled_project_features(image_ids, encoder_id)
    if pooled is None:
        return None
    have, features = pooled
    row = np.full(image_ids.shape[0], -1)
    row[have] = np.arange(int(have.sum()))
    usable = have[comparisons.a_index] & have[comparisons.b_index]
    weight = None if comparisons.weight is None else comparisons.weight[usable]
    scores, _ = linear_bt.leave_one_image_out_scores(
        features, row[comparisons.a_index[usable]], row[comparisons.b_index[usable]], comparisons.outcome[usable],
        weight=weight, config=LINEAR_CONFIG,
    )
    score = np.full(image_ids.shape[0], np.nan)
    score[have] = scores
    return ModelPrior(score, have.copy(), source=f"linear_bt, each image left out ({encoder_id})",
                      version_id=None if version is None else version.pk)


def ranker_prior(version: ModelVersion, comparisons) -> ModelPrior:
    image_ids = comparisons.image_ids
    columns = fetch_columns(ImageScore.objects.filter(model_version=version), {"image_id": int, "mean": float})
    score = per_image(image_ids, columns["image_id"], columns["mean"])
    trained = (comparisons.comparison_id <= version.last_comparison_id) & ~comparisons.heldout
    in_sample = np.zeros(image_ids.shape[0], dtype=bool)
    in_sample[comparisons.a_index[trained]] = True
    in_sample[comparisons.b_index[trained]] = True
    score[in_sample] = np.nan  # never a prior from a model that trained on the image's own comparisons
    return ModelPrior(score, np.isfinite(score), source=f"version {version.pk} ({RANKER_KIND})", version_id=version.pk)
