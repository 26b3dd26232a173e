"""Media files (originals, thumbnails) for signed-in users and API tokens.

Campaign images are often private, so they are not public static files. A production proxy can
take this over with X-Accel-Redirect; Django serving them keeps the embedded default self-contained.
"""
from django.conf import settings
from django.http import HttpResponse
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
    response = serve(request, path, document_root=settings.MEDIA_ROOT)
    response["Cache-Control"] = "private, max-age=86400"
    return response
