"""The site's middleware that answers an outage in a view with 503 and Retry-After instead of 500 (what counts as an
outage, and the answer, are ``core/outage.py``'s)."""
from __future__ import annotations

import logging

from core.outage import is_outage, outage_response

log = logging.getLogger(__name__)


class OutageMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not is_outage(exception):
            return None
        log.warning("outage on %s %s: %s", request.method, request.path, exception)
        return outage_response(request)
