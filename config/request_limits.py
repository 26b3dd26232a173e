"""Refuse a request whose declared body is larger than TAGRANK_MAX_REQUEST_BYTES, before reading it.

Django's own limits (DATA_UPLOAD_MAX_MEMORY_SIZE, DATA_UPLOAD_MAX_NUMBER_FILES) bound form fields and
the number of files, but not the total size of uploaded files, which go to disk; this bounds that too.
A body without a Content-Length is not read by Django at all (it reads Content-Length bytes).
"""
from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse, JsonResponse


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
            message = f"The request body is larger than the limit of {limit} bytes."
            if request.path.startswith("/api/"):
                response = JsonResponse({"detail": message, "code": "request_too_large"}, status=413)
            else:
                response = HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")
            response["Connection"] = "close"  # the unread body must not be taken for the next request
            return response
        return self.get_response(request)
