"""API clients for tests: signed in with the user's token (as a script or an engineer's client is), or with
authentication forced (when a test is about the view's logic, not about signing in)."""
from __future__ import annotations

from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient


def token_client(user=None) -> APIClient:
    """A DRF client that sends the user's token; ``token_client()`` is anonymous."""
    client = APIClient()
    if user is not None:
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def signed_in(user) -> APIClient:
    """A DRF client authenticated as ``user`` without a token."""
    client = APIClient()
    client.force_authenticate(user)
    return client
