"""Files under MEDIA_ROOT, each checked against its owner by the access layer before it is served.

A path maps to its owning object first (an image's original or thumbnail → the image → its project;
a cached explanation → its model version → its project), and the caller must be an active member of
that project (managers only for explanations, which reveal scores); anything else, trained weights
and cached features included, is 404. With ``TAGRANK_MEDIA_ACCEL_REDIRECT`` set (e.g.
``/protected-media/``), an allowed request gets an empty body and ``X-Accel-Redirect`` so that the
proxy sends the file; otherwise Django streams it (the embedded default).
"""
from __future__ import annotations

import mimetypes
import posixpath
from urllib.parse import quote

from django.conf import settings
from django.http import Http404, HttpResponse
from django.views.decorators.http import require_safe
from django.views.static import serve

from labeling import access
from labeling.api.token_auth import request_user


def explanation_project(version_id: int, image_id: int):
    from modeling.models import ModelVersion

    version = ModelVersion.objects.select_related("project").filter(pk=version_id).first()
    if version is None or not version.project.images.filter(pk=image_id).exists():
        return None
    return version.project


def clean_path(path: str) -> str:
    normal = posixpath.normpath(path).lstrip("/")
    if normal != path or normal.startswith("..") or "\\" in path:
        raise Http404("No such file.")
    return normal


@require_safe
def serve_media(request, path):
    user = request_user(request)
    if not user.is_authenticated:
        return HttpResponse("Sign in to see images.", status=401, content_type="text/plain")
    path = clean_path(path)
    access.media_file_role(user, path, explanation_project)  # 404 unless the caller may read it
    prefix = settings.TAGRANK_MEDIA_ACCEL_REDIRECT
    if prefix:
        response = HttpResponse(b"", content_type=mimetypes.guess_type(path)[0] or "application/octet-stream")
        response["X-Accel-Redirect"] = prefix.rstrip("/") + "/" + quote(path)
    else:
        response = serve(request, path, document_root=settings.MEDIA_ROOT)
    response["Cache-Control"] = "private, max-age=86400"
    response["Vary"] = "Cookie, Authorization"
    return response
