"""The leaderboard of a categorical metadata field (generator, checkpoint, sampler, LoRA): which value wins.

Two leaderboards side by side, with the same fit (``modeling.ml.leaderboard``):

- **human**: the project's judgments between images of different values (excluded raters left out);
- **model**: the active model version's scores. Every pair of images of different values that a rater could
  be served (within one comparison group in a grouped project; otherwise a fixed-size random sample of
  pairs) counts as one judgment that the higher-scored image won: the leaderboard a rater who always
  agreed with the model would give. Where the two disagree is where the model misjudges a generator.

In a project with comparison groups the bootstrap resamples whole groups (a prompt's images share it), so
the intervals allow for prompts that favour one generator. Computed on request from the stored judgments
and scores; nothing is stored.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from django.core.exceptions import ValidationError

from core.refusals import Refusal
from labeling.models import GROUP_KEY_VALIDATOR, Image, Project
from labeling.services.comparison_groups import image_groups, metadata_values
from labeling.services.criteria import answers_of
from modeling.ml.leaderboard import Leaderboard, LeaderboardConfig, build_leaderboard
from modeling.ml.selection import same_group_pairs
from modeling.models import ImageScore, ModelVersion
from modeling.services import criterion_scores, human_scores

MAX_VALUES = 50  # a field with more distinct values is not categorical enough for a leaderboard
MODEL_PAIRS = 200_000  # pairs sampled for the model's leaderboard in a project without groups
FIELD_SAMPLE = 2000  # images read to list the candidate fields


class LeaderboardUnavailable(Refusal):
    """The leaderboard cannot be computed as asked (the message says why)."""

    code = "leaderboard_unavailable"


@dataclass(frozen=True)
class FieldLeaderboard:
    field: str
    values: list[str]  # [V]
    images: list[int]  # [V] images per value
    human: Leaderboard | None  # None without judgments across values
    model: Leaderboard | None  # None without an active model version
    model_version_id: int | None
    grouped_by: str  # the project's group key, or ""
    n_comparisons: int  # human judgments across values
    criterion: str | None = None  # several criteria: whose answers


def check_field(field: str) -> str:
    try:
        GROUP_KEY_VALIDATOR(field)
    except ValidationError:
        raise LeaderboardUnavailable(
            f"{field!r} is not a metadata field name (letters, digits, _ . - ; no double underscore)."
        ) from None
    return field


def candidate_fields(project: Project) -> list[str]:
    """Metadata fields with text values and at most ``MAX_VALUES`` distinct values among a sample of images."""
    seen: dict[str, set] = {}
    for metadata in Image.objects.filter(project=project).values_list("metadata", flat=True)[:FIELD_SAMPLE]:
        for key, value in (metadata or {}).items():
            if isinstance(value, str) and value:
                seen.setdefault(key, set()).add(value)
    fields = []
    for key, values in seen.items():
        try:
            GROUP_KEY_VALIDATOR(key)
        except ValidationError:
            continue
        if 2 <= len(values) <= MAX_VALUES:
            fields.append(key)
    return sorted(fields)


def field_leaderboard(project: Project, field: str, config: LeaderboardConfig = LeaderboardConfig(),
                      criterion: str | None = None) -> FieldLeaderboard:
    """The leaderboard of ``field``; in a project with several criteria, from the answers to ``criterion``
    (None: the comparison's outcome, the primary criterion's answer)."""
    check_field(field)
    try:
        criterion = criterion_scores.resolve(project, criterion)  # the primary key reads as the outcome
    except ValueError as error:
        raise LeaderboardUnavailable(str(error)) from None
    values_by_image = metadata_values(project, field)
    names = sorted(set(values_by_image.values()))
    if len(names) < 2:
        raise LeaderboardUnavailable(f"No two images have different values of {field!r}: nothing to rank.")
    if len(names) > MAX_VALUES:
        raise LeaderboardUnavailable(f"{field!r} has {len(names)} distinct values; a leaderboard takes at most {MAX_VALUES}.")
    number = {name: index for index, name in enumerate(names)}
    groups = image_groups(project) if project.group_key else {}
    group_number = {name: index for index, name in enumerate(sorted(set(groups.values())))}

    # Human judgments: one row per comparison, values as numbers (-1: the image has no value).
    comparisons = human_scores.load_comparisons(project)
    if criterion is not None:
        answers = answers_of(comparisons.comparison_id.tolist(), criterion)
        value = {"a": 1.0, "b": 0.0, "tie": 0.5, "bad": 0.5}
        answered = np.array([int(i) in answers for i in comparisons.comparison_id], dtype=bool)
        comparisons = comparisons.select(answered)
        comparisons = replace(comparisons, outcome=np.array([value[answers[int(i)]] for i in comparisons.comparison_id]))
    image_ids = comparisons.image_ids
    value_of = np.array([number.get(values_by_image.get(int(i)), -1) for i in image_ids], dtype=np.int64)  # [N]
    group_of = np.array([group_number.get(groups.get(int(i)), -1) for i in image_ids], dtype=np.int64)  # [N]
    va, vb = value_of[comparisons.a_index], value_of[comparisons.b_index]
    usable = (va >= 0) & (vb >= 0) & (va != vb)
    cluster = group_of[comparisons.a_index][usable] if project.group_key else None
    human = None
    if usable.any():
        human = build_leaderboard(va[usable], vb[usable], comparisons.outcome[usable], len(names), cluster, config)

    model, version_id = _model_leaderboard(project, values_by_image, number, groups, group_number, config)
    counts = np.bincount([number[v] for v in values_by_image.values()], minlength=len(names))
    return FieldLeaderboard(
        field=field, values=names, images=counts.tolist(), human=human, model=model, model_version_id=version_id,
        grouped_by=project.group_key, n_comparisons=int(usable.sum()), criterion=criterion,
    )


def _model_leaderboard(project, values_by_image, number, groups, group_number, config):
    version = ModelVersion.objects.filter(project=project, is_active=True).first()
    if version is None:
        return None, None
    scores = dict(ImageScore.objects.filter(model_version=version).values_list("image_id", "mean"))
    ids = np.array(sorted(image_id for image_id in values_by_image if image_id in scores), dtype=np.int64)  # [N]
    if ids.size < 2:
        return None, version.pk
    value = np.array([number[values_by_image[int(i)]] for i in ids])  # [N]
    score = np.array([scores[int(i)] for i in ids])  # [N]
    if project.group_key:
        group = np.array([group_number.get(groups.get(int(i)), -1) for i in ids])  # [N]
        first, second = _pairs_within_groups(group)
        cluster = group[first]
    else:
        rng = np.random.default_rng(config.seed)
        first, second = rng.integers(0, ids.size, MODEL_PAIRS), rng.integers(0, ids.size, MODEL_PAIRS)
        cluster = None
    across = value[first] != value[second]
    first, second = first[across], second[across]
    if first.size == 0:
        return None, version.pk
    outcome = np.where(score[first] > score[second], 1.0, np.where(score[first] < score[second], 0.0, 0.5))
    cluster = cluster[across] if cluster is not None else None
    return build_leaderboard(value[first], value[second], outcome, len(number), cluster, config), version.pk


def _pairs_within_groups(group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of images in the same group (groups are small: one prompt's images), [K] and [K]."""
    members = np.flatnonzero(group >= 0)
    members = members[np.argsort(group[members], kind="stable")]
    return same_group_pairs(members, group[members], members.size - 1)


# --- As rows: the API, the page and the CSV --------------------------------------------------------


def _number(value) -> float | None:
    value = float(value)
    return None if np.isnan(value) else round(value, 4)


def board_rows(result: FieldLeaderboard) -> list[dict]:
    """One row per value, best human rating first (values without human judgments last)."""
    rows = []
    for index, name in enumerate(result.values):
        row = {"value": name, "images": result.images[index]}
        for source, board in (("human", result.human), ("model", result.model)):
            if board is None:
                row.update({f"{source}_{key}": None for key in ("rating", "low", "high", "rank", "rank_low", "rank_high", "comparisons", "win_rate")})
                continue
            games = float(board.games[index].sum())
            row.update({
                f"{source}_rating": _number(board.rating[index]),
                f"{source}_low": _number(board.rating_low[index]),
                f"{source}_high": _number(board.rating_high[index]),
                f"{source}_rank": int(board.rank[index]),
                f"{source}_rank_low": int(board.rank_low[index]),
                f"{source}_rank_high": int(board.rank_high[index]),
                f"{source}_comparisons": int(games),
                f"{source}_win_rate": _number(board.wins[index].sum() / games) if games else None,
            })
        rows.append(row)
    rows.sort(key=lambda row: (row["human_rank"] is None, row["human_rank"] or 0, row["model_rank"] or 0))
    return rows


def win_rate_matrix(board: Leaderboard | None, values: list[str]) -> list[dict] | None:
    """Row value's share of wins against each column value, with the number of comparisons."""
    if board is None:
        return None
    rate = board.win_rate
    return [
        {"value": values[i], "against": {values[j]: {"win_rate": _number(rate[i, j]), "comparisons": int(board.games[i, j])}
                                          for j in range(len(values)) if j != i}}
        for i in range(len(values))
    ]


CSV_COLUMNS = [
    "value", "images",
    "human_rating", "human_low", "human_high", "human_rank", "human_rank_low", "human_rank_high", "human_comparisons",
    "human_win_rate",
    "model_rating", "model_low", "model_high", "model_rank", "model_rank_low", "model_rank_high", "model_comparisons",
    "model_win_rate",
]
