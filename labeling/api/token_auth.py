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
from django.contrib.auth import get_user_model
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed

from core import prepared_sql


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


def token_and_user(key: str) -> tuple[Token, object] | None:
    """The token ``key`` and its user in one prepared statement: it runs on every API request, and DRF's
    ``select_related`` lookup costs more CPU to build than the database spends answering it."""
    User = get_user_model()
    fields = [field.attname for field in User._meta.concrete_fields]
    rows = prepared_sql.execute(
        f"SELECT {', '.join('u.' + User._meta.get_field(name).column for name in fields)}, t.created "
        f"FROM {User._meta.db_table} u JOIN {Token._meta.db_table} t ON t.user_id = u.{User._meta.pk.column} "
        "WHERE t.key = %s",
        [key],
    )
    if not rows:
        return None
    *user_values, created = rows[0]
    user = prepared_sql.model_from_row(User, fields, user_values)
    token = Token(key=key, user=user, created=prepared_sql.from_db_time(created))
    token._state.adding, token._state.db = False, user._state.db
    return token, user


class ExpiringTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key):
        found = token_and_user(key)
        if found is None:
            raise AuthenticationFailed(_("Invalid token."))
        token, user = found
        if not user.is_active:
            raise AuthenticationFailed(_("User inactive or deleted."))
        if is_expired(token):
            token.delete()
            raise AuthenticationFailed("Token expired: ask for a new one at /api/v1/auth/token/.")
        return user, token


def request_user(request):
    """The session user, or the user of a valid API token (outside DRF's views: media files, body limits)."""
    if request.user.is_authenticated:
        return request.user
    try:
        found = ExpiringTokenAuthentication().authenticate(request)
    except AuthenticationFailed:
        return request.user
    return found[0] if found else request.user
