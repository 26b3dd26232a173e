"""The agreement report of a very large project, from a sample (``modeling/ml/agreement_sample.py``).

From ``SampleConfig.above`` comparisons on, the numbers made of pairs (the humans' agreement, each rater's
agreement with the majority, the held-out agreement and the ceiling, the gallery of disagreeing pairs)
are computed on a uniform random sample of the pairs with all their judgments, and the correlations on
a uniform sample of images; their bootstrap intervals are over the sampled units. Counts and shares
that the counters or one pass give exactly stay exact: the totals, the left/right shares, each rater's
judgments, sides and gold, and the human scores (fitted on every comparison). The report's ``sample``
says what was sampled, from how much; below the threshold it is None and the report is exact.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from django.conf import settings

from modeling.ml.agreement_sample import SampleConfig, image_sample, pair_sample, sampled
from modeling.ml.agreement_stats import FlagThresholds, PairJudgments, group_pairs, rater_rows
from modeling.services.human_scores import ComparisonArrays

# The report's figures estimated from the sample, as the page lists them.
ESTIMATED = ["raw agreement and alpha", "agreement with the majority, shared pairs and median time per rater",
             "held-out agreement and the human ceiling", "correlations with the human scores",
             "the disagreeing pairs"]


def sample_config() -> SampleConfig:
    return replace(SampleConfig(), **getattr(settings, "TAGRANK_AGREEMENT_SAMPLE", {}))


@dataclass(frozen=True)
class ReportSample:
    judged: ComparisonArrays  # the comparisons of the sampled pairs (every comparison when exact)
    included: np.ndarray  # [S] the judgment's rater is not excluded
    images: np.ndarray | None  # image indices for the correlations (None: all)
    description: dict | None  # what the page and the API say (None: exact)


def draw(everything: ComparisonArrays, included: np.ndarray, config: SampleConfig | None = None) -> ReportSample:
    config = config or sample_config()
    if not sampled(everything.n_comparisons, config):
        return ReportSample(everything, included, None, None)
    keep, fraction = pair_sample(everything.a_index, everything.b_index, config)
    judged = everything.select(keep)
    images = image_sample(everything.n_images, config)
    description = {
        "comparisons": judged.n_comparisons, "of_comparisons": everything.n_comparisons,
        "pair_fraction": fraction, "images": int(images.shape[0]), "of_images": everything.n_images,
        "seed": config.seed, "above": config.above, "estimated": ESTIMATED,
    }  # fmt: skip
    return ReportSample(judged, included[keep], images, description)


def rater_table(everything: ComparisonArrays, sample: ReportSample, pairs: PairJudgments, latest: np.ndarray,
                thresholds: FlagThresholds, by_rater: dict[int, dict]) -> list[dict]:
    """``agreement_stats.rater_rows`` of the sample, and of every rater with no judgment in it (their counts
    exact, what the sample gives empty), by user id."""
    rows = rater_rows(sample.judged, pairs, sample.included, latest, thresholds, by_rater)
    if sample.description is None:
        return rows
    raters, first = np.unique(everything.rater_id, return_index=True)
    missing = first[~np.isin(raters, sample.judged.rater_id)]
    if missing.shape[0] == 0:
        return rows
    alone = everything.select(missing)  # one judgment each, standing for the rater: it counts for nothing
    alone = replace(alone, response_ms=np.full(missing.shape[0], np.nan))
    nothing = np.zeros(missing.shape[0], dtype=bool)
    rows += rater_rows(alone, group_pairs(alone.a_index, alone.b_index, alone.outcome), nothing, nothing,
                       thresholds, by_rater)
    return sorted(rows, key=lambda row: row["user_id"])
