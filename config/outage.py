"""While the database or the broker cannot be reached, answer 503 with Retry-After instead of 500.

The API answers in its error format ({"detail", "code"}); pages show a short "try again" page that
needs neither the database nor a session to render. Only connection-level errors count: a bug in a
query (ProgrammingError, IntegrityError) is still a 500.
"""
from __future__ import annotations

import logging

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string

log = logging.getLogger(__name__)


def _outage_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OperationalError, InterfaceError]
    try:  # the hot path runs some statements on psycopg cursors directly (labeling/services/pair_sql.py)
        import psycopg

        errors += [psycopg.OperationalError, psycopg.InterfaceError]
    except ImportError:
        pass
    try:  # a synchronous send to the broker, or the Redis cache behind throttles and login limits
        import kombu.exceptions
        import redis.exceptions

        errors += [kombu.exceptions.OperationalError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError]
    except ImportError:
        pass
    return tuple(errors)


OUTAGE_ERRORS = _outage_errors()


def is_outage(exc: BaseException) -> bool:
    return isinstance(exc, OUTAGE_ERRORS)


def outage_response(request) -> HttpResponse:
    seconds = int(settings.TAGRANK_RETRY_AFTER_SECONDS)
    message = "Tagrank cannot reach its database or task queue right now. Try again in a few seconds."
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": message, "code": "service_unavailable"}, status=503)
    else:
        html = render_to_string("unavailable.html", {"message": message, "retry_after": seconds})
        response = HttpResponse(html, status=503)
    response["Retry-After"] = str(seconds)
    response["Cache-Control"] = "no-store"
    return response


class OutageMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not is_outage(exception):
            return None
        log.warning("outage on %s %s: %s", request.method, request.path, exception)
        return outage_response(request)
