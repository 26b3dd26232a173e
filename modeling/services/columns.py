"""Query results as numpy columns, for the services that read a whole project (10^6 comparisons).

Through the ORM, even ``values_list`` turns every value into a Python object: about 10 s for 10^6
comparisons of 8 columns on a small machine. On PostgreSQL the same SELECT (built by the ORM, so it
keeps its filters and annotations) is streamed with ``COPY ... TO STDOUT (FORMAT BINARY)``; every
column is cast to an 8-byte type, so each row has a fixed layout and numpy reads the whole result in
place. Other databases (SQLite, the embedded default) go through ``values_list``.
"""
from __future__ import annotations

import numpy as np
from django.db import connections
from django.db.models import BigIntegerField, F, FloatField, QuerySet
from django.db.models.functions import Cast

_BINARY_HEADER = 19  # PGCOPY signature (11), flags (4), header extension length (4)
_TRAILER = 2  # the int16 -1 that ends the data


def fetch_columns(queryset: QuerySet, columns: dict[str, type]) -> dict[str, np.ndarray]:
    """The queryset's rows as one array per column: ``{"field or annotation": int | float}``.

    Values must not be NULL (Coalesce them in an annotation first).
    """
    names = list(columns)
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        rows = list(queryset.values_list(*names))
        table = np.array(rows, dtype=np.float64 if float in columns.values() else np.int64).reshape(-1, len(names))
        return {name: table[:, index].astype(np.float64 if kind is float else np.int64)
                for index, (name, kind) in enumerate(columns.items())}

    # 8-byte columns under fresh names (annotations may not shadow fields).
    casts = {
        f"_column_{index}": Cast(F(name), FloatField() if kind is float else BigIntegerField())
        for index, (name, kind) in enumerate(columns.items())
    }
    sql, params = queryset.annotate(**casts).values_list(*casts).query.sql_with_params()
    with connection.cursor() as cursor:
        import psycopg

        raw = cursor.cursor  # psycopg's own cursor: Django's wrapper has no COPY
        select = psycopg.ClientCursor(raw.connection).mogrify(sql, params)  # COPY takes no parameters
        buffer = bytearray()
        with raw.copy(f"COPY ({select}) TO STDOUT (FORMAT BINARY)") as copy:
            while data := copy.read():
                buffer += data
    fields = [("field_count", ">i2")]
    for index, kind in enumerate(columns.values()):
        fields += [(f"length_{index}", ">i4"), (f"value_{index}", ">f8" if kind is float else ">i8")]
    layout = np.dtype(fields)
    n_rows = (len(buffer) - _BINARY_HEADER - _TRAILER) // layout.itemsize
    body = np.frombuffer(buffer, dtype=layout, count=n_rows, offset=_BINARY_HEADER)
    if n_rows and (np.any(body["field_count"] != len(names))
                   or any(np.any(body[f"length_{index}"] != 8) for index in range(len(names)))):
        raise ValueError("unexpected COPY layout (a NULL value, or a column that is not 8 bytes)")
    return {name: body[f"value_{index}"].astype(np.float64 if kind is float else np.int64)
            for index, (name, kind) in enumerate(columns.items())}


def image_positions(image_ids: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position [K] of each of ``ids`` in ``image_ids`` (ascending), known [K] bool: the id is there at all)."""
    image_ids, ids = np.asarray(image_ids), np.asarray(ids)
    if image_ids.shape[0] == 0:
        return np.zeros(ids.shape[0], dtype=np.int64), np.zeros(ids.shape[0], dtype=bool)
    index = np.searchsorted(image_ids, ids)
    return index, (index < image_ids.shape[0]) & (image_ids[np.minimum(index, image_ids.shape[0] - 1)] == ids)


def per_image(image_ids: np.ndarray, ids: np.ndarray, values: np.ndarray, fill: float = np.nan) -> np.ndarray:
    """``values`` given for image ``ids``, placed in ``image_ids`` (ascending) order (``fill`` where none)."""
    placed = np.full(image_ids.shape[0], fill, dtype=np.float64)
    index, known = image_positions(image_ids, ids)
    placed[index[known]] = values[known]
    return placed
