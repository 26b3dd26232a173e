"""``<id:…>``, the converter of every integer in a URL (API, pages): only numbers a database id can be.

Django's ``<int:…>`` takes any length of digits, and an id past the 64-bit range overflows the database
driver (a 500). ``[0-9]{1,18}`` stays below 2**63, so a longer number matches no route: a 404, like any
missing object. Registered when the labeling app is ready (``labeling/apps.py``), before any URL conf
loads; ``tests/test_authorization_matrix.py`` checks that no route uses ``<int:…>``.
"""
from __future__ import annotations

from django.urls import register_converter


class DatabaseIdConverter:
    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value) -> str:
        return str(value)


def register() -> None:
    register_converter(DatabaseIdConverter, "id")
