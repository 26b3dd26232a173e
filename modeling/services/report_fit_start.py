"""Where the agreement report's comparisons-only fit starts: the last report's, kept in this worker process.

The report fits the human scores from the comparisons alone, so that the model is not compared with its own
prior. Started from the stored, model-fused means, its first fit (unweighted) took 6 Newton steps at 10^7
comparisons; the next report on the same worker starts it from the last report's first fit instead. Each fit
runs its Newton steps to the same tolerance (``bradley_terry.FitConfig.tolerance``, 1e-6) from any start, so
the report's numbers are those it would give from the stored means. A fresh worker, or another one, starts
from the stored means as before. Memory: 16 bytes per image (the ids and the means), for at most
``MAX_KEPT`` reports (project and criterion).
"""
from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from modeling.services.columns import per_image

MAX_KEPT = 8

_kept: OrderedDict[tuple[int, str], tuple[np.ndarray, np.ndarray]] = OrderedDict()
_lock = threading.Lock()


def start(project_id: int, criterion: str | None, image_ids: np.ndarray, fallback: np.ndarray | None
          ) -> np.ndarray | None:
    """The last kept fit's means in ``image_ids`` order, ``fallback``'s (or 0) for images it did not have;
    ``fallback`` alone when none is kept."""
    with _lock:
        kept = _kept.get((project_id, criterion or ""))
    if kept is None:
        return fallback
    means = per_image(image_ids, *kept)
    new = np.isnan(means)
    means[new] = 0.0 if fallback is None else fallback[new]
    return means


def keep(project_id: int, criterion: str | None, image_ids: np.ndarray, means: np.ndarray) -> None:
    """Keep a report's first comparisons-only fit (means in ``image_ids`` order) for the next one."""
    key = (project_id, criterion or "")
    with _lock:
        _kept[key] = (np.array(image_ids, copy=True), np.array(means, copy=True))
        _kept.move_to_end(key)
        while len(_kept) > MAX_KEPT:
            _kept.popitem(last=False)


def forget() -> None:
    """Drop every kept fit (tests)."""
    with _lock:
        _kept.clear()
