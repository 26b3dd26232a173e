"""Refuse a request whose declared body is larger than TAGRANK_MAX_REQUEST_BYTES, before reading it, and one whose
URI is longer than TAGRANK_MAX_URI_BYTES (414). Under /api/ both answers are the API's JSON error.

Django's own limits (DATA_UPLOAD_MAX_MEMORY_SIZE, DATA_UPLOAD_MAX_NUMBER_FILES) bound form fields and
the number of files, but not the total size of uploaded files, which go to disk; this bounds that too.
A body without a Content-Length is not read by Django at all (it reads Content-Length bytes).
"""
from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse, JsonResponse


def refusal(request, status: int, code: str, message: str) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": message, "code": code}, status=status)
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


class RequestSizeLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = int(settings.TAGRANK_MAX_REQUEST_BYTES)
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0  # Django treats an unreadable length as no body
        if length > limit:
            response = refusal(request, 413, "request_too_large",
                               f"The request body is larger than the limit of {limit} bytes.")
            response["Connection"] = "close"  # the unread body must not be taken for the next request
            return response
        return self.get_response(request)


class RequestUriLimitMiddleware:
    """A URI (path and query string) longer than TAGRANK_MAX_URI_BYTES is answered 414 here, where the API can
    say so in JSON. gunicorn's own request-line limit (platform/gunicorn.conf.py) is set above it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = int(settings.TAGRANK_MAX_URI_BYTES)
        uri_bytes = len(request.get_full_path().encode())
        if uri_bytes > limit:
            return refusal(request, 414, "uri_too_long", f"The URI is longer than the limit of {limit} bytes.")
        return self.get_response(request)
