"""The image list's ``?has_score=`` filter: images the project's active model version has (not) scored.

Registered with ``labeling.api.image_list_filters`` by ``modeling.apps.ModelingConfig.ready``.
"""
from __future__ import annotations

from django.db.models import Exists, OuterRef, QuerySet

from modeling.models import ImageScore


def has_score(images: QuerySet, project, value: bool) -> QuerySet:
    scored = ImageScore.objects.filter(image=OuterRef("pk"), model_version__project=project, model_version__is_active=True)
    return images.filter(Exists(scored)) if value else images.exclude(Exists(scored))
