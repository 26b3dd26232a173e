"""The preference-pairs export: (prompt, chosen, rejected) per judgment or per pair, JSONL and Parquet."""
import io
import json

import pyarrow.parquet as pq
import pytest

from labeling.models import Comparison, Membership
from labeling.services.imports import store_image
from tests.conftest import make_image_bytes

URL = "/api/v1/projects/test-project/export/preferences/"


def body(answer) -> bytes:
    return b"".join(answer.streaming_content)


def lines(answer) -> list[dict]:
    assert answer.status_code == 200, answer.content
    return [json.loads(line) for line in body(answer).decode().splitlines() if line]


@pytest.fixture
def campaign(project, rater, second_rater):
    """One prompt, two images; rater1 and rater2 prefer the second image, a third judgment is a tie, one both bad."""
    project.overlap, project.allow_both_bad = 3, True
    project.save()
    first = store_image(project, "cat_g1.png", make_image_bytes(seed=1), caption="a cat on a sofa",
                        external_id="x1", metadata={"prompt_id": "p1", "generator": "g1"})[0]
    second = store_image(project, "cat_g2.png", make_image_bytes(seed=2), caption="a cat on a sofa",
                         external_id="x2", metadata={"prompt_id": "p1", "generator": "g2"})[0]
    Comparison.objects.create(project=project, image_a=first, image_b=second, outcome="b", rater=rater, client_key="1")
    Comparison.objects.create(project=project, image_a=second, image_b=first, outcome="a", rater=second_rater,
                              client_key="2")
    Comparison.objects.create(project=project, image_a=first, image_b=second, outcome="tie", rater=rater, client_key="3")
    Comparison.objects.create(project=project, image_a=first, image_b=second, outcome="bad", rater=second_rater,
                              client_key="4")
    return first, second


@pytest.mark.django_db
def test_one_row_per_preference_with_the_prompt_and_both_images(api, manager, campaign):
    first, second = campaign
    answer = api(manager).get(URL)
    assert answer["Content-Type"].startswith("application/jsonl")
    rows = lines(answer)
    assert [row["label"] for row in rows] == ["chosen", "chosen"]  # the tie and "both bad" are left out
    row = rows[0]
    assert row["prompt"] == "a cat on a sofa" and row["criterion"] == "overall"
    assert (row["chosen_image_id"], row["rejected_image_id"]) == (second.pk, first.pk)
    assert (row["chosen_file_name"], row["chosen_external_id"]) == ("cat_g2.png", "x2")
    assert row["chosen_url"].startswith("http://testserver/") and row["chosen_url"].endswith(".png")
    assert row["rater"] == "rater1" and row["pair_judgments"] == 4 and row["agreement"] == 0.5


@pytest.mark.django_db
def test_ties_and_both_bad_on_request(api, manager, campaign):
    rows = lines(api(manager).get(URL, {"ties": "include", "both_bad": "include"}))
    assert [row["label"] for row in rows] == ["chosen", "chosen", "tie", "both_bad"]
    assert rows[2]["agreement"] == 0.25
    assert [row["label"] for row in lines(api(manager).get(URL, {"ties": "include"}))] == ["chosen", "chosen", "tie"]


@pytest.mark.django_db
def test_per_pair_the_majority_is_chosen_with_its_agreement(api, manager, campaign):
    first, second = campaign
    rows = lines(api(manager).get(URL, {"unit": "pair"}))
    assert len(rows) == 1
    row = rows[0]
    assert (row["chosen_image_id"], row["rejected_image_id"], row["label"]) == (second.pk, first.pk, "chosen")
    assert (row["judgments"], row["chosen_votes"], row["rejected_votes"], row["ties"], row["both_bad"]) == (4, 2, 0, 1, 1)
    assert row["agreement"] == 0.5


@pytest.mark.django_db
def test_excluded_raters_are_left_out(api, project, manager, second_rater, campaign):
    Membership.objects.filter(project=project, user=second_rater).update(excluded_from_training=True)
    rows = lines(api(manager).get(URL))
    assert [row["rater"] for row in rows] == ["rater1"]


@pytest.mark.django_db
def test_parquet_carries_the_image_bytes_on_request(api, manager, campaign):
    first, second = campaign
    answer = api(manager).get(URL, {"format": "parquet", "image_bytes": "true"})
    assert answer.status_code == 200
    table = pq.read_table(io.BytesIO(body(answer)))
    assert table.num_rows == 2 and "chosen_image_bytes" in table.column_names
    second.file.open("rb")
    assert table.column("chosen_image_bytes")[0].as_py() == second.file.read()
    plain = pq.read_table(io.BytesIO(body(api(manager).get(URL, {"format": "parquet"}))))
    assert "chosen_image_bytes" not in plain.column_names and plain.column("prompt")[0].as_py() == "a cat on a sofa"


@pytest.mark.django_db
def test_bad_options_are_400s_and_raters_get_403(api, manager, rater, campaign):
    assert api(manager).get(URL, {"image_bytes": "true"}).status_code == 400  # bytes only in Parquet
    assert api(manager).get(URL, {"unit": "image"}).status_code == 400
    assert api(manager).get(URL, {"ties": "maybe"}).status_code == 400
    assert api(manager).get(URL, {"format": "xml"}).status_code == 400
    assert api(rater).get(URL).status_code == 403


@pytest.mark.django_db
def test_the_loading_example_in_the_docs_runs_on_an_export(api, manager, campaign, tmp_path, monkeypatch):
    import re
    from pathlib import Path

    import torch

    text = (Path(__file__).resolve().parents[2] / "docs" / "exports.md").read_text()
    example = re.search(r"```python\n(import io, numpy as np, pyarrow.*?)```", text, re.S).group(1)
    assert len(example.strip().splitlines()) <= 10
    answer = api(manager).get(URL, {"format": "parquet", "image_bytes": "true"})
    (tmp_path / "demo-generators-preferences-judgment.parquet").write_bytes(body(answer))
    monkeypatch.chdir(tmp_path)
    weight = torch.zeros(3, requires_grad=True)
    namespace = {"reward_model": lambda images, prompts: images.mean(dim=(2, 3)) @ weight,
                 "optimizer": torch.optim.SGD([weight], lr=0.1)}
    exec(compile(example, "docs/exports.md", "exec"), namespace)
    assert weight.abs().sum() > 0  # it trained on the two preferences
