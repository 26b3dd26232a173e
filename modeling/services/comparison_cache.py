"""Each project's comparisons as numpy columns, kept per worker process and read only past a watermark.

Comparisons are append-only, so a worker that refits a project every few judgments need not reread them
all. The first read of a project fills the cache with every comparison (excluded raters' too: exclusion
is a filter, applied by the caller, so taking a rater out or back changes nothing here); every later read
fetches only the rows with an id above the largest one read so far, in the same database snapshot as
two checks that make the cache safe:

- **the comparison count.** Rows cached plus rows past the watermark must equal the project's count.
  Anything that is not an append makes them differ: an undo, a purge, a deletion by hand, and a
  judgment whose transaction took its id before another's but committed after the watermark passed it.
  The cache is then rebuilt from the database, so it never serves rows that are gone or misses one.
- **the image set.** Comparisons are held as indices into the project's ascending image ids; while the
  images' count and largest id are those cached, the indices stand. New images (larger ids) leave
  them valid; any other change maps them onto the new ids, or rebuilds if a compared image is gone.

A restarted worker, or another one, starts empty and fills its own cache from the database: the arrays
are always those a full read would give, in id order. ``docs/active-learning.md`` ("Incremental model
loop") says how this scales past one worker. Memory: about 57 bytes per comparison (7 int64/float64
columns and a bool), in buffers that grow by half when full, for at most ``MAX_PROJECTS`` projects.
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, Count, IntegerField, Max, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from labeling.models import Comparison, Image, Project
from modeling.services.columns import fetch_columns
from modeling.services.datasets import holdout_mask

log = logging.getLogger(__name__)

# Outcome codes read from the database: the left image's share of the win, doubled (so they stay integers).
LEFT_WIN_X2 = Case(
    When(outcome=Comparison.Outcome.A, then=Value(2)),
    When(outcome=Comparison.Outcome.TIE, then=Value(1)),
    When(outcome=Comparison.Outcome.BOTH_BAD, then=Value(1)),  # as a tie: docs/generated-images.md, "Both bad"
    default=Value(0),
    output_field=IntegerField(),
)
GOLD_CODE = Case(  # -1: not a gold pair (or not graded), 0: wrong, 1: right
    When(is_gold=True, gold_correct=True, then=Value(1)),
    When(is_gold=True, gold_correct=False, then=Value(0)),
    default=Value(-1),
    output_field=IntegerField(),
)

# column name -> dtype of the cached column (as ``human_scores.ComparisonArrays`` holds it)
COLUMNS = {
    "a_index": np.int64, "b_index": np.int64, "outcome": np.float64, "rater_id": np.int64,
    "response_ms": np.float64, "gold": np.int64, "comparison_id": np.int64, "heldout": np.bool_,
}  # fmt: skip


@dataclass(frozen=True)
class ProjectComparisons:
    """Every comparison of a project (excluded raters' included), in id order: read-only views."""

    image_ids: np.ndarray  # [N] the project's image ids, ascending
    columns: dict[str, np.ndarray]  # COLUMNS, each [M]
    loaded_at: datetime  # read no earlier than this: every comparison stored by then is in the columns
    rows_read: int  # rows this read fetched from the database (all of them when the cache was filled)


@dataclass
class _Entry:
    image_ids: np.ndarray
    image_count: int
    image_max_id: int
    buffers: dict[str, np.ndarray]  # each column with spare room at the end
    size: int = 0  # rows in use
    watermark: int = 0  # the largest comparison id read
    fills: int = field(default=0)  # full reads so far (1 + rebuilds), for tests and logs


MAX_PROJECTS = 8  # projects cached per process; the one used longest ago is dropped first
_entries: OrderedDict[int, _Entry] = OrderedDict()
_rows_read: dict[int, int] = {}  # project id -> rows the last read fetched
_lock = threading.Lock()  # a worker runs one task at a time; threads (tests, eager mode) take turns


def enabled() -> bool:
    """Whether the cache is kept (``TAGRANK_INCREMENTAL_FIT``; off: every read is a full one)."""
    return bool(getattr(settings, "TAGRANK_INCREMENTAL_FIT", True))


def forget(project_id: int | None = None) -> None:
    """Drop the cached comparisons of one project (or of all): the next read refills from the database."""
    forget_project(_entries, _lock, project_id)


def forget_project(entries: dict, lock: threading.Lock, project_id: int | None) -> None:
    """Drop one project's entry (None: every entry) of a per-process cache keyed by project id, under its lock."""
    with lock:
        if project_id is None:
            entries.clear()
        else:
            entries.pop(project_id, None)


def rows_read_last(project_id: int) -> int | None:
    """Rows the project's last read in this process fetched from the database (None: none read)."""
    return _rows_read.get(project_id)


def cached_fills(project_id: int) -> int:
    """How many times this process read all of the project's comparisons (0: nothing cached)."""
    entry = _entries.get(project_id)
    return entry.fills if entry else 0


def project_comparisons(project: Project) -> ProjectComparisons:
    """The project's comparisons, all of them, from the cache brought up to date (or filled)."""
    with _lock, _snapshot():
        loaded_at = timezone.now()  # before reading: what was stored by then is in the arrays
        entry = _entries.get(project.pk) if enabled() else None
        image_count, image_max_id = _image_extent(project)
        if entry is not None and (image_count, image_max_id) != (entry.image_count, entry.image_max_id):
            entry = _remap_images(project, entry, image_count, image_max_id)
        if entry is None:
            entry, rows_read = _fill(project, image_count, image_max_id), None
        else:
            rows_read = _append_new(project, entry)
            if rows_read is None:  # not an append: rebuild
                log.info("comparison cache of project %s rebuilt: its comparisons changed", project.pk)
                fills = entry.fills
                entry = _fill(project, image_count, image_max_id)
                entry.fills += fills
        if rows_read is None:
            rows_read = entry.size
        _rows_read[project.pk] = rows_read
        if enabled():
            _entries[project.pk] = entry
            _entries.move_to_end(project.pk)
            while len(_entries) > MAX_PROJECTS:
                _entries.popitem(last=False)
        return ProjectComparisons(entry.image_ids, _views(entry), loaded_at, rows_read)


class _snapshot:
    """On PostgreSQL, the checks and the reads in one REPEATABLE READ snapshot (unless a transaction is
    already open, whose own isolation then applies): otherwise a judgment committed between the count
    and the read would make the count disagree and force a needless rebuild."""

    def __enter__(self):
        self.atomic = None
        if connection.vendor == "postgresql" and not connection.in_atomic_block:
            self.atomic = transaction.atomic()
            self.atomic.__enter__()
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        return self

    def __exit__(self, *exc):
        if self.atomic is not None:
            return self.atomic.__exit__(*exc)
        return False


def _image_extent(project: Project) -> tuple[int, int]:
    extent = Image.objects.filter(project=project).aggregate(n=Count("*"), top=Max("id"))
    return int(extent["n"]), int(extent["top"] or 0)


def _image_ids(project: Project) -> np.ndarray:
    return fetch_columns(Image.objects.filter(project=project).order_by("id"), {"id": int})["id"]


def _read_rows(project: Project, image_ids: np.ndarray, after_id: int) -> dict[str, np.ndarray]:
    """The comparisons with an id above ``after_id``, in id order, as COLUMNS."""
    rows = Comparison.objects.filter(project=project)
    if after_id:
        rows = rows.filter(id__gt=after_id)
    raw = fetch_columns(
        rows.order_by("id").annotate(
            left_win_x2=LEFT_WIN_X2, gold_code=GOLD_CODE, response=Coalesce("response_ms", Value(-1))
        ),
        {"image_a_id": int, "image_b_id": int, "left_win_x2": int, "rater_id": int, "response": int,
         "gold_code": int, "id": int},
    )  # fmt: skip
    response = raw["response"].astype(np.float64)
    response[raw["response"] < 0] = np.nan
    return {
        "a_index": np.searchsorted(image_ids, raw["image_a_id"]),
        "b_index": np.searchsorted(image_ids, raw["image_b_id"]),
        "outcome": raw["left_win_x2"] / 2.0,
        "rater_id": raw["rater_id"],
        "response_ms": response,
        "gold": raw["gold_code"],
        "comparison_id": raw["id"],
        # The model loop's own hold-out rule (``holdout_condition`` in SQL, the same arithmetic), here in numpy:
        # in the database it took a tenth of reading 10^7 rows.
        "heldout": holdout_mask(project.pk, raw["image_a_id"], raw["image_b_id"]),
    }


def _fill(project: Project, image_count: int, image_max_id: int) -> _Entry:
    image_ids = _image_ids(project)
    columns = _read_rows(project, image_ids, 0)
    entry = _Entry(image_ids, image_count, image_max_id, {name: np.empty(0, dtype) for name, dtype in COLUMNS.items()},
                   fills=1)
    _append(entry, columns)
    return entry


def _append_new(project: Project, entry: _Entry) -> int | None:
    """Read the rows past the watermark into ``entry``; None if the project's comparisons changed otherwise."""
    count = Comparison.objects.filter(project=project).count()
    if count < entry.size:
        return None
    # Read even when the count did not grow: a deletion and an append would leave it as it was.
    new = _read_rows(project, entry.image_ids, entry.watermark)
    n_new = new["comparison_id"].shape[0]
    if entry.size + n_new != count:
        return None
    if n_new:
        _append(entry, new)
    return n_new


def _append(entry: _Entry, columns: dict[str, np.ndarray]) -> None:
    n_new = columns["comparison_id"].shape[0]
    needed = entry.size + n_new
    for name, dtype in COLUMNS.items():
        buffer = entry.buffers[name]
        if needed > buffer.shape[0]:  # grow by half (or to fit): appends stay amortised O(new rows)
            grown = np.empty(max(needed, buffer.shape[0] * 3 // 2, 1024), dtype)
            grown[: entry.size] = buffer[: entry.size]
            entry.buffers[name] = buffer = grown
        buffer[entry.size:needed] = columns[name]
    entry.size = needed
    if n_new:
        entry.watermark = int(columns["comparison_id"][-1])


def _views(entry: _Entry) -> dict[str, np.ndarray]:
    """Read-only views of the rows in use: later appends write past them, so the views never change."""
    views = {}
    for name, buffer in entry.buffers.items():
        view = buffer[: entry.size]
        view.flags.writeable = False
        views[name] = view
    return views


def _remap_images(project: Project, entry: _Entry, image_count: int, image_max_id: int) -> _Entry | None:
    """The entry on the project's new image ids, or None (rebuild) if a compared image is gone."""
    image_ids = _image_ids(project)
    old = entry.image_ids
    if not (old.shape[0] <= image_ids.shape[0] and np.array_equal(image_ids[: old.shape[0]], old)):
        for name in ("a_index", "b_index"):
            ids = old[entry.buffers[name][: entry.size]]
            index = np.searchsorted(image_ids, ids)
            if ids.shape[0] and (index.max() >= image_ids.shape[0] or not np.array_equal(image_ids[index], ids)):
                return None
            remapped = np.empty_like(entry.buffers[name])  # a new buffer: earlier views must not change
            remapped[: entry.size] = index
            entry.buffers[name] = remapped
    entry.image_ids, entry.image_count, entry.image_max_id = image_ids, image_count, image_max_id
    return entry
