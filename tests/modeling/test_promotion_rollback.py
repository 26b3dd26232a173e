"""Promotion and rollback of model versions, and scoring by the active version."""
from __future__ import annotations

import numpy as np
import pytest

from labeling.models import Image
from modeling.models import ImageScore, ModelVersion, Promotion
from modeling.services import feature_extraction, promotion, scoring
from tests.modeling.model_loop_support import add_images

pytestmark = pytest.mark.django_db


# --- Promotion and rollback -----------------------------------------------------------------------------


def trained_version(project, **fields):
    """A version with real (tiny) weights, without running the whole training."""
    import os
    import tempfile

    from django.core.files.base import ContentFile

    from modeling.ml.ranker import RankerConfig, build_ranker
    from modeling.ml.checkpoints import save_checkpoint

    model = build_ranker("tags", RankerConfig(input_dim=feature_extraction.current_encoder().dim, width=16, heads=2, ensemble=2))
    version = ModelVersion.objects.create(project=project, encoder_id=feature_extraction.encoder_id_for(),
                                          status=ModelVersion.Status.CANDIDATE, **fields)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "w.pt")
        save_checkpoint(path, model, {"encoder_id": version.encoder_id})
        with open(path, "rb") as handle:
            version.weights.save(f"v{version.pk}.pt", ContentFile(handle.read()))
    return version


def test_manual_promotion_and_rollback_are_logged(project, manager, loop_images):
    first, second = trained_version(project), trained_version(project)
    with pytest.raises(promotion.PromotionRefused, match="reason"):
        promotion.promote(first, user=manager, reason="  ", dispatch=False)
    promotion.promote(first, user=manager, reason="baseline", dispatch=False)
    scoring.rescore(first.pk)
    with pytest.raises(promotion.PromotionRefused, match="never active"):
        promotion.rollback(second, user=manager, reason="x", dispatch=False)
    promotion.promote(second, user=manager, reason="looks better", dispatch=False)
    scoring.rescore(second.pk)
    assert promotion.previous_version(project) == first
    with pytest.raises(promotion.PromotionRefused, match="already the active"):
        promotion.promote(second, user=manager, reason="again", dispatch=False)

    first.refresh_from_db()
    back = promotion.rollback(first, user=manager, reason="second one misranks portraits", dispatch=False)
    assert back.kind == Promotion.Kind.ROLLBACK and back.from_version == second and back.decided_by == manager
    result = scoring.rescore(first.pk)
    assert result["activated"] and result["scored"] == 0  # its scores were still there
    first.refresh_from_db()
    assert first.is_active
    log = list(Promotion.objects.filter(project=project).order_by("created_at").values_list("kind", "reason"))
    assert log == [("manual", "baseline"), ("manual", "looks better"), ("rollback", "second one misranks portraits")]


def test_the_latest_promotion_request_wins(project, manager, loop_images):
    first, second = trained_version(project), trained_version(project)
    promotion.promote(first, user=manager, reason="one", dispatch=False)
    promotion.promote(second, user=manager, reason="two", dispatch=False)
    first.refresh_from_db()
    assert first.status == ModelVersion.Status.CANDIDATE and "Superseded" in first.status_reason
    assert scoring.rescore(first.pk)["skipped"]
    assert scoring.rescore(second.pk)["activated"]


def test_corrupt_weights_fail_the_version_and_the_active_one_keeps_serving(project, manager, loop_images):
    good, bad = trained_version(project), trained_version(project)
    promotion.promote(good, user=manager, reason="good", dispatch=False)
    scoring.rescore(good.pk)
    with bad.weights.open("rb") as handle:
        data = handle.read()
    with bad.weights.storage.open(bad.weights.name, "wb") as handle:
        handle.write(data[: len(data) // 2])
    promotion.promote(bad, user=manager, reason="try it", dispatch=False)
    result = scoring.rescore(bad.pk)
    assert "failed" in result
    bad.refresh_from_db(), good.refresh_from_db()
    assert bad.status == ModelVersion.Status.FAILED and "unreadable" in bad.status_reason
    assert good.is_active and ImageScore.objects.filter(model_version=good).count() == 16
    with pytest.raises(promotion.PromotionRefused):
        promotion.promote(bad, user=manager, reason="again", dispatch=False)


def test_new_images_are_scored_by_the_active_version(project, manager, loop_images, image_bytes):
    version = trained_version(project)
    promotion.promote(version, user=manager, reason="r", dispatch=False)
    scoring.rescore(version.pk)
    fresh = add_images(project, 3, image_bytes, start=100)
    report = feature_extraction.extract_features([i.pk for i in fresh])
    assert scoring.score_new_images(project, report.extracted) == 3
    assert ImageScore.objects.filter(model_version=version, image__in=fresh).count() == 3
    assert not scoring.unscored_images(version).exists()
    assert np.isfinite(list(ImageScore.objects.values_list("uncertainty", flat=True))).all()
    assert Image.objects.filter(project=project).count() == 19
