"""The HTTP status of each refusal that modeling's services raise (they know nothing of HTTP).

Recorded with ``core.api_errors.answer_refusals`` when the app is ready; a refusal not listed here is a 400.
"""
from __future__ import annotations

from modeling.services import analyses, explanations, promotion

REFUSAL_STATUS = {
    promotion.PromotionRefused: 409,
    analyses.AnalysisUnavailable: 404,
    analyses.UnknownField: 404,
    explanations.ExplanationUnavailable: 404,
}
