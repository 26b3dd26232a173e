"""Files under MEDIA_ROOT, each checked against its owner by the access layer before it is served.

A path maps to its owning object first (an image's original or thumbnail → the image → its project;
a cached explanation → its model version → its project), and the caller must be an active member of
that project (managers only for explanations, which reveal scores); anything else, trained weights
and cached features included, is 404. With ``TAGRANK_MEDIA_ACCEL_REDIRECT`` set (e.g.
``/protected-media/``), an allowed request gets an empty body and ``X-Accel-Redirect`` so that the
proxy sends the file; otherwise Django streams it (the embedded default).

Files are served as what they are: only the types Tagrank itself writes (the importer's JPEG, PNG and
WebP, explanation PNG and JSON), each with its own content type from the table below, never guessed from
the file, with ``X-Content-Type-Options: nosniff`` and a policy that lets nothing in it run. Any other
extension is 404, whoever asks.
"""
from __future__ import annotations

import posixpath
from urllib.parse import quote

from django.conf import settings
from django.http import Http404, HttpResponse
from django.views.decorators.http import require_safe
from django.views.static import serve

from labeling import access
from labeling.api.token_auth import request_user


# Extension → content type of each file type served; the importer writes only these (labeling.services.imports
# EXTENSIONS and the WebP thumbnails), explanations PNG and JSON.
SERVED_TYPES = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp", "json": "application/json"}
# A media file is a document of its own when opened directly: nothing in it may run or load anything.
MEDIA_POLICY = "default-src 'none'; sandbox"


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
    content_type = SERVED_TYPES.get(posixpath.splitext(path)[1].lstrip("."))
    if content_type is None:
        raise Http404("No such file.")
    access.media_file_role(user, path, explanation_project)  # 404 unless the caller may read it
    prefix = settings.TAGRANK_MEDIA_ACCEL_REDIRECT
    if prefix:
        response = HttpResponse(b"", content_type=content_type)
        response["X-Accel-Redirect"] = prefix.rstrip("/") + "/" + quote(path)
    else:
        response = serve(request, path, document_root=settings.MEDIA_ROOT)
        response["Content-Type"] = content_type
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = MEDIA_POLICY
    response["Cache-Control"] = "private, max-age=86400"
    response["Vary"] = "Cookie, Authorization"
    return response
