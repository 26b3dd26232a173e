"""Keeps a crowd worker's session to rating: every request of a session opened by a campaign link is
checked against ``labeling.access.crowd_worker_may`` before its view runs (403 otherwise)."""
from __future__ import annotations

from django.http import JsonResponse
from django.shortcuts import render

from core.outage import OUTAGE_ERRORS, outage_response
from labeling import access


class CrowdConfinementMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if not hasattr(request, "session"):
            return None
        try:  # the first read of a database session; an outage here is past OutageMiddleware's reach (a view's)
            crowd = access.is_crowd_session(request.session)
        except OUTAGE_ERRORS:
            return outage_response(request)
        if not crowd:
            return None
        match = request.resolver_match
        if access.crowd_worker_may(match.url_name if match else None):
            return None
        message = "A study link opens the rating page only."
        if request.path.startswith("/api/"):
            return JsonResponse({"detail": message, "code": "crowd_rating_only"}, status=403)
        return render(request, "labeling/crowd_message.html", {"message": message}, status=403)
