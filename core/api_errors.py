"""The API's one error shape, and the one DRF exception handler that answers every refusal.

Every error the API gives is ``{"detail": ..., "code": ...}`` (``ErrorSerializer``, one ``Error`` component in
the schema). The services raise refusals (``core.refusals.Refusal``) that know nothing of HTTP; each app's API
says which status answers which of its refusals (``answer_refusals``, called from the app's ``ready()``), and
``exception_handler`` (``REST_FRAMEWORK["EXCEPTION_HANDLER"]``) turns a refusal that leaves a view into that
status: the nearest class in the refusal's ancestry that has one, else 400. Anything else is DRF's.
"""
from __future__ import annotations

from rest_framework import serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.refusals import Refusal


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField(required=False)


def error_responses(*statuses: int) -> dict[int, type[ErrorSerializer]]:
    """The schema's error answers of an operation: each status with the one error shape."""
    return dict.fromkeys(statuses, ErrorSerializer)


ERRORS = error_responses(400, 401, 403, 404)  # what most operations of the API can answer


# The HTTP status of each refusal kind, filled in by the apps' API layers; any refusal not listed is a 400.
REFUSAL_STATUS: dict[type[Refusal], int] = {}


def answer_refusals(statuses: dict[type[Refusal], int]) -> None:
    """Record the HTTP status of each refusal kind in ``statuses`` (an app's API calls this once, when ready)."""
    REFUSAL_STATUS.update(statuses)


def refusal_status(exc: Refusal) -> int:
    return next((REFUSAL_STATUS[kind] for kind in type(exc).__mro__ if kind in REFUSAL_STATUS), 400)


def refused(exc: Refusal, **extra) -> Response:
    """A service's refusal as a 4xx with the message, a stable code, the refusal's own ``details`` and the
    ``extra`` fields a view adds."""
    return Response({"detail": exc.message, "code": exc.code, **exc.details(), **extra}, status=refusal_status(exc))


def exception_handler(exc, context):
    """DRF's exception handler, plus refusals: a refusal that leaves a view is answered by ``refused``."""
    if isinstance(exc, Refusal):
        return refused(exc)
    return drf_exception_handler(exc, context)


class JsonErrorsMixin:
    """For a view that also answers in another format (``?format=csv``, a file): its errors are JSON all the same,
    and say so in their Content-Type."""

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if isinstance(response, Response) and response.status_code >= 400:
            response.accepted_renderer, response.accepted_media_type = JSONRenderer(), "application/json"
        return response
