"""Checks on what a client sends to the API: query strings and ids within the database's range."""
from __future__ import annotations

from rest_framework import serializers

from core.limits import MAX_ID


class BoundedPrimaryKeyRelatedField(serializers.PrimaryKeyRelatedField):
    def to_internal_value(self, data):
        try:
            number = int(data)
        except (TypeError, ValueError):
            number = None  # not a number: the parent says so
        if number is not None and not isinstance(data, bool) and not 0 < number <= MAX_ID:
            self.fail("does_not_exist", pk_value=data)
        return super().to_internal_value(data)


def validated_query(serializer_class: type[serializers.Serializer], request) -> dict:
    """The request's query string checked by ``serializer_class`` (400 with the reasons if it does not pass)."""
    query = serializer_class(data=request.query_params)
    query.is_valid(raise_exception=True)
    return query.validated_data
