"""Request bodies are bounded before they are read: a small cap everywhere, a larger one for uploads by managers;
and an anonymous write to a page that needs sign-in is not read at all (``SignInBeforeBodyMiddleware``).

Any request whose declared body (Content-Length) is over ``TAGRANK_MAX_REQUEST_BYTES`` (1 MiB) is answered
413 without reading it, unless it goes to one of the upload routes below *and* comes from a manager of that
project (session or API token, decided by ``labeling/access.py``); those may send up to
``TAGRANK_MAX_UPLOAD_BYTES``. This runs before any view and before CSRF's check, which reads a form's
body to find its token: an anonymous or foreign caller's large body is never read, parsed or spooled to
disk, and a small one is bounded by the small cap. A body without a Content-Length is not read by Django at
all (it reads Content-Length bytes). Django's own limits (DATA_UPLOAD_MAX_MEMORY_SIZE,
DATA_UPLOAD_MAX_NUMBER_FILES) bound form fields and the number of files on top.

A URI (path and query string) longer than ``TAGRANK_MAX_URI_BYTES`` is answered 414 here too. Under /api/ both
answers are the API's JSON error.
"""
from __future__ import annotations

from django.conf import settings
from django.contrib.auth.middleware import LoginRequiredMiddleware
from django.http import Http404, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve

from labeling import access
from labeling.api.token_auth import request_user

# Routes (URL names) that take files: images, archives and judgment files. Each is under projects/<slug>/.
UPLOAD_ROUTES = frozenset({
    "project-upload", "project-imports",  # pages
    "api-images", "api-import-jobs", "api-comparisons-import",  # API
})


def declared_length(request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0  # Django treats an unreadable length as no body


def may_upload(request) -> bool:
    """A manager of the project named in the URL, calling one of its upload routes."""
    try:
        match = resolve(request.path_info)
    except Resolver404:
        return False
    if match.url_name not in UPLOAD_ROUTES or "slug" not in match.kwargs:
        return False
    try:
        return access.project_role(request_user(request), match.kwargs["slug"]).is_manager
    except Http404:
        return False


def too_large(request, limit: int, upload_limit: int) -> HttpResponse:
    message = f"The request body is larger than the limit of {limit} bytes."
    if limit < upload_limit:
        message += f" Uploads (images, archives, judgment files) by a project's managers may reach {upload_limit} bytes."
    response = refusal(request, 413, "request_too_large", message)
    response["Connection"] = "close"  # the unread body must not be taken for the next request
    return response


def refusal(request, status: int, code: str, message: str) -> HttpResponse:
    """The API's JSON error under /api/, plain text elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": message, "code": code}, status=status)
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


class RequestSizeLimitMiddleware:
    """After authentication (it needs the session user), before any view; CSRF's body read is in its view hook."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        length = declared_length(request)
        limit, upload_limit = int(settings.TAGRANK_MAX_REQUEST_BYTES), int(settings.TAGRANK_MAX_UPLOAD_BYTES)
        if length > limit:
            if length > upload_limit:
                return too_large(request, upload_limit, upload_limit)
            if not may_upload(request):
                return too_large(request, limit, upload_limit)
        return self.get_response(request)


class RequestUriLimitMiddleware:
    """A URI (path and query string) longer than TAGRANK_MAX_URI_BYTES is answered 414 here, where the API can
    say so in JSON. gunicorn's own request-line limit (platform/gunicorn.conf.py) is set above it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = int(settings.TAGRANK_MAX_URI_BYTES)
        if len(request.get_full_path().encode()) > limit:
            return refusal(request, 414, "uri_too_long", f"The URI is longer than the limit of {limit} bytes.")
        return self.get_response(request)


class SignInBeforeBodyMiddleware(LoginRequiredMiddleware):
    """An anonymous write to a page that needs sign-in is sent to the sign-in page before its body is read.

    Django's CSRF check runs before the view's ``login_required`` and reads a form's body to find its token;
    listed before ``CsrfViewMiddleware``, this answers first, as ``login_required`` would (Django's
    ``LoginRequiredMiddleware``, for writes to pages only). Pages anyone may post to are marked
    ``login_not_required``: Django's sign-in and sign-out, the admin's sign-in, the invitation sign-up. The
    API is left alone: DRF authenticates before it reads a body, and answers 401 rather than a redirect.
    """

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.method in ("GET", "HEAD", "OPTIONS", "TRACE") or request.path_info.startswith("/api/"):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)
