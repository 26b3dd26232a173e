"""Hooks between the human side and the model loop.

Kept in one place so that the CLI, the REST upload and the demo seeder all trigger the same
follow-up work. The model loop (feature extraction) registers itself here once it exists.
"""
from __future__ import annotations

import logging
from typing import Callable

from django.db import transaction

logger = logging.getLogger(__name__)

_after_import: list[Callable] = []


def on_images_imported(callback: Callable) -> Callable:
    """Register ``callback(project, image_ids)``, run after the import's transaction commits."""
    _after_import.append(callback)
    return callback


def images_imported(project, image_ids: list[int]) -> None:
    if not image_ids:
        return
    ids = list(image_ids)
    for callback in _after_import:
        transaction.on_commit(lambda cb=callback: cb(project, ids))


_after_comparison: list[Callable] = []


def on_comparison_stored(callback: Callable) -> Callable:
    """Register ``callback(project)``, run after a new judgment's transaction commits (e.g. to keep the
    pair selection up with the judgments). It runs in the request: keep it to a few cheap queries."""
    _after_comparison.append(callback)
    return callback


def comparison_stored(project) -> None:
    # robust: the judgment is committed whatever a callback does; an error is logged, not answered.
    for callback in _after_comparison:
        transaction.on_commit(lambda cb=callback: cb(project), robust=True)
