"""The comparisons export's PostgreSQL fast path (core/pg_export.py) writes what the generic writers
(core/streaming.py over data_exports.comparison_chunks) write: the same CSV and JSON Lines bytes, the
same Parquet rows and schema, on text built to trip it (formulas, numbers, quotes, line breaks, empty
text, non-ASCII digits, control characters). It runs on whichever database the tests use: on
PostgreSQL it compares the two paths, elsewhere ``comparison_export`` is the generic path."""
import csv
import io
from datetime import datetime, timedelta, timezone as dt_timezone

import pyarrow.parquet as pq
import pytest

from core import pg_export, streaming
from labeling.models import Comparison, GoldPair, Image, PairLease, Project
from labeling.services import data_exports
from labeling.services.imports import store_image

AWKWARD = [
    "=HYPERLINK(\"http://x\",\"y\")", "-1.5e3", "+3", "-", "@SUM(A1)", "\tcmd", "\rcmd", "a\rb", "two\nlines",
    'say "hi"', "comma,here", "", "naïve ☃", "-٣", "back\\slash", "ctrl\x01char", "+.5", "-A1", " =spaced",
]


def joined(pieces) -> bytes:
    return b"".join(piece.encode() if isinstance(piece, str) else piece for piece in pieces)


def fast(project, output: str):
    """The PostgreSQL path in ranges of two rows (several statements), or the export as served elsewhere."""
    if pg_export.available():
        return pg_export.WRITERS[output](data_exports.comparison_query(project), chunk_size=2)
    return data_exports.comparison_export(project, output)


def generic(project, output: str):
    return streaming.WRITERS[output](data_exports.COMPARISON_COLUMNS, data_exports.comparison_chunks(project))


@pytest.fixture
def awkward(project, images, make_member, image_bytes):
    """One comparison per awkward text, in every text column, with every outcome, times with and without
    microseconds, leases with and without a gold pair; and another project's comparison that must not appear."""
    raters = [make_member(project, f"r{index}{text}", "rater") for index, text in enumerate(AWKWARD[:6])]
    for index, image in enumerate(images):
        Image.objects.filter(pk=image.pk).update(
            external_id=AWKWARD[index % len(AWKWARD)], original_name=AWKWARD[(index + 7) % len(AWKWARD)]
        )
    gold = GoldPair.objects.create(project=project, image_a=images[0], image_b=images[1], expected="a")
    base = datetime(2026, 12, 1, 10, 0, 0, tzinfo=dt_timezone.utc)
    outcomes = ["a", "b", "tie", "bad"]
    for index, text in enumerate(AWKWARD):
        a, b = images[index % 8], images[(index + 3) % 8]
        comparison = Comparison.objects.create(
            project=project, image_a=a, image_b=b, outcome=outcomes[index % 4], rater=raters[index % len(raters)],
            client_key=f"{text}{index}" if index % 3 else text, response_ms=None if index % 5 == 0 else 100 * index,
            is_gold=index % 4 == 0, gold_correct=[None, True, False][index % 3],
        )
        created = base + timedelta(seconds=index, microseconds=0 if index % 2 else 1234 * index)
        Comparison.objects.filter(pk=comparison.pk).update(created_at=created)
        if index % 2 == 0:
            PairLease.objects.create(
                token=f"12345678-1234-5678-1234-5678123456{index:02d}", project=project, rater=comparison.rater,
                gold=gold if index % 4 == 0 else None, image_a=a, image_b=b, state=PairLease.State.JUDGED,
                expires_at=created + timedelta(minutes=5, microseconds=index), comparison=comparison,
            )
    other = Project.objects.create(name="Other", slug="other")
    foreign = [store_image(other, f"o{i}.png", image_bytes(seed=20 + i))[0] for i in (1, 2)]
    Comparison.objects.create(project=other, image_a=foreign[0], image_b=foreign[1], outcome="a", rater=raters[0],
                              client_key="foreign")
    return project


@pytest.mark.django_db
@pytest.mark.parametrize("output", ["csv", "jsonl"])
def test_fast_path_writes_the_generic_bytes(awkward, output):
    written = joined(fast(awkward, output))
    assert written == joined(generic(awkward, output))
    if output == "csv":
        rows = list(csv.reader(io.StringIO(written.decode(), newline="")))
        assert len(rows) == 1 + len(AWKWARD)  # a CR or LF inside a cell is quoted: one record per comparison
        assert {row[13] for row in rows[1:]} >= {  # client_key
            "'=HYPERLINK(\"http://x\",\"y\")", "'-", "'\rcmd", 'say "hi"', "a\rb7", "two\nlines8", "-1.5e31", "'-٣13",
        }


@pytest.mark.django_db
def test_fast_path_writes_the_generic_parquet_rows(awkward):
    fast_table = pq.read_table(io.BytesIO(joined(fast(awkward, "parquet"))))
    generic_table = pq.read_table(io.BytesIO(joined(generic(awkward, "parquet"))))
    assert fast_table.schema == generic_table.schema
    assert fast_table.to_pylist() == generic_table.to_pylist()
    assert len(fast_table) == len(AWKWARD)


@pytest.mark.django_db
@pytest.mark.parametrize("output", ["csv", "jsonl", "parquet"])
def test_fast_path_of_a_project_without_comparisons(project, output):
    written, expected = joined(fast(project, output)), joined(generic(project, output))
    if output == "parquet":
        assert pq.read_table(io.BytesIO(written)).schema == pq.read_table(io.BytesIO(expected)).schema
    else:
        assert written == expected
