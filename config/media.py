"""Media files (originals, thumbnails) for signed-in users and API tokens.

Campaign images are often private, so they are not public static files. A production proxy can
take this over with X-Accel-Redirect; Django serving them keeps the embedded default self-contained.
"""
import mimetypes
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.http import Http404, HttpResponse
from django.views.static import serve
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed


def authenticated(request) -> bool:
    if request.user.is_authenticated:
        return True
    try:
        return TokenAuthentication().authenticate(request) is not None
    except AuthenticationFailed:
        return False


def serve_media(request, path):
    if not authenticated(request):
        return HttpResponse("Sign in to see images.", status=401, content_type="text/plain")
    if settings.TAGRANK_MEDIA_ACCEL_REDIRECT:
        return accel_redirect(path)
    response = serve(request, path, document_root=settings.MEDIA_ROOT)
    response["Cache-Control"] = "private, max-age=86400"
    return response


def accel_redirect(path: str) -> HttpResponse:
    """An empty answer telling the proxy which file to send (its internal location, platform/nginx)."""
    root = Path(settings.MEDIA_ROOT).resolve()
    target = (root / path).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        raise Http404("No such file")
    response = HttpResponse(content_type=mimetypes.guess_type(target.name)[0] or "application/octet-stream")
    response["X-Accel-Redirect"] = settings.TAGRANK_MEDIA_ACCEL_REDIRECT + quote(str(target.relative_to(root)))
    response["Cache-Control"] = "private, max-age=86400"
    return response
