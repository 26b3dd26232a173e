"""Streamed tabular exports in CSV, JSON Lines and Parquet, in constant memory.

An export is a list of ``Column``s and an iterator of chunks (lists of tuples in column order). Chunks
come from ``keyset_chunks``: ``id > last`` ordered by id, ``values_list``, one chunk at a time, so no
cursor or transaction stays open while a slow client reads and memory does not grow with the table.
The writers turn each chunk into one piece of the response: CSV and JSONL text, or one Parquet row
group (pyarrow), with the Parquet footer written after the last chunk.
"""
from __future__ import annotations

import datetime as dt
import io
import json
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from django.db.models import QuerySet
from django.http import StreamingHttpResponse

from core import spreadsheet_safety

CHUNK_SIZE = 2000
FORMATS = ("csv", "jsonl", "parquet")
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/jsonl; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
}


@dataclass(frozen=True)
class Column:
    """One exported field. ``kind``: int, float, str, bool, time (UTC timestamp), json (nested value) or bytes
    (Parquet only)."""

    name: str
    kind: str = "str"


def keyset_chunks(
    queryset: QuerySet, fields: list[str], chunk_size: int = CHUNK_SIZE, key_index: int = 0
) -> Iterator[list[tuple]]:
    """Yield ``values_list(*fields)`` rows of ``queryset`` in id order, ``chunk_size`` at a time.

    ``fields[key_index]`` must be the primary key; each chunk is its own short query (``pk > last``).
    """
    last = None
    while True:
        page = queryset if last is None else queryset.filter(pk__gt=last)
        rows = list(page.order_by("pk").values_list(*fields)[:chunk_size])
        if not rows:
            return
        last = rows[-1][key_index]
        yield rows


def mapped(chunks: Iterable[list[tuple]], row: Callable[[tuple], tuple]) -> Iterator[list[tuple]]:
    """Chunks with ``row`` applied to every row (e.g. to derive a column from fetched ones)."""
    for chunk in chunks:
        yield [row(values) for values in chunk]


def _json_default(value):
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return str(value)


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_json_default).encode


def _csv_cell(value, kind: str):
    if value is None:
        return ""
    if kind == "json":
        return _dumps(value)
    if kind == "time":
        return value.isoformat()
    if kind == "bool":
        return "true" if value else "false"
    return value


def iter_csv(columns: list[Column], chunks: Iterable[list[tuple]]) -> Iterator[str]:
    """A header row, then one piece of CSV text per chunk. JSON values are written as JSON text."""
    buffer = io.StringIO()
    writer = spreadsheet_safety.writer(buffer, lineterminator="\n")
    writer.writerow([column.name for column in columns])
    yield buffer.getvalue()
    # csv writes None as "" and numbers and text as they are: only these columns need converting.
    special = [(index, column.kind) for index, column in enumerate(columns) if column.kind in ("json", "time", "bool")]

    def converted(row):
        row = list(row)
        for index, kind in special:
            row[index] = _csv_cell(row[index], kind)
        return row

    for chunk in chunks:
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(map(converted, chunk) if special else chunk)
        yield buffer.getvalue()


def iter_jsonl(columns: list[Column], chunks: Iterable[list[tuple]]) -> Iterator[str]:
    """One JSON object per row; times as ISO 8601 text."""
    names = [column.name for column in columns]
    times = [index for index, column in enumerate(columns) if column.kind == "time"]

    def line(row):
        if times:
            row = list(row)
            for index in times:
                if row[index] is not None:
                    row[index] = row[index].isoformat()
        return _dumps(dict(zip(names, row)))

    for chunk in chunks:
        yield "\n".join(map(line, chunk)) + "\n" if chunk else ""


def arrow_schema(columns: list[Column]):
    import pyarrow as pa

    types = {
        "int": pa.int64(), "float": pa.float64(), "str": pa.string(), "bool": pa.bool_(),
        "time": pa.timestamp("us", tz="UTC"), "json": pa.string(), "bytes": pa.binary(),
    }
    return pa.schema([pa.field(column.name, types[column.kind]) for column in columns])


class _Drain:
    """A write-only file for pyarrow that hands back what was written since the last ``take``."""

    def __init__(self):
        self.parts: list[bytes] = []
        self.position = 0
        self.closed = False

    def write(self, data) -> int:
        data = bytes(data)
        self.parts.append(data)
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        return data


def iter_parquet(columns: list[Column], chunks: Iterable[list[tuple]]) -> Iterator[bytes]:
    """A Parquet file streamed one row group per chunk (JSON values as JSON text, zstd-compressed)."""
    import pyarrow as pa

    schema = arrow_schema(columns)
    json_columns = [index for index, column in enumerate(columns) if column.kind == "json"]

    def tables():
        for chunk in chunks:
            values = [list(column) for column in zip(*chunk)] if chunk else [[] for _ in columns]
            for index in json_columns:
                values[index] = [None if value is None else _dumps(value) for value in values[index]]
            yield pa.Table.from_arrays(
                [pa.array(column, type=field.type) for column, field in zip(values, schema)], schema=schema
            )

    return iter_parquet_tables(schema, tables())


def iter_parquet_tables(schema, tables) -> Iterator[bytes]:
    """A Parquet file of ``schema`` streamed one row group per Arrow table (zstd-compressed)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = _Drain()
    writer = pq.ParquetWriter(pa.PythonFile(sink, mode="w"), schema, compression="zstd")
    try:
        for table in tables:
            writer.write_table(table)
            data = sink.take()
            if data:
                yield data
    finally:
        writer.close()
    yield sink.take()


WRITERS = {"csv": iter_csv, "jsonl": iter_jsonl, "parquet": iter_parquet}


def streaming_response(
    output: str, columns: list[Column], chunks: Iterable[list[tuple]], file_stem: str, model_version_id: int | None
) -> StreamingHttpResponse:
    """The export as an attachment named ``<file_stem>[-v<model version>].<format>``; the header
    ``X-Model-Version`` names the model version too (empty when the project has none)."""
    return pieces_response(output, WRITERS[output](columns, chunks), file_stem, model_version_id)


def pieces_response(
    output: str, pieces: Iterable[str | bytes], file_stem: str, model_version_id: int | None
) -> StreamingHttpResponse:
    """``streaming_response`` of pieces already written (e.g. by ``core.pg_export``)."""
    response = StreamingHttpResponse(pieces, content_type=CONTENT_TYPES[output])
    name = file_stem + (f"-v{model_version_id}" if model_version_id else "")
    response["Content-Disposition"] = f'attachment; filename="{name}.{output}"'
    response["X-Model-Version"] = str(model_version_id or "")
    return response
