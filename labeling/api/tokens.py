"""Sign-in for scripts: an API token for a user name and password, and its revocation."""
from __future__ import annotations

from django.contrib.auth import authenticate
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from core.api_errors import ERRORS, ErrorSerializer
from labeling.api import serializers as s
from labeling.api.parsers import BoundedJSONParser
from labeling.api import token_auth
from labeling.login_limits import lockout_response
from labeling.services import api_tokens


class TokenView(APIView):
    """Exchange a user name and password for an API token (the same token until it expires or is revoked).

    JSON only: no multipart or form parsing on an anonymous endpoint. Failed attempts count towards the
    login limit (django-axes) shared with the login page."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"
    parser_classes = [BoundedJSONParser]

    @extend_schema(
        request=s.TokenRequestSerializer,
        responses={200: s.TokenResponseSerializer, 400: ErrorSerializer, 429: ErrorSerializer},
        auth=[],
        tags=["auth"],
    )
    def post(self, request):
        form = s.TokenRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        user = authenticate(request, username=form.validated_data["username"], password=form.validated_data["password"])
        if getattr(request, "axes_locked_out", False):
            return lockout_response(request)
        if user is None or not user.is_active:
            return Response(
                {"detail": "Unknown user name or wrong password.", "code": "invalid_credentials"}, status=400
            )
        token = token_auth.issue_token(user)
        return Response({"token": token.key, "expires_at": token.created + token_auth.token_ttl()})


class TokenRevokeView(APIView):
    """Revoke the caller's API token (sign out every script using it); the next token request issues a new one."""

    @extend_schema(request=None, responses={204: OpenApiResponse(description="Revoked."), **ERRORS}, tags=["auth"])
    def post(self, request):
        api_tokens.revoke_tokens(request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
