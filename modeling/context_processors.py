from django.conf import settings

from modeling.models import is_demo_encoder


def tagrank(request):
    """The encoder is shown on every page: scores from the tiny demo encoder mean nothing, and those of
    the weight-free quality-stats encoder see technical quality only."""
    encoder = settings.TAGRANK_ENCODER
    return {"tagrank_encoder": encoder, "tagrank_demo_encoder": is_demo_encoder(encoder),
            "tagrank_quality_stats_encoder": encoder == "quality-stats"}
