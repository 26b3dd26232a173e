"""The HTTP status of each refusal that labeling's services raise (they know nothing of HTTP).

Recorded with ``core.api_errors.answer_refusals`` when the app is ready; a refusal not listed here is a 400.
"""
from __future__ import annotations

from labeling.services import comparisons, crowd_links, leases, pair_serving, qualification, tags, vocabulary

REFUSAL_STATUS = {
    leases.LeaseForeign: 403,
    leases.LeaseExpired: 410,
    leases.LeaseClosed: 409,
    comparisons.ClientKeyReused: 409,
    comparisons.NothingToUndo: 404,
    comparisons.UndoRefused: 409,
    tags.TagNotOnImage: 404,
    tags.TagNotYours: 403,
    vocabulary.TagExists: 409,
    pair_serving.CampaignComplete: 410,
    qualification.NotQualified: 403,
    qualification.RaterPaused: 403,
    crowd_links.QuotaReached: 410,
}
