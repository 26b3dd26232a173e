"""Training data from the database, and the fixed held-out comparisons every version is judged on.

The held-out set is a pure function of the unordered image pair (and the project): a comparison of
images 12 and 40 is held out in every version, whichever rater made it, in whichever order, so the
held-out metrics of two versions are comparable. The same rule is available as a SQL expression
(``holdout_condition``) so that the dashboards select exactly the same comparisons in the database.

The hash is a few rounds of the MINSTD generator modulo the prime 2^31 - 1: every intermediate value
stays below 2^48, so SQLite and PostgreSQL compute it in plain 64-bit integers, identically to Python.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from django.db.models import BigIntegerField, ExpressionWrapper, F, Q, QuerySet, Value
from django.db.models.functions import Greatest, Least
from django.db.models.lookups import LessThan

from labeling.models import SCORE_BINS, Comparison, Image, Membership, Project, ReferenceRating
from labeling.services import qualification

HOLDOUT_PERCENT = 10
HOLDOUT_DEFINITION = f"pair-hash-v1:{HOLDOUT_PERCENT}%"
_PRIME = 2_147_483_647  # 2^31 - 1
_MULTIPLIER = 48_271
_PROJECT_SALT = 7_919
_IMAGE_SALT = 1_000_003  # separates the image hold-out (reference ratings) from the pair hold-out

# "Both bad" counts as a tie, as in the human scores (docs/generated-images.md, "Both bad").
OUTCOME_VALUE = {
    Comparison.Outcome.A: 1.0, Comparison.Outcome.B: 0.0, Comparison.Outcome.TIE: 0.5, Comparison.Outcome.BOTH_BAD: 0.5,
}


def _hash(project_id: int, low: int, high: int) -> int:
    x = (project_id * _PROJECT_SALT + low % _PRIME) % _PRIME
    x = (x * _MULTIPLIER) % _PRIME
    x = (x + high % _PRIME) % _PRIME
    x = (x * _MULTIPLIER) % _PRIME
    return (x * _MULTIPLIER) % _PRIME


def _is_held(x: int) -> bool:
    return x * 100 < HOLDOUT_PERCENT * _PRIME


def is_holdout(project_id: int, image_a_id: int, image_b_id: int) -> bool:
    """Whether comparisons of this pair (either order) are held out of training in this project."""
    low, high = sorted((int(image_a_id), int(image_b_id)))
    return _is_held(_hash(int(project_id), low, high))


def holdout_mask(project_id: int, image_a_ids: np.ndarray, image_b_ids: np.ndarray) -> np.ndarray:
    """``is_holdout`` for arrays of pairs at once [P] -> [P] bool (int64 arithmetic, as in SQL)."""
    a, b = np.asarray(image_a_ids, dtype=np.int64), np.asarray(image_b_ids, dtype=np.int64)
    low, high = np.minimum(a, b), np.maximum(a, b)
    x = (int(project_id) * _PROJECT_SALT + low % _PRIME) % _PRIME
    x = (x * _MULTIPLIER) % _PRIME
    x = (x + high % _PRIME) % _PRIME
    x = (x * _MULTIPLIER) % _PRIME
    x = (x * _MULTIPLIER) % _PRIME
    return x * 100 < HOLDOUT_PERCENT * _PRIME


def is_holdout_image(project_id: int, image_id: int) -> bool:
    """Whether this image's reference rating is held out of training (used only for evaluation)."""
    return _is_held(_hash(int(project_id) + _IMAGE_SALT, int(image_id), int(image_id)))


def holdout_condition(project: str = "project_id", image_a: str = "image_a_id", image_b: str = "image_b_id"):
    """The same rule as ``is_holdout`` as a boolean SQL expression, for ``.filter()`` / ``.exclude()``."""
    low, high = Least(F(image_a), F(image_b)), Greatest(F(image_a), F(image_b))
    x = (F(project) * _PROJECT_SALT + low % _PRIME) % _PRIME
    x = (x * _MULTIPLIER) % _PRIME
    x = (x + high % _PRIME) % _PRIME
    x = (x * _MULTIPLIER) % _PRIME
    x = (x * _MULTIPLIER) % _PRIME
    scaled = ExpressionWrapper(x * 100, output_field=BigIntegerField())
    return LessThan(scaled, Value(HOLDOUT_PERCENT * _PRIME, output_field=BigIntegerField()))


def holdout_comparisons(comparisons: QuerySet) -> QuerySet:
    """The held-out comparisons of a Comparison queryset."""
    return comparisons.filter(holdout_condition())


def training_comparisons(comparisons: QuerySet) -> QuerySet:
    """The comparisons of a queryset that training may use (everything not held out)."""
    return comparisons.exclude(holdout_condition())


def excluded_rater_ids(project: Project) -> list[int]:
    """Raters whose judgments training and the human scores leave out: excluded by a manager, failed the
    qualification, or paused (``labeling/services/qualification.py``)."""
    return list(
        Membership.objects.filter(project=project)
        .filter(Q(excluded_from_training=True) | qualification.excluded_condition())
        .values_list("user_id", flat=True)
    )


def usable_comparisons(project: Project) -> QuerySet:
    """The project's comparisons, minus those of raters a manager excluded from training."""
    return Comparison.objects.filter(project=project).exclude(rater_id__in=excluded_rater_ids(project))


# --- The dataset -------------------------------------------------------------------------------


@dataclass
class ProjectDataset:
    """A project's training data on cached features, with its held-out comparisons and references."""

    encoder_id: str
    image_ids: np.ndarray                # [N] database ids; row i of every array is image_ids[i]
    data: object                         # modeling.ml.training_data.RankingData: training comparisons only
    holdout_a: np.ndarray                # [H] row indices
    holdout_b: np.ndarray
    holdout_outcome: np.ndarray          # 1 = a wins, 0 = b wins, 0.5 = tie
    ref_dist: np.ndarray | None          # [N,10] every reference distribution (zeros where none)
    holdout_ref_rows: np.ndarray         # rows whose reference rating is held out
    last_comparison_id: int
    counts: dict = field(default_factory=dict)


def build_dataset(project: Project, *, store=None, last_comparison_id: int | None = None,
                  criterion: str | None = None) -> ProjectDataset:
    """Read images, comparisons, reference ratings and texts from the database, features from the store.

    Every image must have features already (``feature_extraction.ensure_image_features``); the texts' embeddings
    are computed here when missing. Comparisons newer than ``last_comparison_id`` (default: the newest
    now) are left out, so that the version records exactly what it was trained on. ``criterion``: a secondary
    criterion whose answers are the outcomes (judgments without one left out); None: the judgments' outcomes.
    """
    from modeling.ml.similarity import image_tag_similarity
    from modeling.ml.training_data import RankingData
    from modeling.services import feature_extraction

    store = store or feature_extraction.feature_store()
    image_ids = np.array(list(Image.objects.filter(project=project).order_by("pk").values_list("pk", flat=True)))
    if len(image_ids) == 0:
        raise ValueError(f"project {project.slug} has no images")
    row_of = {int(image_id): row for row, image_id in enumerate(image_ids)}
    N = len(image_ids)

    image_tokens = store.get_images(image_ids, dtype=np.float16)                 # [N,T,D], as stored
    tag_tokens, tag_mask = feature_extraction.text_tokens(store, image_ids, dim=image_tokens.shape[-1])

    comparisons = usable_comparisons(project)
    if last_comparison_id is None:
        everything = Comparison.objects.filter(project=project)
        last_comparison_id = everything.order_by("-pk").values_list("pk", flat=True).first() or 0
    rows = comparisons.filter(pk__lte=last_comparison_id).values_list("image_a_id", "image_b_id", "outcome")
    if criterion is not None:
        rows = (comparisons.filter(pk__lte=last_comparison_id, answers__criterion=criterion)
                .values_list("image_a_id", "image_b_id", "answers__outcome"))
    image_a, image_b, outcome = [], [], []
    for a, b, o in rows.iterator(chunk_size=20000):
        image_a.append(a), image_b.append(b), outcome.append(OUTCOME_VALUE[o])
    image_a, image_b = np.asarray(image_a, dtype=np.int64), np.asarray(image_b, dtype=np.int64)
    held_out = holdout_mask(project.pk, image_a, image_b)
    row_a, row_b = np.searchsorted(image_ids, image_a), np.searchsorted(image_ids, image_b)  # image_ids are sorted
    for rows_, ids in ((row_a, image_a), (row_b, image_b)):
        if len(ids) and not np.array_equal(image_ids[np.minimum(rows_, N - 1)], ids):
            raise ValueError(f"a comparison of project {project.slug} refers to an image outside it")
    outcome = np.asarray(outcome, dtype=np.float32)
    train = (row_a[~held_out], row_b[~held_out], outcome[~held_out])
    held = (row_a[held_out], row_b[held_out], outcome[held_out])

    ref_dist, ref_mask, holdout_ref_rows = None, None, np.empty(0, dtype=np.int64)
    references = ReferenceRating.objects.filter(image__project=project).values_list("image_id", *ReferenceRating.VOTE_FIELDS)
    ref_rows = []
    for image_id, *votes in references.iterator(chunk_size=20000):
        if ref_dist is None:
            ref_dist = np.zeros((N, SCORE_BINS), dtype=np.float32)
        row = row_of[image_id]
        ref_dist[row] = np.asarray(votes, dtype=np.float32) / max(sum(votes), 1)
        ref_rows.append(row)
    if ref_dist is not None:
        has_ref = np.zeros(N, dtype=bool)
        has_ref[ref_rows] = True
        held_image = np.array([is_holdout_image(project.pk, i) for i in image_ids], dtype=bool)
        ref_mask = has_ref & ~held_image
        holdout_ref_rows = np.flatnonzero(has_ref & held_image)

    data = RankingData(
        image_tokens, tag_tokens, tag_mask,
        np.asarray(train[0], dtype=np.int64), np.asarray(train[1], dtype=np.int64),
        np.asarray(train[2], dtype=np.float32),
        ref_dist=ref_dist, ref_mask=ref_mask,
        similarity=image_tag_similarity(image_tokens, tag_tokens, tag_mask),
    )
    excluded = Comparison.objects.filter(
        project=project, pk__lte=last_comparison_id, rater_id__in=excluded_rater_ids(project)
    ).count()
    counts = {
        "images": N,
        "images_with_texts": int(tag_mask.any(axis=1).sum()) if tag_mask.shape[1] else 0,
        "comparisons": len(train[0]) + len(held[0]),
        "training_comparisons": len(train[0]),
        "holdout_comparisons": len(held[0]),
        "excluded_rater_comparisons": excluded,
        "references": int(ref_mask.sum()) if ref_mask is not None else 0,
        "holdout_references": len(holdout_ref_rows),
    }
    return ProjectDataset(
        encoder_id=store.encoder_id,
        image_ids=image_ids,
        data=data,
        holdout_a=np.asarray(held[0], dtype=np.int64),
        holdout_b=np.asarray(held[1], dtype=np.int64),
        holdout_outcome=np.asarray(held[2], dtype=np.float32),
        ref_dist=ref_dist,
        holdout_ref_rows=holdout_ref_rows,
        last_comparison_id=int(last_comparison_id),
        counts=counts,
    )
