"""Whether a training run trains the image-only baseline, or reuses the one an earlier version trained.

The baseline is a yardstick, not a candidate: the models page shows its held-out agreement beside the
tags model's, the dashboard's poster table its held-out rows, and the per-tag analyses its scores
(``config["baseline_weights"]``). Promotion never reads it. A run therefore trains it only when it
is needed:

- there is no baseline to reuse (the project's first version, another encoder, unreadable weights);
- the training settings it depends on changed (ranker size, optimiser, split; not λ, which it never sees);
- the training comparisons have at least doubled since it was trained (``REFRESH_GROWTH``).

Otherwise the newest baseline is evaluated again on this run's held-out comparisons, so both rows
of the comparison are measured on the same items. The held-out pairs are never trained on by any
version (``datasets.is_holdout``), so the reused baseline's figures are clean held-out figures too.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from labeling.models import Project
from modeling.models import ModelVersion
from modeling.services import promotion, scoring

REFRESH_GROWTH = 2.0  # retrain once the training comparisons reach this multiple of the baseline's
# TrainConfig fields the baseline does not depend on: λ only enters the tags model's losses.
IGNORED_SETTINGS = ("lam",)


@dataclass
class BaselinePlan:
    train: bool                 # train a new baseline in this run
    reason: str
    source: int | None = None   # the version whose baseline is reused
    weights: str = ""           # its checkpoint on the media storage
    model: object = None        # the reused ranker, loaded
    training_comparisons: int = 0

    def record(self, trained_comparisons: int | None = None) -> dict:
        """What the version stores about its baseline (``config["baseline"]``)."""
        return {"trained": self.train, "reason": self.reason, "version": self.source,
                "training_comparisons": trained_comparisons if self.train else self.training_comparisons}


def _relevant(train_config: dict) -> dict:
    return {k: v for k, v in (train_config or {}).items() if k not in IGNORED_SETTINGS}


def latest_baseline(project: Project, encoder_id: str) -> tuple[ModelVersion, dict] | None:
    """The newest version of the project with a baseline checkpoint of this encoder, and what it knows about it."""
    versions = ModelVersion.objects.filter(project=project, encoder_id=encoder_id).order_by("-pk")
    for version in versions.only("pk", "config", "n_comparisons").iterator(chunk_size=20):
        config = version.config or {}
        if config.get("baseline_weights"):
            # Versions from before reuse trained their baseline themselves, on their own comparisons.
            info = config.get("baseline") or {"version": version.pk, "training_comparisons": version.n_comparisons}
            # A version that reused one trained with the same settings (else it would have trained its own).
            return version, {**info, "train_config": config.get("train_config")}
    return None


def plan_baseline(project: Project, train_config, encoder_id: str, training_comparisons: int) -> BaselinePlan | None:
    """What this run does about the baseline; None when the project turned it off."""
    from modeling.ml.checkpoints import CheckpointError

    if not promotion.training_settings(project).train_baseline:
        return None
    found = latest_baseline(project, encoder_id)
    if found is None:
        return BaselinePlan(True, "no earlier baseline with this encoder")
    version, info = found
    trained_on = int(info.get("training_comparisons") or 0)
    if _relevant(info.get("train_config")) != _relevant(asdict(train_config)):
        return BaselinePlan(True, "the training settings changed since the last one")
    if training_comparisons >= REFRESH_GROWTH * max(trained_on, 1):
        return BaselinePlan(True, f"{training_comparisons} training comparisons, at least {REFRESH_GROWTH:g}x "
                                  f"the {trained_on} the last one was trained on")
    weights = version.config["baseline_weights"]
    try:
        model, _ = scoring.load_weights_file(weights)
    except CheckpointError as exc:
        return BaselinePlan(True, f"the last one is unreadable ({exc})")
    source = int(info.get("version") or version.pk)
    return BaselinePlan(False, f"reused from version {source}, trained on {trained_on} comparisons",
                        source=source, weights=weights, model=model, training_comparisons=trained_on)
