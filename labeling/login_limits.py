"""The client's address as Tagrank trusts it, what a locked-out login answers, and the two login limits
(django-axes hooks).

Failures are counted per user name *and* address (``AXES_FAILURE_LIMIT``: a guesser cannot lock a user
out from everywhere) and per address across user names (``TAGRANK_LOGIN_ADDRESS_FAILURE_LIMIT``, higher:
password spraying, one password tried on many names). django-axes compares one count with one limit, so
the handlers below report the address's count scaled to the per-name limit: the larger of the two reaches
``AXES_FAILURE_LIMIT`` exactly when either count reaches its own limit. A successful sign-in clears the
failures of that name at that address, never the address's total (a sprayer holding one real account
cannot wipe it).

X-Forwarded-For is read only behind TAGRANK_PROXY_COUNT proxies, and then only the entry the nearest
trusted proxy appended: anything further left was written by the client and can be forged. DRF's
throttles use the same rule through its NUM_PROXIES setting.
"""
from __future__ import annotations

from axes.handlers.cache import AxesCacheHandler
from axes.handlers.database import AxesDatabaseHandler
from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_client_cache_keys, get_credentials, get_failure_limit
from django.db.models import Sum
from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.http import JsonResponse
from django.shortcuts import render


def client_ip(request) -> str:
    remote = request.META.get("REMOTE_ADDR", "")
    proxies = int(settings.TAGRANK_PROXY_COUNT)
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if proxies <= 0 or not forwarded:
        return remote
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    if not hops:
        return remote
    return hops[-min(proxies, len(hops))]


def lockout_seconds() -> int:
    return int(settings.AXES_COOLOFF_TIME.total_seconds())


def lockout_response(request, original_response=None, credentials=None):
    """Too many failed sign-ins: 429 with Retry-After, as JSON on the API and as a page elsewhere."""
    seconds = lockout_seconds()
    message = f"Too many failed sign-ins. Try again in {max(1, seconds // 60)} minutes."
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": message, "code": "login_locked"}, status=429)
    else:
        response = render(request, "registration/locked_out.html", {"message": message}, status=429)
    response["Retry-After"] = str(seconds)
    return response


# Invitation links are secrets too: guessing them counts like a wrong password, per address.
GUESSED_LINK = {"username": "(invitation link)"}


def is_locked_out(request, credentials=None) -> bool:
    return not AxesProxyHandler.is_allowed(request, credentials or GUESSED_LINK)


def record_failed_guess(request, credentials=None) -> None:
    user_login_failed.send(sender=__name__, credentials=credentials or GUESSED_LINK, request=request)


# The order of AXES_LOCKOUT_PARAMETERS that the handlers below read: per name and address, then per address.
LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]


def combined_failures(per_name: int, per_address: int, request, credentials) -> int:
    """One count for axes to compare with AXES_FAILURE_LIMIT: at or over it when either count is at its limit."""
    name_limit = get_failure_limit(request, credentials)
    address_limit = max(1, int(settings.TAGRANK_LOGIN_ADDRESS_FAILURE_LIMIT))
    return max(per_name, per_address * name_limit // address_limit)


class _TwoLimits:
    def failure_counts(self, request, credentials) -> tuple[int, int]:
        raise NotImplementedError

    def get_failures(self, request, credentials=None) -> int:
        return combined_failures(*self.failure_counts(request, credentials), request, credentials)

    def user_login_failed(self, sender, credentials, request=None, **kwargs):
        already_locked = getattr(request, "axes_locked_out", False)
        super().user_login_failed(sender, credentials, request, **kwargs)
        if request is not None and not already_locked:
            # The cache handler decides with the largest raw count; decide again with both limits.
            request.axes_locked_out = self.get_failures(request, credentials) >= get_failure_limit(request, credentials)


class DatabaseLoginLimits(_TwoLimits, AxesDatabaseHandler):
    """Failures in the database (no shared cache)."""

    def failure_counts(self, request, credentials):
        per_name, per_address = (attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0
                                 for attempts in self.get_user_attempts(request, credentials))
        return per_name, per_address

    def reset_user_attempts(self, request, credentials=None) -> int:
        per_name = self.filter_user_attempts(request, credentials)[0]
        return per_name.delete()[0]


class CacheLoginLimits(_TwoLimits, AxesCacheHandler):
    """Failures in the shared cache (TAGRANK_CACHE_URL)."""

    def failure_counts(self, request, credentials):
        per_name, per_address = (self.cache.get(key, default=0) for key in get_client_cache_keys(request, credentials))
        return per_name, per_address

    def user_logged_in(self, sender, request, user, **kwargs):
        if settings.AXES_RESET_ON_SUCCESS:
            per_name_key = get_client_cache_keys(request, get_credentials(user.get_username()))[0]
            self.cache.delete(per_name_key)
