"""Prepared statements for the rating hot path, and rows turned into model instances without the ORM.

The rating loop's statements (pair serving, leases, token and membership look-ups) are plain
parameterised SQL: building the equivalent ORM queryset, or a ``RawQuerySet``, costs more CPU on a
small server than the database spends answering. On PostgreSQL each is prepared on the server once per
connection; elsewhere (SQLite) it runs on Django's cursor.
"""
from __future__ import annotations

import uuid
from datetime import datetime
from datetime import timezone as dt_timezone

import psycopg
from django.db import connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime


def execute(sql: str, params) -> list[tuple]:
    """Run one hot-path statement. On PostgreSQL it is prepared on the server (planned once per connection;
    Django's own cursors bind parameters on the client, so PostgreSQL would plan it on every request).
    A pooler in transaction mode (PgBouncer before 1.21) would need prepared statements turned off here.
    Errors surface as Django's (``IntegrityError``, ``OperationalError``), as from the ORM."""
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else []
    connection.ensure_connection()  # the same connection, so the same transaction as the ORM's
    cursor = _cursor_of(connection.connection)
    with connection.wrap_database_errors:
        cursor.execute(sql, params, prepare=True)
        return cursor.fetchall() if cursor.description else []


def _cursor_of(database_connection: psycopg.Connection) -> psycopg.Cursor:
    """One cursor per psycopg connection, made on first use: a new cursor per statement costs CPU."""
    cursor = getattr(database_connection, "_tagrank_hot_cursor", None)
    if cursor is None or cursor.closed:
        cursor = database_connection._tagrank_hot_cursor = psycopg.Cursor(database_connection)
    return cursor


def db_time(value: datetime):
    return connection.ops.adapt_datetimefield_value(value)


def from_db_time(value) -> datetime | None:
    """A datetime as the ORM gives it (aware, UTC). SQLite returns a column as a naive datetime and an
    expression (``MIN(...)``) as text; Django stores both as naive UTC."""
    if value is None:
        return None
    parsed = value if isinstance(value, datetime) else parse_datetime(value)
    return timezone.make_aware(parsed, dt_timezone.utc) if timezone.is_naive(parsed) else parsed


def model_from_row(model, attnames, values):
    """A model instance from selected columns (``attnames``; the others stay deferred), as the ORM loads it.

    Converts what SQLite returns differently from PostgreSQL for the field types the hot path reads."""
    converted = []
    for name, value in zip(attnames, values):
        kind = model._meta.get_field(name).get_internal_type()
        if value is not None and kind == "DateTimeField":
            value = from_db_time(value)
        elif value is not None and kind == "BooleanField":
            value = bool(value)
        elif isinstance(value, str) and kind == "UUIDField":
            value = uuid.UUID(value)
        converted.append(value)
    return model.from_db("default", attnames, converted)


def insert(instance, attnames):
    """INSERT ``instance``'s ``attnames`` with one prepared statement and set its new id, as a model save
    would (no signals are sent). For rows the hot path writes on every request."""
    meta = instance._meta
    fields = [meta.get_field(name) for name in attnames]
    (instance.pk,) = execute(
        f"INSERT INTO {meta.db_table} ({', '.join(field.column for field in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))}) RETURNING {meta.pk.column}",
        [field.get_db_prep_save(getattr(instance, field.attname), connection) for field in fields],
    )[0]
    instance._state.adding, instance._state.db = False, "default"
    return instance
