"""The comparisons and scores exports' PostgreSQL fast path (core/pg_export.py) writes what the generic writers
(core/streaming.py over data_exports.comparison_chunks) write: the same CSV and JSON Lines bytes, the
same Parquet rows and schema, on text built to trip it (formulas, numbers, quotes, line breaks, empty
text, non-ASCII digits, control characters). It runs on whichever database the tests use: on
PostgreSQL it compares the two paths, elsewhere ``comparison_export`` is the generic path."""
import csv
import io
import json
from datetime import datetime, timedelta, timezone as dt_timezone

import pyarrow.parquet as pq
import pytest

from core import pg_export, streaming
from labeling.models import Comparison, CriterionAnswer, GoldPair, Image, ImageTag, PairLease, Project, ReferenceRating, Tag
from labeling.services import data_exports
from labeling.services.imports import store_image
from modeling.models import CriterionScore, HumanScore, ImageScore, ModelVersion
from modeling.services import exports

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
    return streaming.WRITERS[output](data_exports.comparison_columns(project), data_exports.comparison_chunks(project))


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
def test_fast_path_writes_the_generic_criteria_answers(awkward, output):
    """Several criteria: the answer_<key> columns agree, answers missing or not, across ranges of two rows."""
    awkward.criteria = [{"key": "alignment", "question": "Prompt?"}, {"key": "overall", "question": "Overall?"},
                        {"key": "artifacts_2", "question": "Fewer artifacts?"}]
    awkward.save(update_fields=["criteria"])
    outcomes = ["a", "b", "tie", "bad"]
    for index, comparison in enumerate(Comparison.objects.filter(project=awkward).order_by("pk")):
        for offset, key in enumerate(["alignment", "overall", "artifacts_2"][: index % 4]):
            CriterionAnswer.objects.create(comparison=comparison, criterion=key, outcome=outcomes[(index + offset) % 4])
    written, expected = joined(fast(awkward, output)), joined(generic(awkward, output))
    if output == "parquet":
        fast_table, generic_table = (pq.read_table(io.BytesIO(data)) for data in (written, expected))
        assert fast_table.schema == generic_table.schema
        rows = fast_table.to_pylist()
        assert rows == generic_table.to_pylist()
    else:
        assert written == expected
        if output == "csv":
            rows = list(csv.DictReader(io.StringIO(written.decode(), newline="")))
        else:
            rows = [json.loads(line) for line in written.splitlines()]
    assert len(rows) == len(AWKWARD)
    assert [row["answer_alignment"] or None for row in rows[:4]] == [None, "b", "tie", "bad"]
    assert [row["answer_artifacts_2"] or None for row in rows[:4]] == [None, None, None, "b"]


@pytest.mark.django_db
@pytest.mark.parametrize("output", ["csv", "jsonl", "parquet"])
def test_fast_path_of_a_project_without_comparisons(project, output):
    written, expected = joined(fast(project, output)), joined(generic(project, output))
    if output == "parquet":
        assert pq.read_table(io.BytesIO(written)).schema == pq.read_table(io.BytesIO(expected)).schema
    else:
        assert written == expected


# Whole numbers, tiny and large magnitudes, both sides of 1e15 (where PostgreSQL leaves fixed notation), -0.0.
FLOATS = [1.0, -0.0, 0.1, 1e-05, 0.0001, -2.5e-07, 123456789012345.0, 1234567890123456.8, -1e15, 3e21, 2.0 / 3]


@pytest.fixture
def scored(project, images):
    """Images with awkward captions, metadata and tags, two model versions (one scoring only some images),
    human scores of awkward magnitudes for most images and a reference rating for one."""
    version = ModelVersion.objects.create(project=project, encoder_id="tiny", is_active=True, status="active")
    ModelVersion.objects.create(project=project, encoder_id="tiny", status="retired")
    for index, image in enumerate(images):
        Image.objects.filter(pk=image.pk).update(
            caption=AWKWARD[index], external_id=AWKWARD[index + 8],
            metadata={"cfg": 7.0 if index % 2 else index, "text": AWKWARD[index + 1], "nested": {"a": [1, None]}},
        )
        tag = Tag.objects.create(project=project, name=Tag.normalise(f"{AWKWARD[(index + 3) % len(AWKWARD)]}{index}"))
        ImageTag.objects.create(image=image, tag=tag)
        if index % 2:  # a tag created last whose name sorts first: the tags are joined in name order
            ImageTag.objects.create(image=image, tag=Tag.objects.create(project=project, name=f"!first {index}"))
        if index % 3:
            distribution = [0.1, 0.2, 1e-05, 0, 0.3, 0.05, 0.05, 0.1, 0.1, 0.09999][: 10 - index % 2]
            ImageScore.objects.create(model_version=version, image=image, mean=1 + index, distribution=distribution,
                                      uncertainty=FLOATS[index])
        if index != 5:
            HumanScore.objects.create(project=project, image=image, mean=FLOATS[index], variance=FLOATS[-index - 1],
                                      fitted_at=datetime(2026, 12, 1, 9, 30, index, 1000 * index, tzinfo=dt_timezone.utc))
        for criterion in ("detail", "colour")[: 1 + index % 2]:
            CriterionScore.objects.create(project=project, image=image, criterion=criterion, mean=FLOATS[index + 1],
                                          variance=0.5, fitted_at=datetime(2026, 12, 2, tzinfo=dt_timezone.utc))
    rating = ReferenceRating(image=images[2], source="AVA")
    rating.votes = [0, 0, 1, 0, 3, 0, 1, 0, 0, 2]
    rating.save()
    return version


def fast_scores(project, version_id, criterion=None):
    if pg_export.available():
        return pg_export.iter_csv(exports.csv_query(project, version_id, criterion), chunk_size=3)
    return exports.export_pieces("csv", project, version_id, criterion)


@pytest.mark.django_db
def test_scores_fast_path_writes_the_generic_csv(scored, project):
    for version_id in (scored.pk, scored.pk + 1, None):
        written = joined(fast_scores(project, version_id))
        assert written == joined(streaming.iter_csv(*exports.export_rows("csv", project, version_id)))
        rows = list(csv.DictReader(io.StringIO(written.decode(), newline="")))
        assert len(rows) == 8
    detail = joined(fast_scores(project, scored.pk, "detail"))
    assert detail == joined(streaming.iter_csv(*exports.export_rows("csv", project, scored.pk, "detail")))
    assert detail != joined(fast_scores(project, scored.pk))
    assert rows[2]["human_score"] == "0.1" and rows[6]["human_score"] == "123456789012345.0"
    assert rows[1]["caption"] == "-1.5e3" and rows[1]["human_score_variance"] == "3e+21"
    assert rows[0]["caption"] == "'" + AWKWARD[0]
