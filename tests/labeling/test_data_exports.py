"""API: streamed exports of comparisons, image tags, raters and model versions (CSV, JSONL, Parquet),
and the scores export's captions, metadata and reference means."""
import csv
import io
import json
from datetime import timedelta

import pyarrow.parquet as pq
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core import streaming
from labeling.services import data_exports
from labeling.models import Comparison, CriterionAnswer, GoldPair, ImageTag, PairLease, ReferenceRating, Tag
from modeling.models import ModelVersion

BASE = "/api/v1/projects/test-project/export/"


def body(response) -> bytes:
    assert response.streaming, "the export must stream"
    return b"".join(response.streaming_content)


def rows_of(response, output: str) -> list[dict]:
    data = body(response)
    if output == "csv":
        return list(csv.DictReader(io.StringIO(data.decode())))
    if output == "jsonl":
        return [json.loads(line) for line in data.decode().splitlines()]
    return pq.read_table(io.BytesIO(data)).to_pylist()


@pytest.fixture
def judged(project, images, rater, second_rater, manager):
    """Three comparisons: one through a lease on a gold pair (answered right), one tie, one by rater2."""
    gold = GoldPair.objects.create(project=project, image_a=images[0], image_b=images[1], expected="a")
    first = Comparison.objects.create(project=project, image_a=images[0], image_b=images[1], outcome="a",
                                      rater=rater, client_key="c1", response_ms=1200, is_gold=True, gold_correct=True)
    lease = PairLease.objects.create(
        token="12345678-1234-5678-1234-567812345678", project=project, rater=rater, gold=gold, image_a=images[0],
        image_b=images[1], state=PairLease.State.JUDGED, expires_at=timezone.now() + timedelta(minutes=5),
        comparison=first,
    )
    tie = Comparison.objects.create(project=project, image_a=images[2], image_b=images[3], outcome="tie",
                                    rater=rater, client_key="c2", response_ms=800)
    third = Comparison.objects.create(project=project, image_a=images[4], image_b=images[5], outcome="b",
                                      rater=second_rater, client_key="c3")
    tag = Tag.objects.create(project=project, name="sharp")
    ImageTag.objects.create(image=images[2], tag=tag, source=ImageTag.Source.RATER, rater=rater)
    return first, tie, third, lease


@pytest.mark.django_db
@pytest.mark.parametrize("output", ["csv", "jsonl", "parquet"])
def test_comparisons_export_has_every_field_in_each_format(api, project, images, manager, rater, judged, output):
    first, tie, third, lease = judged
    active = ModelVersion.objects.create(project=project, encoder_id="tiny", is_active=True, status="active")
    response = api(manager).get(BASE + "comparisons/", {"format": output})
    assert response.status_code == 200
    assert response["X-Model-Version"] == str(active.pk)
    assert f'filename="test-project-comparisons-v{active.pk}.{output}"' in response["Content-Disposition"]
    rows = rows_of(response, output)
    assert [str(row["comparison_id"]) for row in rows] == [str(c.pk) for c in (first, tie, third)]
    gold_row, tie_row, b_row = rows
    if output == "csv":
        assert list(gold_row) == [column.name for column in data_exports.COMPARISON_COLUMNS]
    assert str(gold_row["winner_image_id"]) == str(images[0].pk) and gold_row["outcome"] == "a"
    assert str(b_row["winner_image_id"]) == str(images[5].pk)
    assert tie_row["winner_image_id"] in ("", None)
    assert gold_row["rater"] == "rater1" and b_row["rater"] == "rater2"
    assert str(gold_row["response_ms"]) == "1200" and b_row["response_ms"] in ("", None)
    assert gold_row["lease"] == str(lease.token) and tie_row["lease"] in ("", None)
    assert str(gold_row["gold_pair_id"]) == str(lease.gold_id)
    assert str(gold_row["is_gold"]).lower() == "true" and str(gold_row["gold_correct"]).lower() == "true"
    assert str(tie_row["is_gold"]).lower() == "false"
    assert gold_row["image_a_file_name"] == "img_0.png" and gold_row["client_key"] == "c1"
    created = gold_row["created_at"]
    if output == "parquet":
        assert created == first.created_at
    else:
        assert created == first.created_at.isoformat()


ONE_QUESTION_HEADER = (
    b"comparison_id,image_a_id,image_a_external_id,image_a_file_name,image_b_id,image_b_external_id,"
    b"image_b_file_name,outcome,winner_image_id,rater_id,rater,created_at,response_ms,client_key,lease,"
    b"lease_created_at,lease_expires_at,is_gold,gold_pair_id,gold_correct\n"
)


@pytest.mark.django_db
@pytest.mark.parametrize("output", ["csv", "jsonl", "parquet"])
def test_comparisons_export_has_one_answer_column_per_criterion(api, project, manager, judged, output):
    """Several criteria: answer_<key> per criterion, in the project's order, empty where a judgment has no
    answer to it. One question: the columns as before, none added."""
    first, tie, third, _ = judged
    assert body(api(manager).get(BASE + "comparisons/", {"format": "csv"})).startswith(ONE_QUESTION_HEADER)
    project.criteria = [{"key": "alignment", "question": "Which matches the prompt?"},
                        {"key": "overall", "question": "Which is better overall?"}]
    project.save(update_fields=["criteria"])
    CriterionAnswer.objects.create(comparison=first, criterion="overall", outcome="a")
    CriterionAnswer.objects.create(comparison=first, criterion="alignment", outcome="b")
    CriterionAnswer.objects.create(comparison=tie, criterion="alignment", outcome="bad")
    CriterionAnswer.objects.create(comparison=tie, criterion="dropped", outcome="a")  # a criterion no longer asked
    rows = rows_of(api(manager).get(BASE + "comparisons/", {"format": output}), output)
    names = [column.name for column in data_exports.COMPARISON_COLUMNS]
    assert list(rows[0]) == names + ["answer_alignment", "answer_overall"]
    answers = [(row["answer_alignment"] or None, row["answer_overall"] or None) for row in rows]
    assert answers == [("b", "a"), ("bad", None), (None, None)]  # the third was judged before the criteria
    assert [row["outcome"] for row in rows] == ["a", "tie", "b"]  # the outcome as before


@pytest.mark.django_db
def test_image_tags_export_names_source_and_rater(api, project, images, manager, judged):
    rows = rows_of(api(manager).get(BASE + "image-tags/", {"format": "jsonl"}), "jsonl")
    assert len(rows) == 9  # one import tag per image, plus a rater's tag
    rater_rows = [row for row in rows if row["source"] == "rater"]
    assert rater_rows == [
        {**rater_rows[0], "image_id": images[2].pk, "tag": "sharp", "rater": "rater1", "file_name": "img_2.png"}
    ]
    assert {row["tag"] for row in rows if row["source"] == "import"} == {"even", "odd"}
    assert all(row["rater"] is None for row in rows if row["source"] == "import")


@pytest.mark.django_db
def test_raters_export_has_statistics(api, project, images, manager, rater, second_rater, judged):
    PairLease.objects.create(
        token="22345678-1234-5678-1234-567812345678", project=project, rater=second_rater, image_a=images[6],
        image_b=images[7], state=PairLease.State.SKIPPED, expires_at=timezone.now(),
    )
    rows = {row["rater"]: row for row in rows_of(api(manager).get(BASE + "raters/", {"format": "parquet"}), "parquet")}
    assert set(rows) == {"manager1", "rater1", "rater2"}
    one, two = rows["rater1"], rows["rater2"]
    assert one["comparisons"] == 2 and one["ties"] == 1 and one["tie_rate"] == 0.5
    assert one["mean_response_ms"] == 1000.0 and one["gold_judged"] == 1 and one["gold_accuracy"] == 1.0
    assert one["tags_added"] == 1 and one["skipped"] == 0 and one["role"] == "rater"
    assert two["comparisons"] == 1 and two["skipped"] == 1 and two["gold_accuracy"] is None
    assert rows["manager1"]["comparisons"] == 0 and rows["manager1"]["first_comparison_at"] is None


@pytest.mark.django_db
def test_model_versions_export_has_metrics(api, project, manager):
    old = ModelVersion.objects.create(project=project, encoder_id="tiny", status="retired",
                                      metrics={"pairwise_accuracy": 0.7, "srcc": 0.5}, n_comparisons=100)
    new = ModelVersion.objects.create(project=project, encoder_id="tiny", status="active", is_active=True,
                                      metrics={"pairwise_accuracy": 0.8}, config={"epochs": 3})
    response = api(manager).get(BASE + "model-versions/", {"format": "csv"})
    assert response["X-Model-Version"] == str(new.pk)
    rows = rows_of(response, "csv")
    assert [int(row["model_version"]) for row in rows] == [old.pk, new.pk]
    assert json.loads(rows[0]["metrics"]) == {"pairwise_accuracy": 0.7, "srcc": 0.5}
    assert rows[0]["n_comparisons"] == "100" and rows[1]["is_active"] == "true"
    parquet = rows_of(api(manager).get(BASE + "model-versions/", {"format": "parquet"}), "parquet")
    assert json.loads(parquet[1]["config"]) == {"epochs": 3}


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["comparisons", "image-tags", "raters", "model-versions"])
def test_exports_are_for_managers_only(api, project, images, manager, rater, outsider, kind):
    url = BASE + kind + "/"
    assert api().get(url).status_code == 401
    assert api(outsider).get(url).status_code == 404
    refused = api(rater).get(url)
    assert refused.status_code == 403 and refused["Content-Type"].startswith("application/json")
    bad = api(manager).get(url, {"format": "xlsx"})
    assert bad.status_code == 400 and "format" in bad.json()
    assert api(manager).get(url).status_code == 200


@pytest.mark.django_db
def test_comparison_export_reads_in_bounded_chunks(project, images, rater, monkeypatch):
    """Seven comparisons in chunks of three: each chunk its own LIMIT 3 query, fetched only when the
    previous piece was sent, so memory does not grow with the table."""
    for index in range(7):
        Comparison.objects.create(project=project, image_a=images[index], image_b=images[index + 1], outcome="a",
                                  rater=rater, client_key=f"k{index}")
    monkeypatch.setattr(streaming, "CHUNK_SIZE", 3)
    monkeypatch.setattr(streaming.keyset_chunks, "__defaults__", (3, 0))
    pieces = streaming.iter_csv(data_exports.COMPARISON_COLUMNS, data_exports.comparison_chunks(project))
    with CaptureQueriesContext(connection) as queries:
        next(pieces)  # the header: nothing read yet
        assert len(queries.captured_queries) == 0
        first = next(pieces)
        assert len(queries.captured_queries) == 1 and "LIMIT 3" in queries.captured_queries[0]["sql"]
        rest = list(pieces)
    assert first.count("\n") == 3 and [piece.count("\n") for piece in rest] == [3, 1]
    assert len(queries.captured_queries) == 4  # three chunks and the empty one that ends the export


def test_parquet_is_written_one_row_group_per_chunk():
    columns = [streaming.Column("n", "int"), streaming.Column("payload", "json")]
    chunks = [[(i, {"i": i}) for i in range(start, start + 5)] for start in (0, 5, 10)]
    pieces = list(streaming.iter_parquet(columns, iter(chunks)))
    assert len(pieces) >= 3  # bytes leave after every chunk, not only at the end
    parquet = pq.ParquetFile(io.BytesIO(b"".join(pieces)))
    assert parquet.num_row_groups == 3
    table = parquet.read().to_pylist()
    assert [row["n"] for row in table] == list(range(15)) and json.loads(table[7]["payload"]) == {"i": 7}


@pytest.mark.django_db
@pytest.mark.parametrize("output", ["csv", "jsonl", "parquet"])
def test_scores_export_has_caption_metadata_and_reference_mean(api, project, images, manager, output):
    images[0].caption, images[0].metadata = "a red square, cfg 7", {"cfg_scale": 7, "sampler": "ddim"}
    images[0].save()
    rating = ReferenceRating(image=images[0], source="AVA")
    rating.votes = [0, 0, 0, 0, 1, 0, 1, 0, 0, 0]
    rating.save()
    response = api(manager).get("/api/v1/projects/test-project/scores/", {"format": output})
    assert response.status_code == 200
    rows = rows_of(response, output)
    assert len(rows) == 8
    first, second = rows[0], rows[1]
    assert first["caption"] == "a red square, cfg 7" and float(first["reference_mean"]) == 6.0
    metadata = json.loads(first["metadata"]) if isinstance(first["metadata"], str) else first["metadata"]
    assert metadata == {"cfg_scale": 7, "sampler": "ddim"}
    assert second["reference_mean"] in ("", None) and second["caption"] == ""
