"""While the database or the broker cannot be reached, answer 503 with Retry-After instead of 500.

The errors that count as an outage and the answer to give: the API's error format ({"detail", "code"}) under
/api/, elsewhere the site's short "try again" page (``unavailable.html``), which needs neither the database nor a
session to render. Only connection-level errors count: a bug in a query (ProgrammingError, IntegrityError) is
still a 500. The site's middleware (``config/outage.py``) answers an outage in a view; a middleware that reads the
database before the view (``labeling/crowd_confinement.py``) answers its own the same way.
"""
from __future__ import annotations

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string


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
