"""Reading and writing a project's stored human scores, writing back only the scores that moved.

After a refit on a few new comparisons most of 10^6 images keep their score to within the fit's own
precision, so rewriting every row (as the first fit does) is most of a refit's time at scale. This
module keeps, per worker process and project, a copy of what is stored (read for the warm start, or
written) labelled with the project's ``HumanScoreStamp`` version. A write locks the stamp row, and:

- if a fit of newer data is stored already, writes nothing (so stored scores never go back to fewer
  judgments, whichever fit finishes last);
- if the stamp still has the version of the copy, writes only the rows whose mean or variance moved by
  more than ``MOVED_SHARE`` of its posterior standard deviation (or variance), or whose comparison count
  changed: the copy is then exactly what is stored;
- otherwise (another worker wrote since, or no copy) writes every row.

Either way the stamp's version goes up. The warm start of the next fit is the copy, so the process does
not reread 10^6 scores either; ``fit_project_posterior`` gives the same result as with the stored means,
because they are the same numbers. On PostgreSQL the rows go through ``COPY`` into a temporary staging
table and one ``INSERT … SELECT … ON CONFLICT DO UPDATE`` from it (an update for the rows that exist,
an insert for images new since the last fit); SQLite takes the rows with ``executemany``.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from django.db import connection, transaction
from django.db.models import F

from labeling.models import Project
from modeling.ml.rater_reliability import RaterWeights
from modeling.models import HumanScore, HumanScoreStamp
from modeling.services import comparison_cache
from modeling.services.columns import fetch_columns, image_positions

# A score "moved" when its mean changed by more than this share of its posterior standard deviation, or its
# variance by more than this share of itself: a thousandth of the score's own uncertainty changes no ranking
# or interval anyone reads. A refit after a few new judgments moves almost every score a little (the raters'
# weights shift every comparison's weight): at 1e-6 in absolute terms it rewrote about 90 % of 10^6 rows
# (docs/benchmarks.md, "Scale run at 10^7 comparisons, session 10"). The stored copy, not the last fit, is what a
# score is compared with, so a slow drift is written once it adds up.
MOVED_SHARE = 1e-3


@dataclass
class _Copy:
    version: int  # the stamp's version when read or written
    image_ids: np.ndarray  # [N]
    mean: np.ndarray  # [N] NaN where no row is stored
    variance: np.ndarray  # [N]
    counts: np.ndarray  # [N] int, -1 where no row is stored


_copies: dict[int, _Copy] = {}
_lock = threading.Lock()


def forget(project_id: int | None = None) -> None:
    """Drop this process's copy of one project's stored scores (or of all): the next read rereads them."""
    comparison_cache.forget_project(_copies, _lock, project_id)


def stored_version(project: Project) -> int:
    return HumanScoreStamp.objects.filter(project=project).values_list("version", flat=True).first() or 0


def stored_means(project: Project, image_ids: np.ndarray) -> np.ndarray | None:
    """The stored means in ``image_ids`` order (0 where none), None if none at all: the next fit's warm start.
    From this process's copy while the stamp says it is current, else read (and copied)."""
    copy = _current_copy(project, image_ids)
    if copy is None:
        return None
    return np.nan_to_num(copy.mean, nan=0.0)


def stored_rater_weights(project: Project) -> RaterWeights | None:
    """The stored fit's raters' weights (``write_scores``), the next fit's start; None where there are none."""
    stored = HumanScoreStamp.objects.filter(project=project).values_list("rater_weights", flat=True).first()
    if not stored:
        return None
    return RaterWeights(np.asarray(stored["rater_ids"], dtype=np.int64),
                        np.asarray(stored["attentive"], dtype=np.float64), int(stored.get("comparisons", 0)))


def stored_scores(project: Project, image_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The stored (mean, variance, comparison count) in ``image_ids`` order, None if none at all; NaN, NaN
    and -1 where an image has no row. From this process's copy while the stamp says it is current."""
    copy = _current_copy(project, image_ids)
    return None if copy is None else (copy.mean.copy(), copy.variance.copy(), copy.counts.copy())


def last_fit(project: Project) -> tuple[datetime | None, float | None]:
    """The stored fit's data time (when its comparisons were read) and how long it took; None for either
    when no fit is stored (or, for the duration, when it was stored before durations were kept)."""
    stamp = HumanScoreStamp.objects.filter(project=project).values_list("fitted_at", "fit_seconds").first()
    return stamp or (None, None)


def _current_copy(project: Project, image_ids: np.ndarray) -> _Copy | None:
    version = stored_version(project)  # read first: a write in between only makes the copy look older
    with _lock:
        copy = _copies.get(project.pk)
    if copy is not None and copy.version == version and np.array_equal(copy.image_ids, image_ids):
        return copy
    columns = fetch_columns(HumanScore.objects.filter(project=project),
                            {"image_id": int, "mean": float, "variance": float, "n_comparisons": int})
    if columns["image_id"].shape[0] == 0:
        return None
    copy = _Copy(version, np.asarray(image_ids), *_placed(image_ids, columns))
    _keep(project.pk, copy)
    return copy


def _placed(image_ids: np.ndarray, columns: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(image_ids)
    mean, variance, counts = np.full(n, np.nan), np.full(n, np.nan), np.full(n, -1, dtype=np.int64)
    index, known = image_positions(image_ids, columns["image_id"])
    mean[index[known]] = columns["mean"][known]
    variance[index[known]] = columns["variance"][known]
    counts[index[known]] = columns["n_comparisons"][known]
    return mean, variance, counts


def write_scores(project: Project, image_ids: np.ndarray, mean: np.ndarray, variance: np.ndarray,
                 counts: np.ndarray, fitted_at: datetime, fit_seconds: float | None = None,
                 rater_weights: RaterWeights | None = None) -> int:
    """Store a fit (``fitted_at``: when its comparisons were read; ``fit_seconds``: how long it took;
    ``rater_weights``: its raters' weights, None when it weighed every rater alike). Returns the number of rows
    written."""
    image_ids = np.asarray(image_ids, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.int64)
    with transaction.atomic():
        HumanScoreStamp.objects.bulk_create([HumanScoreStamp(project=project)], ignore_conflicts=True)
        stamp = HumanScoreStamp.objects.select_for_update().get(project=project)
        if stamp.fitted_at is not None and stamp.fitted_at > fitted_at:
            return 0  # a fit of newer data is stored already
        with _lock:
            copy = _copies.get(project.pk)
        if copy is not None and copy.version == stamp.version and np.array_equal(copy.image_ids, image_ids):
            rows = np.flatnonzero((counts != copy.counts) | moved(copy.mean, copy.variance, mean, variance))
            stored_mean, stored_variance, stored_counts = copy.mean.copy(), copy.variance.copy(), copy.counts.copy()
            stored_mean[rows], stored_variance[rows], stored_counts[rows] = mean[rows], variance[rows], counts[rows]
            new_copy = _Copy(stamp.version + 1, image_ids, stored_mean, stored_variance, stored_counts)
        else:  # every row; rows a newer fit wrote before the stamp existed keep theirs, so no copy is kept
            rows, new_copy = np.arange(image_ids.shape[0]), None
        _write_rows(project, image_ids[rows], mean[rows], variance[rows], counts[rows], fitted_at)
        HumanScoreStamp.objects.filter(project=project).update(
            version=F("version") + 1, fitted_at=fitted_at, fit_seconds=fit_seconds,
            rater_weights=None if rater_weights is None else {"rater_ids": rater_weights.rater_ids.tolist(),
                                                            "attentive": rater_weights.attentive.tolist(),
                                                            "comparisons": rater_weights.comparisons})
        # Kept only once the transaction commits: after a rollback the stamp (and the rows) are as before.
        transaction.on_commit(lambda: _keep(project.pk, new_copy))
    return int(rows.shape[0])


def moved(stored_mean: np.ndarray, stored_variance: np.ndarray, mean: np.ndarray, variance: np.ndarray
          ) -> np.ndarray:
    """Which scores [N] moved from what is stored (NaN: nothing stored) by more than ``MOVED_SHARE``."""
    return ~(np.abs(mean - stored_mean) <= MOVED_SHARE * np.sqrt(variance)) | ~(
        np.abs(variance - stored_variance) <= MOVED_SHARE * variance)


def _keep(project_id: int, copy: _Copy | None) -> None:
    with _lock:
        _copies.pop(project_id, None)
        if copy is not None and comparison_cache.enabled():
            _copies[project_id] = copy  # the newest last: the oldest are dropped beyond MAX_PROJECTS
            while len(_copies) > comparison_cache.MAX_PROJECTS:
                _copies.pop(next(iter(_copies)))


def _write_rows(project: Project, image_ids: np.ndarray, mean: np.ndarray, variance: np.ndarray,
                counts: np.ndarray, fitted_at: datetime) -> None:
    if image_ids.shape[0] == 0:
        return
    table = HumanScore._meta.db_table
    # Rows are written unless a fit of newer data wrote them (rows written before the stamp existed).
    upsert = (
        "ON CONFLICT (image_id) DO UPDATE SET mean = EXCLUDED.mean, variance = EXCLUDED.variance, "
        "n_comparisons = EXCLUDED.n_comparisons, fitted_at = EXCLUDED.fitted_at "
        f"WHERE {table}.fitted_at <= EXCLUDED.fitted_at"
    )
    at = connection.ops.adapt_datetimefield_value(fitted_at)
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            cursor.executemany(
                f"INSERT INTO {table} (project_id, image_id, mean, variance, n_comparisons, fitted_at) "
                f"VALUES (%s, %s, %s, %s, %s, %s) {upsert}",
                [(project.pk, image_id, m, v, int(n), at) for image_id, m, v, n in
                 zip(image_ids.tolist(), mean.tolist(), variance.tolist(), counts.tolist())],
            )
            return
        # Dropped at the commit; inside an outer transaction an earlier write's table may still be there.
        cursor.execute("CREATE TEMPORARY TABLE IF NOT EXISTS human_score_staging (image_id bigint, mean float8, "
                       "variance float8, n_comparisons integer) ON COMMIT DROP")
        cursor.execute("TRUNCATE human_score_staging")
        text = "".join(  # repr: the shortest text that reads back the same float
            f"{image_id}\t{m!r}\t{v!r}\t{n}\n"
            for image_id, m, v, n in zip(image_ids.tolist(), mean.tolist(), variance.tolist(), counts.tolist())
        )
        with cursor.cursor.copy("COPY human_score_staging FROM STDIN") as copy:
            copy.write(text)
        cursor.execute(
            f"INSERT INTO {table} (project_id, image_id, mean, variance, n_comparisons, fitted_at) "
            f"SELECT %s, image_id, mean, variance, n_comparisons, %s FROM human_score_staging {upsert}",
            [project.pk, at],
        )
