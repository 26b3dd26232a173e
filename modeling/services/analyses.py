"""The poster's analyses as product numbers: per-tag scores, and scores against a generation parameter.

Definitions (the pages and the API show the same numbers):

- *Ours* is the tags model's score (the version's stored ``ImageScore``, 1–10).
- *Baseline* is the image-only ranker trained beside it (``version.config["baseline_weights"]``),
  scored on demand from the cached features and kept in ``analyses/v<id>/baseline_scores.json``
  under the media storage, so each version's baseline scores every image once.
- *Human* is the fitted Bradley–Terry ``HumanScore``. It lives on a logit scale, so it is mapped
  onto the models' 1–10 scale by matching moments: over the project's images that have both a human
  score and a score from the version, ``human_1_10 = (h - mean(h)) / std(h) * std(ours) + mean(ours)``.
  The mapping is linear, so it keeps the human ranking and any difference between tags; it only makes
  "Ours − Human" readable in score units. Where reference ratings were imported (AVA-style votes),
  their mean is given as well, unmapped (it already is on 1–10). In a project with several criteria,
  ``criterion`` names a secondary one whose human scores (``CriterionScore``) are read instead, mapped the
  same way; the result then names the criterion it shows (``criterion``; a one-question project has no such key).
- *CLIP similarity* of an image is the cosine between its CLIP image embedding (the class token of
  the cached features) and the mean of the embeddings of its texts (tags and caption, the ranker's
  text input, ``feature_extraction.texts_by_image``). An image without texts has none.
- Intervals are percentile bootstraps over images (``intervals.bootstrap_intervals``, seeded: the same
  data give the same intervals). A difference is a mean over the images that have both numbers.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from core.refusals import Refusal
from labeling.models import Image, ImageTag, Project, ReferenceRating
from labeling.services.criteria import primary
from modeling.models import CriterionScore, HumanScore, ImageScore, ModelVersion
from modeling.ml import intervals

DEFAULT_MIN_IMAGES = 3
MAX_DISTINCT_GROUPS = 20  # more distinct values than this: quantile bins
QUANTILE_BINS = 10
N_RESAMPLES = 500
SEED = intervals.SEED


class AnalysisUnavailable(Refusal):
    """The project has nothing to analyse yet (no model version with scores)."""

    code = "no_model"


# --- Which version, which scores ------------------------------------------------------------------


def analysed_version(project: Project, version_id: int | None = None) -> ModelVersion:
    """The version asked for, else the active one, else the newest version with scores."""
    versions = ModelVersion.objects.filter(project=project)
    if version_id is not None:
        version = versions.filter(pk=version_id).first()
    else:
        version = versions.filter(is_active=True).first() or versions.filter(scores__isnull=False).distinct().first()
    if version is None:
        raise AnalysisUnavailable("This project has no scored model version yet: train one first.")
    return version


def model_means(version: ModelVersion, image_ids: np.ndarray) -> np.ndarray:
    scores = dict(ImageScore.objects.filter(model_version=version, image_id__in=image_ids.tolist())
                  .values_list("image_id", "mean"))
    return np.array([scores.get(int(i), np.nan) for i in image_ids], dtype=np.float64)


def human_on_model_scale(project: Project, version: ModelVersion, image_ids: np.ndarray,
                         criterion: str | None = None) -> tuple[np.ndarray, dict]:
    """Fitted human scores (the primary criterion's, or the secondary ``criterion``'s) mapped onto 1–10 by
    matching mean and std with the version's scores (see above)."""
    fitted = (HumanScore.objects.filter(project=project) if criterion is None
              else CriterionScore.objects.filter(project=project, criterion=criterion))
    human = dict(fitted.values_list("image_id", "mean"))
    all_ids = np.array(sorted(human), dtype=np.int64)
    raw = np.array([human[int(i)] for i in all_ids], dtype=np.float64)
    ours = model_means(version, all_ids)
    both = np.isfinite(raw) & np.isfinite(ours)
    mapping = {"images": int(both.sum()), "human_mean": None, "human_std": None, "model_mean": None, "model_std": None}
    scaled = {}
    if both.sum() >= 2 and raw[both].std() > 0:
        hm, hs, mm, ms = raw[both].mean(), raw[both].std(), ours[both].mean(), ours[both].std()
        mapping.update(human_mean=float(hm), human_std=float(hs), model_mean=float(mm), model_std=float(ms))
        scaled = {int(i): (h - hm) / hs * ms + mm for i, h in zip(all_ids, raw)}
    return np.array([scaled.get(int(i), np.nan) for i in image_ids], dtype=np.float64), mapping


def reference_means(image_ids: np.ndarray) -> np.ndarray:
    refs = dict(ReferenceRating.objects.filter(image_id__in=image_ids.tolist()).values_list("image_id", "mean"))
    return np.array([refs.get(int(i), np.nan) for i in image_ids], dtype=np.float64)


def _features(version: ModelVersion, image_ids: list[int]):
    """Image tokens and the ranker's text tokens of these images, from the version's encoder's store."""
    from modeling.services import feature_extraction

    store = feature_extraction.feature_store(version.encoder_id)
    missing = store.missing_images(image_ids)
    if missing and version.encoder_id == feature_extraction.encoder_id_for():
        feature_extraction.extract_features(missing)
    still_missing = set(store.missing_images(image_ids))
    have = [i for i in image_ids if i not in still_missing]
    if not have:
        return have, None, None, None
    tokens = store.get_images(have)
    text, mask = feature_extraction.text_tokens(store, have, dim=tokens.shape[-1])
    return have, tokens, text, mask


def _baseline_cache_name(version: ModelVersion) -> str:
    return f"analyses/v{version.pk}/baseline_scores.json"


def baseline_means(version: ModelVersion, image_ids: np.ndarray) -> np.ndarray | None:
    """The image-only baseline's score per image (NaN where it has no features); None without baseline weights."""
    from modeling.ml.training import score_images
    from modeling.services.scoring import load_weights_file

    weights = (version.config or {}).get("baseline_weights")
    if not weights:
        return None
    name = _baseline_cache_name(version)
    cached: dict[str, float] = {}
    if default_storage.exists(name):
        with default_storage.open(name, "rb") as handle:
            cached = json.load(handle)
    todo = [int(i) for i in image_ids if str(int(i)) not in cached]
    if todo:
        model, _ = load_weights_file(weights)
        have, tokens, _, _ = _features(version, todo)
        if have:
            mean, _, _ = score_images(model, tokens)
            cached.update({str(i): float(m) for i, m in zip(have, mean)})
            # Write the whole file again: a reader sees the old or the new one (storage saves are whole files).
            if default_storage.exists(name):
                default_storage.delete(name)
            default_storage.save(name, ContentFile(json.dumps(cached).encode()))
    return np.array([cached.get(str(int(i)), np.nan) for i in image_ids], dtype=np.float64)


def clip_similarity(version: ModelVersion, image_ids: np.ndarray) -> np.ndarray:
    """Cosine between each image's CLIP embedding and the mean of its text embeddings; NaN without texts."""
    ids = [int(i) for i in image_ids]
    have, tokens, text, mask = _features(version, ids)
    result = dict.fromkeys(ids, np.nan)
    if have and text is not None and text.shape[1]:
        image = tokens[:, 0] / np.maximum(np.linalg.norm(tokens[:, 0], axis=-1, keepdims=True), 1e-12)
        counts = mask.sum(axis=1)
        mean_text = (text * mask[..., None]).sum(axis=1) / np.maximum(counts, 1)[:, None]
        mean_text /= np.maximum(np.linalg.norm(mean_text, axis=-1, keepdims=True), 1e-12)
        cosine = np.einsum("nd,nd->n", image, mean_text)
        for image_id, value, count in zip(have, cosine, counts):
            result[image_id] = float(value) if count else np.nan
    return np.array([result[i] for i in ids], dtype=np.float64)


# --- Means with intervals -------------------------------------------------------------------------


def mean_statistic(columns: np.ndarray):
    """Weighted means of each column of [units, K], ignoring NaN cells (a unit lacking a number)."""
    valid = np.isfinite(columns)
    filled = np.where(valid, columns, 0.0)

    def statistic(weights: np.ndarray) -> np.ndarray:  # [B, units] -> [B, K]
        with np.errstate(invalid="ignore", divide="ignore"):
            return (weights @ filled) / (weights @ valid)

    return statistic


def means_with_intervals(columns: dict[str, np.ndarray], *, seed: int = SEED, n_resamples: int = N_RESAMPLES) -> dict:
    """{name: {"value", "low", "high", "n"}} for each column's mean over the same units; n counts defined cells."""
    names = list(columns)
    n_units = len(next(iter(columns.values()))) if columns else 0
    if n_units == 0:
        return {name: {"value": None, "low": None, "high": None, "n": 0} for name in names}
    stacked = np.column_stack([np.asarray(columns[name], dtype=np.float64) for name in names])
    result = intervals.estimates(mean_statistic(stacked), n_units, names, seed=seed, n_resamples=n_resamples)
    for index, name in enumerate(names):
        result[name]["n"] = int(np.isfinite(stacked[:, index]).sum())
        result[name].pop("resamples", None)
    return result


# --- Per-tag summary ------------------------------------------------------------------------------


@dataclass
class ProjectScores:
    """Every per-image number the analyses use, in ``image_ids`` order."""

    version: ModelVersion
    image_ids: np.ndarray
    ours: np.ndarray
    baseline: np.ndarray | None
    human: np.ndarray
    reference: np.ndarray
    human_mapping: dict


def project_scores(project: Project, version: ModelVersion, image_ids: np.ndarray,
                   criterion: str | None = None) -> ProjectScores:
    human, mapping = human_on_model_scale(project, version, image_ids, criterion)
    return ProjectScores(version, image_ids, model_means(version, image_ids), baseline_means(version, image_ids),
                         human, reference_means(image_ids), mapping)


def criterion_named(project: Project, criterion: str | None) -> dict:
    """``{"criterion": key}`` of the human scores shown, in a project with several criteria; ``{}`` otherwise."""
    return {"criterion": criterion or primary(project)} if project.criteria else {}


def tag_summary(project: Project, *, min_images: int = DEFAULT_MIN_IMAGES, version: ModelVersion | None = None,
                criterion: str | None = None, seed: int = SEED, n_resamples: int = N_RESAMPLES) -> dict:
    """One row per tag with at least ``min_images`` images: counts, the three means and their differences."""
    version = version or analysed_version(project)
    pairs = list(ImageTag.objects.filter(image__project=project).values_list("tag__name", "image_id"))
    by_tag: dict[str, list[int]] = {}
    for name, image_id in pairs:
        by_tag.setdefault(name, []).append(image_id)
    kept = {name: sorted(ids) for name, ids in by_tag.items() if len(ids) >= min_images}
    tagged = np.array(sorted({i for ids in kept.values() for i in ids}), dtype=np.int64)
    scores = project_scores(project, version, tagged, criterion)
    index = {int(i): k for k, i in enumerate(tagged)}
    rows = []
    for name in sorted(kept):
        at = np.array([index[i] for i in kept[name]], dtype=np.int64)
        ours, human = scores.ours[at], scores.human[at]
        baseline = scores.baseline[at] if scores.baseline is not None else np.full(len(at), np.nan)
        both_ours, both_base = np.isfinite(ours) & np.isfinite(human), np.isfinite(baseline) & np.isfinite(human)
        columns = {
            "ours": ours, "baseline": baseline, "human": human, "reference": scores.reference[at],
            "ours_minus_human": np.where(both_ours, ours - human, np.nan),
            "baseline_minus_human": np.where(both_base, baseline - human, np.nan),
        }
        rows.append({"tag": name, "images": len(at), **means_with_intervals(columns, seed=seed, n_resamples=n_resamples)})
    return {
        "project": project.slug, "model_version": version.pk, **criterion_named(project, criterion),
        "min_images": min_images, "has_baseline": scores.baseline is not None, "human_mapping": scores.human_mapping,
        "tags_left_out": sorted(name for name, ids in by_tag.items() if len(ids) < min_images),
        "rows": rows,
    }


TAG_CSV_COLUMNS = ["ours", "baseline", "human", "reference", "ours_minus_human", "baseline_minus_human"]


def tag_summary_csv_rows(summary: dict) -> list[list]:
    """Header and rows for the CSV download: each number with its interval."""
    header = ["tag", "images"] + [f"{c}{suffix}" for c in TAG_CSV_COLUMNS for suffix in ("", "_low", "_high")]
    rows = [header]
    for row in summary["rows"]:
        rows.append([row["tag"], row["images"]] + [row[c][key] for c in TAG_CSV_COLUMNS for key in ("value", "low", "high")])
    return rows


# --- Metadata fields ------------------------------------------------------------------------------


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_scalar(value) -> bool:
    """A value a text field groups by: a string, a number or a boolean (not a list or an object)."""
    return isinstance(value, (str, bool)) or _is_number(value)


def _text(value) -> str:
    """A text field's value: numbers and booleans as JSON writes them, so 7 and "7" are one value."""
    return value if isinstance(value, str) else json.dumps(value)


def metadata_fields(project: Project) -> list[dict]:
    """Metadata keys the analyses group by (on at least two images), with how many images carry them and their
    kind: ``numeric`` when every value is a number (means per value or quantile bin), ``text`` when the values
    are strings (numbers and booleans among them count as their text): means per distinct value. Keys with a
    list or an object among their values are left out."""
    counts: dict[str, int] = {}
    texts: set[str] = set()
    structured: set[str] = set()
    for metadata in Image.objects.filter(project=project).values_list("metadata", flat=True).iterator(chunk_size=2000):
        for key, value in (metadata or {}).items():
            if value is None:
                continue
            if not _is_scalar(value):
                structured.add(key)
                continue
            counts[key] = counts.get(key, 0) + 1
            if not _is_number(value):
                texts.add(key)
    return [{"field": key, "images": n, "kind": "text" if key in texts else "numeric"}
            for key, n in sorted(counts.items()) if key not in structured and n >= 2]


class UnknownField(Refusal):
    """Not a metadata field the analyses group by; the message lists those that are."""

    code = "unknown_field"


def group_values(values: np.ndarray, max_distinct: int = MAX_DISTINCT_GROUPS, bins: int = QUANTILE_BINS):
    """(group index per value, groups): distinct values when few, else quantile bins (edges in each group)."""
    distinct = np.unique(values)
    if len(distinct) <= max_distinct:
        index = np.searchsorted(distinct, values)
        return index, [{"value": float(v), "low": float(v), "high": float(v)} for v in distinct]
    edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)))
    index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    groups = []
    for k in range(len(edges) - 1):
        members = values[index == k]
        groups.append({"value": float(np.median(members)) if len(members) else float((edges[k] + edges[k + 1]) / 2),
                       "low": float(edges[k]), "high": float(edges[k + 1])})
    return index, groups


OTHER_VALUES = "(other values)"


def group_texts(values: list[str], max_distinct: int = MAX_DISTINCT_GROUPS):
    """(group index per value, groups) of a text field: each distinct value, most frequent first (ties by value);
    beyond ``max_distinct`` values the rarest are pooled as one ``OTHER_VALUES`` group, last."""
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    ordered = sorted(counts, key=lambda value: (-counts[value], value))
    kept = ordered if len(ordered) <= max_distinct else ordered[:max_distinct - 1]
    position = {value: k for k, value in enumerate(kept)}
    index = np.array([position.get(value, len(kept)) for value in values], dtype=np.int64)
    groups = [{"value": value, "low": None, "high": None} for value in kept]
    if len(kept) < len(ordered):
        groups.append({"value": OTHER_VALUES, "low": None, "high": None, "pooled_values": len(ordered) - len(kept)})
    return index, groups


def metadata_summary(project: Project, field: str, *, by_tag: bool = False, min_images: int = DEFAULT_MIN_IMAGES,
                     version: ModelVersion | None = None, criterion: str | None = None, seed: int = SEED,
                     n_resamples: int = N_RESAMPLES) -> dict:
    """Mean model score, mean human score and CLIP similarity per value (or bin) of a metadata field: a numeric
    one by value or quantile bin, a text one (a generator, a sampler) by distinct value."""
    fields = metadata_fields(project)
    kind = next((f["kind"] for f in fields if f["field"] == field), None)
    if kind is None:
        raise UnknownField(f"{field!r} is not a metadata field of this project's images that the analyses group by."
                           f" Fields: {', '.join(f['field'] for f in fields) or 'none'}.")
    version = version or analysed_version(project)
    carries = _is_number if kind == "numeric" else _is_scalar
    rows = [(image_id, metadata[field]) for image_id, metadata in
            Image.objects.filter(project=project).order_by("pk").values_list("pk", "metadata")
            if carries((metadata or {}).get(field))]
    image_ids = np.array([r[0] for r in rows], dtype=np.int64)
    scores = project_scores(project, version, image_ids, criterion)
    similarity = clip_similarity(version, image_ids)
    if kind == "numeric":
        group_of, groups = group_values(np.array([r[1] for r in rows], dtype=np.float64))
        grouping = "distinct values" if all(g["low"] == g["high"] for g in groups) else "quantile bins"
    else:
        group_of, groups = group_texts([_text(r[1]) for r in rows])
        grouping = "most frequent values, the rest pooled" if "pooled_values" in groups[-1] else "distinct values"

    def series(selected: np.ndarray) -> list[dict]:
        out = []
        for k, group in enumerate(groups):
            at = np.flatnonzero(selected & (group_of == k))
            if not len(at):
                continue
            columns = {"model": scores.ours[at], "human": scores.human[at], "clip_similarity": similarity[at]}
            if scores.baseline is not None:
                columns["baseline"] = scores.baseline[at]
            out.append({**group, "images": int(len(at)),
                        **means_with_intervals(columns, seed=seed, n_resamples=n_resamples)})
        return out

    result = {
        "project": project.slug, "field": field, "kind": kind, "model_version": version.pk,
        **criterion_named(project, criterion), "images": int(len(image_ids)), "grouping": grouping,
        "human_mapping": scores.human_mapping, "groups": series(np.ones(len(image_ids), dtype=bool)),
    }
    if by_tag:
        position = {int(i): k for k, i in enumerate(image_ids)}
        members: dict[str, list[int]] = {}
        for name, image_id in ImageTag.objects.filter(image_id__in=image_ids.tolist()).values_list("tag__name", "image_id"):
            members.setdefault(name, []).append(position[image_id])
        result["by_tag"] = []
        for name in sorted(members):
            if len(members[name]) < min_images:
                continue
            selected = np.zeros(len(image_ids), dtype=bool)
            selected[members[name]] = True
            result["by_tag"].append({"tag": name, "images": int(selected.sum()), "groups": series(selected)})
    return result
