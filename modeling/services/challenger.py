"""The challenger of a training run: the linear Bradley–Terry head it always fits, every candidate's scores
and metrics on the held-out comparisons, the choice between the candidates, and the active version (the
champion) measured on the same held-out set. ``training_runs`` trains and stores; this module judges.
"""
from __future__ import annotations

import numpy as np

from modeling.models import ModelVersion
from modeling.services import datasets, scoring

LINEAR_KIND = "linear_bt"


def train_linear_head(dataset: datasets.ProjectDataset):
    """(LinearScorer, LinearBT): the linear Bradley–Terry head on the dataset's training comparisons."""
    from modeling.ml.linear_bt import fit_linear_bt, pooled_features
    from modeling.ml.linear_scorer import LinearScorer
    from modeling.ml.ranker import RankerConfig

    data = dataset.data
    features = pooled_features(data.image_tokens, data.tag_tokens, data.tag_mask)  # [N,3D]
    head = fit_linear_bt(features, data.comp_a, data.comp_b, data.outcome.astype(np.float64))
    return LinearScorer.from_head(head, RankerConfig(input_dim=int(data.image_tokens.shape[-1]))), head


def choose_model(holdout: dict) -> tuple[str, str]:
    """The challenger's kind: the better held-out pairwise agreement (a tie, or nothing held out: the
    linear head, the smaller model); and why."""
    linear = holdout[LINEAR_KIND].get("pairwise_agreement")
    if "tags" not in holdout:
        return LINEAR_KIND, "model choice: linear_bt (fast path, the ranker was not trained)"
    ranker = holdout["tags"].get("pairwise_agreement")
    n = holdout[LINEAR_KIND].get("n_comparisons")
    if linear is None or ranker is None:
        return LINEAR_KIND, "model choice: linear_bt (no held-out comparisons to choose by)"
    kind = "tags" if ranker > linear else LINEAR_KIND
    return kind, (f"model choice: {kind} (held-out pairwise agreement on {n} comparisons: "
                  f"tags {ranker:.3f}, linear_bt {linear:.3f})")


def score_dataset(model, dataset: datasets.ProjectDataset):
    """(mean [N], dist [N,10], uncertainty [N]) of every image of the dataset, in its row order."""
    from modeling.ml.training import score_images

    data = dataset.data
    return score_images(model, data.image_tokens, data.tag_tokens, data.tag_mask)


def evaluate_on_holdout(model, dataset: datasets.ProjectDataset) -> dict:
    """Metrics of a model on the dataset's held-out comparisons and held-out reference ratings."""
    return holdout_metrics(score_dataset(model, dataset), dataset)


def holdout_metrics(scores, dataset: datasets.ProjectDataset) -> dict:
    """Held-out metrics from every image's scores (``score_dataset``)."""
    from modeling.ml.metrics import evaluate_scores

    mean, dist, uncertainty = scores
    result = evaluate_scores(mean, comparisons=(dataset.holdout_a, dataset.holdout_b, dataset.holdout_outcome))
    rows = dataset.holdout_ref_rows
    if dataset.ref_dist is not None and len(rows):
        ref = evaluate_scores(mean[rows], ref_dist=dataset.ref_dist[rows], pred_dist=dist[rows])
        for key in ("error_mean", "error_std", "lcc", "srcc", "kendall_tau", "kl", "emd", "binary_accuracy"):
            result[key] = ref[key]
    result["n_references"] = int(len(rows))
    result["n_images"] = int(len(mean))
    result["mean_uncertainty"] = float(uncertainty.mean()) if len(uncertainty) else None
    return result


def champion_on_holdout(champion: ModelVersion | None, dataset: datasets.ProjectDataset) -> tuple[dict | None, str]:
    """The active version's metrics on the same held-out set as the challenger.

    Re-evaluated from its weights when it uses the same encoder, so both are judged on the same
    comparisons; otherwise (another encoder, unreadable weights) its stored metrics stand in.
    """
    from modeling.ml.checkpoints import CheckpointError

    if champion is None:
        return None, "no active version"
    kind = (champion.config or {}).get("model_kind", "tags")
    stored = (champion.metrics or {}).get("holdout", {}).get(kind)
    if champion.encoder_id != dataset.encoder_id:
        return stored, f"stored metrics (it uses another encoder, {champion.encoder_id})"
    try:
        model, _ = scoring.load_version_model(champion)
    except CheckpointError as exc:
        return stored, f"stored metrics (its weights are unreadable: {exc})"
    metrics = evaluate_on_holdout(model, dataset)
    agreement = metrics.get("pairwise_agreement")
    return metrics, "re-evaluated" + (f": pairwise agreement {agreement:.3f}" if agreement is not None else "")
