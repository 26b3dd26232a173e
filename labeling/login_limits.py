"""The client's address as Tagrank trusts it, and what a locked-out login answers (django-axes hooks).

X-Forwarded-For is read only behind TAGRANK_PROXY_COUNT proxies, and then only the entry the nearest
trusted proxy appended: anything further left was written by the client and can be forged. DRF's
throttles use the same rule through its NUM_PROXIES setting.
"""
from __future__ import annotations

from axes.handlers.proxy import AxesProxyHandler
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
