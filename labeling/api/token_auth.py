"""API tokens that expire and can be revoked (DRF's Token with a created-at check).

DRF's own token is kept rather than a new library (django-rest-knox): clients, the media view and the
tests already speak ``Authorization: Token <key>``, and a token per user with an age limit and a
revoke endpoint is all the issue asks for. A token older than TAGRANK_TOKEN_TTL_HOURS is deleted on
its next use; the token endpoint then issues a fresh one.

Deactivation (see ``labeling.services.api_tokens``): turning a membership off ends that project
for the user at once, because every project-scoped check requires an active membership. The token
itself is deleted only when the user has no active membership left (and is not staff): a rater of
two projects who leaves one keeps using the other. A user whose account is deactivated loses every
token.
"""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed


def token_ttl() -> timedelta:
    return timedelta(hours=int(settings.TAGRANK_TOKEN_TTL_HOURS))


def is_expired(token: Token, now=None) -> bool:
    return token.created <= (now or timezone.now()) - token_ttl()


def issue_token(user) -> Token:
    """The user's live token, or a new one when there is none or it has expired."""
    token, created = Token.objects.get_or_create(user=user)
    if not created and is_expired(token):
        token.delete()
        token = Token.objects.create(user=user)
    return token


class ExpiringTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key):
        user, token = super().authenticate_credentials(key)  # unknown key or inactive user: 401
        if is_expired(token):
            token.delete()
            raise AuthenticationFailed("Token expired: ask for a new one at /api/v1/auth/token/.")
        return user, token
