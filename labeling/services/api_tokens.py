"""Revoking API tokens when a user leaves: what deactivating a membership or an account does to tokens.

A membership turned off ends that project for the user at once (every project check requires an active
membership); the token goes only when no active membership is left, so a rater of two projects who
leaves one keeps the other. A deactivated account loses its token (DRF refuses inactive users anyway),
and so does an account whose password changes (the receivers are in ``labeling/signals.py``).
"""
from __future__ import annotations

from rest_framework.authtoken.models import Token

from labeling.models import Membership


def revoke_tokens(user) -> int:
    return Token.objects.filter(user=user).delete()[0]


def revoke_if_no_active_membership(user) -> bool:
    """Delete the user's token unless another project still has them (staff keep theirs)."""
    if not user.is_active:
        return revoke_tokens(user) > 0
    if user.is_staff or user.is_superuser:
        return False
    if Membership.objects.filter(user=user, is_active=True).exists():
        return False
    return revoke_tokens(user) > 0
