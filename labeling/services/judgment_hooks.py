"""What runs after a judgment is stored, for the apps that build on labeling.

Labeling never imports modeling (the dependency runs one way), so the model loop registers its callback
here when its app is ready (``modeling.apps``): the pair selection keeps up with the judgments.
"""
from __future__ import annotations

import logging
from typing import Callable

from django.db import transaction

log = logging.getLogger(__name__)

_after_judgment: list[Callable] = []


def register(callback: Callable) -> None:
    """Run ``callback(project)`` after each new judgment's transaction commits. It runs in the request:
    keep it to a few cheap queries. Registering the same callback twice has no effect."""
    if callback not in _after_judgment:
        _after_judgment.append(callback)


def judgment_stored(project) -> None:
    # robust: the judgment is committed whatever a callback does; an error is logged, not answered.
    for callback in _after_judgment:
        transaction.on_commit(lambda cb=callback: cb(project), robust=True)
