"""A URL under /api/ that matches no route is the API's JSON 404, like every other answer of the API.

The URL resolver answers such a request before any API view runs (a slug or id that does not match its
converter, a path that does not exist), with Django's HTML page, or in DEBUG its technical page. This
middleware turns that answer into ``{"detail", "code"}``. It sits before ``CommonMiddleware``, so a URL that
only lacks its trailing slash is still redirected (APPEND_SLASH), and a JSON 404 from a view is left as it is.
"""
from __future__ import annotations

from django.http import JsonResponse


class ApiNotFoundMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (response.status_code == 404 and request.path.startswith("/api/")
                and not response.get("Content-Type", "").startswith("application/json")):
            return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
        return response
