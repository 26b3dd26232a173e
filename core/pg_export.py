"""The PostgreSQL fast path of the streamed exports: PostgreSQL renders the rows, Python only passes them on.

``core.streaming`` builds every cell in Python (about 10^4 rows/s for a 20-column export). Here, on
PostgreSQL, an export given as SQL (one expression per ``Column``, a FROM … WHERE, and an id to page on)
is read in keyset ranges of ``CHUNK_SIZE`` rows, each range one short statement (no cursor or
transaction stays open while a slow client reads, as in ``keyset_chunks``):

- CSV: ``COPY (SELECT …) TO STDOUT WITH (FORMAT csv)``, the bytes passed on as they are. The cells are
  rendered in SQL exactly as ``iter_csv`` writes them: times as ``datetime.isoformat()``, booleans as
  true/false, empty text as an empty cell, and text that a spreadsheet would run as a formula with a
  leading apostrophe (``spreadsheet_safety``'s rule, as a regular expression).
- JSON Lines: COPY of one JSON text per row, built by ``to_json`` and concatenation in ``iter_jsonl``'s
  form (keys in column order, no spaces; PostgreSQL escapes text as Python's json does).
- Parquet: the range as raw CSV (times as epoch microseconds) parsed by pyarrow into columns, one row
  group per range: no Python object per cell.

tests/labeling/test_export_fast_path.py holds the fast path to the generic one, byte for byte.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Iterator

from django.db import connection, transaction

from core import streaming
from core.streaming import Column

CHUNK_SIZE = 50_000
# One process per export (no parallel workers: an export is not worth the other requests' cores), and
# extra_float_digits 1, PostgreSQL's default: the shortest exact float text.
_RANGE_SETTINGS = ("SET LOCAL max_parallel_workers_per_gather = 0", "SET LOCAL extra_float_digits = 1")
# ``Query.lookups``: join by index look-ups (nested loops), whose cost follows the range, where PostgreSQL
# would otherwise hash a whole joined table (every image) for every range.
_LOOKUP_SETTINGS = ("SET LOCAL enable_hashjoin = off", "SET LOCAL enable_mergejoin = off")

# spreadsheet_safety: a cell starting with = + - @ TAB or CR that is not a number gets a leading apostrophe.
# The first character is tested with IN, not a regular expression: most cells end there, and cheaply.
_FORMULA_START = "('=', '+', '-', '@', E'\\t', E'\\r')"
_NUMBER = r"'^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$'"


def available() -> bool:
    return connection.vendor == "postgresql"


@dataclass(frozen=True)
class Query:
    """An export as SQL. ``expressions``: one per column, in order. ``source``: ``FROM … WHERE …`` with
    named parameters (``%(name)s``) from ``params``. ``key``: the unique integer the rows are ordered and
    paged by (e.g. ``c.id``). ``key_source``: a cheaper FROM … WHERE that yields the same keys (no joins).
    ``lookups``: join by index look-ups only, for joined tables that are not bounded by the range."""

    columns: list[Column]
    expressions: list[str]
    source: str
    key: str
    key_source: str
    params: dict
    lookups: bool = False


# --- Cells rendered in SQL --------------------------------------------------------------------------


def iso_time(expression: str) -> str:
    """``datetime.isoformat()`` of a UTC timestamp: microseconds only when not zero, then ``+00:00``."""
    text = f"to_char({expression} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') || '+00:00'"
    return f"replace({text}, '.000000+', '+')"


def python_float(expression: str) -> str:
    """``repr()`` of a float8, as ``csv`` writes a Python float: PostgreSQL's shortest digits (extra_float_digits
    1), with ``.0`` on whole numbers, fixed notation up to 1e16 (PostgreSQL switches at 1e15) and nan / inf.
    Beyond 1e16 PostgreSQL may spell a whole number with 17 digits where Python uses fewer: the same value.
    Tested on numbers (cheap) before any text is made: most cells (a fraction below 1e15) take the first branch,
    which NaN, the infinities and NULL fail."""
    x, text = expression, f"({expression})::text"
    digits = f"replace(split_part(ltrim({text}, '-'), 'e', 1), '.', '')"
    fixed = (f"CASE WHEN {x} < 0 THEN '-' ELSE '' END || CASE WHEN length({digits}) <= 16 "
             f"THEN rpad({digits}, 16, '0') || '.0' ELSE left({digits}, 16) || '.' || substr({digits}, 17) END")
    return (f"(CASE WHEN abs({x}) < 1e15 AND {x} <> trunc({x}) THEN {text} "
            f"WHEN {x} = 'NaN'::float8 THEN 'nan' WHEN {x} = 'Infinity'::float8 THEN 'inf' "
            f"WHEN {x} = '-Infinity'::float8 THEN '-inf' "
            f"WHEN abs({x}) < 1e15 AND {x} = trunc({x}) THEN {text} || '.0' "
            f"WHEN abs({x}) >= 1e15 AND abs({x}) < 1e16 THEN {fixed} ELSE {text} END)")


def neutralised(expression: str) -> str:
    return (f"(CASE WHEN left({expression}, 1) IN {_FORMULA_START} AND {expression} !~ {_NUMBER} "
            f"THEN '''' || {expression} ELSE {expression} END)")


def _csv_cell(expression: str, kind: str) -> str:
    if kind == "str":
        return f"NULLIF({neutralised(expression)}, '')"  # csv writes "" and None alike: an empty cell
    if kind == "time":
        return iso_time(expression)
    if kind == "bool":
        return f"({expression})::text"  # true / false
    if kind == "int":
        return expression
    if kind == "float":
        return python_float(expression)
    if kind == "json":  # JSON text: never empty, and never a formula (a leading "-" only starts a number)
        return expression
    raise ValueError(f"no fast CSV path for {kind} columns")


def _json_value(expression: str, kind: str) -> str:
    if kind == "str":
        value = f"to_json(({expression})::text)::text"
    elif kind == "time":
        value = f"'\"' || {iso_time(expression)} || '\"'"  # digits, dashes and colons: nothing to escape
    elif kind in ("int", "bool"):
        value = f"({expression})::text"
    else:
        raise ValueError(f"no fast JSON Lines path for {kind} columns")
    return f"COALESCE({value}, 'null')"


def _arrow_cell(expression: str, kind: str) -> str:
    if kind == "time":
        return f"(extract(epoch FROM {expression}) * 1000000)::bigint"
    if kind == "bool":
        return f"({expression})::text"
    if kind in ("int", "str"):
        return expression
    raise ValueError(f"no fast Parquet path for {kind} columns")


def _sql_text(text: str) -> str:
    """``text`` as an SQL string literal inside a statement run with named parameters (``%`` doubled)."""
    return "'" + text.replace("'", "''").replace("%", "%%") + "'"


def _jsonl_line(query: Query) -> str:
    # Keys as iter_jsonl writes them (a column may be named by a user: a criterion's key).
    parts = [
        _sql_text(("," if index else "{") + json.dumps(column.name, ensure_ascii=False) + ":")
        + f" || {_json_value(expression, column.kind)}"
        for index, (column, expression) in enumerate(zip(query.columns, query.expressions))
    ]
    return " || ".join(parts) + " || '}'"


# --- Reading in keyset ranges -----------------------------------------------------------------------


def _ranges(query: Query, chunk_size: int) -> Iterator[tuple[int, int]]:
    """(after, up to) key bounds of consecutive ranges of ``chunk_size`` rows, in key order."""
    last = 0  # keys are positive ids
    while True:
        (upper,) = _fetch_one(
            f"SELECT max(k) FROM (SELECT {query.key} AS k {query.key_source} AND {query.key} > %(after)s "
            f"ORDER BY {query.key} LIMIT {int(chunk_size)}) AS page",
            {**query.params, "after": last},
        )
        if upper is None:
            return
        yield last, upper
        last = upper


def _range_sql(query: Query, select: str) -> str:
    return (f"SELECT {select} {query.source} AND {query.key} > %(after)s AND {query.key} <= %(upto)s "
            f"ORDER BY {query.key}")


def _cursor():
    connection.ensure_connection()
    return connection.connection.cursor()


def _fetch_one(sql: str, params: dict):
    with connection.wrap_database_errors, _cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _copy(query: Query, sql: str, after: int, upto: int, options: str = "FORMAT csv") -> bytes:
    """The rows of ``sql`` as COPY writes them, read to the end before they are handed on (one short statement)."""
    params = {**query.params, "after": after, "upto": upto}
    with transaction.atomic(), connection.wrap_database_errors, _cursor() as cursor:
        for setting in _RANGE_SETTINGS + (_LOOKUP_SETTINGS if query.lookups else ()):
            cursor.execute(setting)
        with cursor.copy(f"COPY ({sql}) TO STDOUT WITH ({options})", params) as copy:
            return b"".join(copy)


def iter_csv(query: Query, chunk_size: int = CHUNK_SIZE) -> Iterator[str | bytes]:
    """``streaming.iter_csv``'s bytes: its header, then one COPY per range."""
    yield from streaming.iter_csv(query.columns, [])  # the header
    select = ", ".join(_csv_cell(e, c.kind) for c, e in zip(query.columns, query.expressions))
    for after, upto in _ranges(query, chunk_size):
        yield _copy(query, _range_sql(query, select), after, upto)


# One JSON text per row, as COPY's CSV with a quote and a delimiter that JSON text never holds raw (to_json
# escapes every control character), so each line is written as it is: no quoting, no escaping.
_AS_IS = r"FORMAT csv, QUOTE E'\x01', DELIMITER E'\x02'"


def iter_jsonl(query: Query, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """``streaming.iter_jsonl``'s bytes, one COPY per range."""
    sql = _range_sql(query, _jsonl_line(query))
    for after, upto in _ranges(query, chunk_size):
        yield _copy(query, sql, after, upto, _AS_IS)


def iter_parquet(query: Query, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """``streaming.iter_parquet``'s rows and schema, one row group per range."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    schema = streaming.arrow_schema(query.columns)
    read_types = {
        column.name: pa.int64() if column.kind == "time" else field.type
        for column, field in zip(query.columns, schema)
    }
    read = dict(
        read_options=pa_csv.ReadOptions(column_names=[column.name for column in query.columns]),
        parse_options=pa_csv.ParseOptions(newlines_in_values=True),
        # An unquoted empty cell is NULL, a quoted one ("") empty text: how COPY writes them.
        convert_options=pa_csv.ConvertOptions(
            column_types=read_types, null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=False,
            true_values=["true"], false_values=["false"],
        ),
    )
    select = ", ".join(_arrow_cell(e, c.kind) for c, e in zip(query.columns, query.expressions))

    def tables():
        for after, upto in _ranges(query, chunk_size):
            data = _copy(query, _range_sql(query, select), after, upto)
            if not data:
                continue
            table = pa_csv.read_csv(io.BytesIO(data), **read)
            yield pa.Table.from_arrays(
                [table.column(index).cast(field.type) for index, field in enumerate(schema)], schema=schema
            )

    return streaming.iter_parquet_tables(schema, tables())


WRITERS = {"csv": iter_csv, "jsonl": iter_jsonl, "parquet": iter_parquet}
