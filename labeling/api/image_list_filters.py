"""Filters of the image list (``GET /api/v1/projects/<slug>/images/``) that belong to another app.

Labeling never imports modeling (the dependency runs one way), so the model loop adds its filter
(``?has_score=``, in modeling/api/score_filters.py) here when its app is ready. The parameter itself is
declared in ``ImageFilterSerializer``, so the API's schema does not depend on what registered.
"""
from __future__ import annotations

from typing import Callable

from django.db.models import QuerySet

# query parameter → apply(images, project, value) → images
ImageFilter = Callable[[QuerySet, object, object], QuerySet]
_filters: dict[str, ImageFilter] = {}


def register(parameter: str, apply: ImageFilter) -> None:
    _filters[parameter] = apply


def apply_registered(images: QuerySet, project, parameters: dict) -> QuerySet:
    """Apply each registered filter whose parameter was given (not None)."""
    for parameter, apply in _filters.items():
        value = parameters.get(parameter)
        if value is not None:
            images = apply(images, project, value)
    return images
