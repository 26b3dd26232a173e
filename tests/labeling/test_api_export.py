"""API: the streamed scores export (CSV and JSON Lines), gold pairs and progress."""
import csv
import io
import json
from datetime import datetime

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from labeling.models import Comparison, GoldPair
from modeling.services import exports as export
from modeling.models import HumanScore, ImageScore, ModelVersion

SCORES = "/api/v1/projects/test-project/scores/"


@pytest.fixture
def scored(project, images, rater):
    """An active model version scoring every image, an older one scoring two, and one human score."""
    active = ModelVersion.objects.create(project=project, encoder_id="tiny", is_active=True, status="active")
    older = ModelVersion.objects.create(project=project, encoder_id="tiny", status="retired")
    for index, image in enumerate(images):
        distribution = [0.0] * 10
        distribution[index % 10] = 1.0
        ImageScore.objects.create(model_version=active, image=image, mean=1 + index, distribution=distribution,
                                  uncertainty=0.5)
    for image in images[:2]:
        ImageScore.objects.create(model_version=older, image=image, mean=9.5, distribution=[0.1] * 10, uncertainty=2.0)
    HumanScore.objects.create(project=project, image=images[0], mean=1.25, variance=0.5, n_comparisons=1,
                              fitted_at=timezone.now())
    Comparison.objects.create(project=project, image_a=images[0], image_b=images[1], outcome="a", rater=rater,
                              client_key="k")
    return active, older


def read(response) -> str:
    assert response.streaming, "the export must stream"
    return b"".join(response.streaming_content).decode()


@pytest.mark.django_db
def test_csv_export_has_one_row_per_image_with_every_column(api, project, images, manager, scored):
    active, _ = scored
    response = api(manager).get(SCORES, {"format": "csv"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert 'filename="test-project-scores-v' in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(read(response))))
    assert len(rows) == 8
    assert list(rows[0]) == export.CSV_COLUMNS
    first = rows[0]
    assert first["image_id"] == str(images[0].pk) and first["file_name"] == "img_0.png" and first["tags"] == "even"
    assert float(first["model_mean"]) == 1.0 and float(first["p1"]) == 1.0 and float(first["p2"]) == 0.0
    assert float(first["uncertainty"]) == 0.5 and first["model_version"] == str(active.pk)
    assert float(first["human_score"]) == 1.25 and float(first["human_score_variance"]) == 0.5
    assert first["comparison_count"] == "1" and rows[2]["comparison_count"] == "0"
    assert rows[1]["human_score"] == "" and rows[1]["human_score_fitted_at"] == ""  # no human score yet
    fitted_at = HumanScore.objects.get(image=images[0]).fitted_at
    assert datetime.fromisoformat(first["human_score_fitted_at"]) == fitted_at


@pytest.mark.django_db
def test_jsonl_export_and_an_explicit_model_version(api, project, images, manager, scored):
    _, older = scored
    response = api(manager).get(SCORES, {"format": "jsonl", "model_version": older.pk})
    assert response.status_code == 200 and response["Content-Type"].startswith("application/jsonl")
    lines = [json.loads(line) for line in read(response).splitlines()]
    assert len(lines) == 8
    assert lines[0]["model_mean"] == 9.5 and lines[0]["distribution"] == [0.1] * 10
    assert lines[0]["model_version"] == older.pk and lines[0]["tags"] == ["even"]
    assert lines[5]["model_mean"] is None and lines[5]["distribution"] is None  # not scored by that version
    assert lines[5]["model_version"] is None
    assert datetime.fromisoformat(lines[0]["human_score_fitted_at"]) == HumanScore.objects.get(image=images[0]).fitted_at
    assert lines[1]["human_score_fitted_at"] is None


@pytest.mark.django_db
def test_export_without_a_model_version_still_lists_every_image(api, project, images, manager):
    rows = list(csv.DictReader(io.StringIO(read(api(manager).get(SCORES)))))  # csv is the default
    assert [row["image_id"] for row in rows] == [str(image.pk) for image in images]
    assert {row["model_mean"] for row in rows} == {""}


@pytest.mark.django_db
def test_export_refuses_bad_parameters_with_json_errors(api, project, images, manager, other_project):
    bad_format = api(manager).get(SCORES, {"format": "xlsx"})
    assert bad_format.status_code == 404  # no renderer for it: DRF's content negotiation
    foreign = ModelVersion.objects.create(project=other_project, encoder_id="tiny")
    response = api(manager).get(SCORES, {"format": "csv", "model_version": foreign.pk})
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    assert "not a version of this project" in response.json()["detail"]
    not_a_number = api(manager).get(SCORES, {"format": "jsonl", "model_version": "latest"})
    assert not_a_number.status_code == 400 and "model_version" in not_a_number.json()


@pytest.mark.django_db
def test_export_is_for_managers_and_accounts_with_export_permission(api, project, images, rater, outsider, make_user):
    assert api(rater).get(SCORES).status_code == 403
    assert api(outsider).get(SCORES).status_code == 404
    rater.user_permissions.add(Permission.objects.get(codename="export_project"))
    assert api(rater).get(SCORES).status_code == 200


@pytest.mark.django_db
def test_export_reads_in_chunks_so_memory_stays_constant(project, images, monkeypatch):
    """Eight images in chunks of three: three joined queries (plus one that finds the end), each with its
    tags query; no query ever reads the whole project."""
    with CaptureQueriesContext(connection) as queries:
        chunks = list(export.score_chunks(project, None, chunk_size=3))
    assert [len(rows) for rows, _ in chunks] == [3, 3, 2]
    sqls = [q["sql"] for q in queries.captured_queries]
    image_queries = [sql for sql in sqls if 'FROM "labeling_image" ' in sql]
    tag_queries = [sql for sql in sqls if 'FROM "labeling_imagetag" ' in sql]
    assert len(image_queries) == 4 and all("LIMIT 3" in sql for sql in image_queries)
    assert len(tag_queries) == 3 and len(sqls) == 7


@pytest.mark.django_db
def test_chunks_keep_each_row_with_its_own_scores_and_tags_when_projects_interleave(
    project, images, other_project, image_bytes, scored
):
    """Images of another project between this one's ids: its tags never leak in, and every chunk joins
    the right score, human score and counter (each joined table is bounded by the chunk's ids)."""
    from labeling.services.imports import store_image

    for index in range(4):
        store_image(other_project, f"other_{index}.png", image_bytes(seed=50 + index), tags=["foreign"])
    for index in range(4):
        store_image(project, f"late_{index}.png", image_bytes(seed=60 + index), tags=["late"])
    active, _ = scored
    whole = list(export.score_chunks(project, active.pk, chunk_size=1000))[0][0]
    chunked, tags = [], {}
    for rows, chunk_tags in export.score_chunks(project, active.pk, chunk_size=3):
        chunked += rows
        tags.update({row[0]: chunk_tags.get(row[0], []) for row in rows})
    assert chunked == whole and len(chunked) == 12
    assert [row[3] for row in chunked[:8]] == [1.0 + k for k in range(8)] and chunked[8][3] is None
    assert chunked[0][6] == 1.25 and chunked[0][8] == 1  # human score and comparison count of the first image
    assert all("foreign" not in names for names in tags.values())
    assert [tags[row[0]] for row in chunked[8:]] == [["late"]] * 4


@pytest.mark.django_db
def test_gold_pairs_are_marked_by_managers(api, project, images, manager, rater, other_project, image_bytes):
    from labeling.services.imports import store_image

    url = "/api/v1/projects/test-project/gold-pairs/"
    payload = {"image_a": images[0].pk, "image_b": images[1].pk, "expected": "a", "note": "sharp vs blurred"}
    assert api(rater).post(url, payload, format="json").status_code == 403
    created = api(manager).post(url, payload, format="json")
    assert created.status_code == 201 and created.json()["expected"] == "a"
    assert GoldPair.objects.get().created_by == manager
    reversed_pair = {**payload, "image_a": images[1].pk, "image_b": images[0].pk}
    assert "already a gold pair" in str(api(manager).post(url, reversed_pair, format="json").json())
    same = api(manager).post(url, {**payload, "image_b": images[0].pk}, format="json")
    assert same.status_code == 400
    foreign = store_image(other_project, "f.png", image_bytes(seed=42))[0]
    outside = api(manager).post(url, {**payload, "image_b": foreign.pk}, format="json")
    assert outside.status_code == 400 and "image_b" in outside.json()
    assert api(manager).post(url, {**payload, "expected": "left"}, format="json").status_code == 400
    assert api(manager).get(url).json()["count"] == 1
    assert api(rater).get(url).status_code == 403


@pytest.mark.django_db
def test_progress_for_managers(api, project, images, manager, rater):
    Comparison.objects.create(project=project, image_a=images[0], image_b=images[1], outcome="a", rater=rater,
                              client_key="k")
    url = "/api/v1/projects/test-project/progress/"
    body = api(manager).get(url).json()
    assert body["comparisons"] == 1 and body["per_day"][0]["comparisons"] == 1
    rater_row = next(row for row in body["per_rater"] if row["username"] == "rater1")
    assert rater_row["comparisons"] == 1 and rater_row["left_share"] == 1.0
    assert body["pairs_remaining"]["images_never_compared"] == 6
    assert api(rater).get(url).status_code == 403
    assert api(manager).get(url, {"days": "0"}).status_code == 400
    assert api(manager).get(url, {"days": "many"}).status_code == 400
