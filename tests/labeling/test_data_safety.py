"""Judgments are never deleted by accident: archive, no admin deletes, an explicit purge; CSV cells are safe."""
import csv
import io
import logging

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from core import spreadsheet_safety
from modeling.services import purge
from labeling.models import Comparison, Image, ImageStats, ImageTag, PairLease, Project, Tag
from labeling.services import archive
from labeling.services.comparisons import submit_comparison
from labeling.services.imports import read_tags_csv
from labeling.services.pair_serving import next_pair

NEXT = "/api/v1/projects/test-project/next-pair/"


def judge(project, rater, lease, winner="a"):
    return submit_comparison(project, rater, lease=lease.token, winner=winner, client_key=str(lease.token))[0]


@pytest.mark.django_db
def test_archived_images_leave_serving_and_listing_and_keep_judgments_and_counters(api, project, images, rater,
                                                                                  settings):
    settings.TAGRANK_MAX_LIVE_LEASES = 0
    _, lease = next_pair(project, rater)
    judged = judge(project, rater, lease)
    _, live = next_pair(project, rater)
    gone = Image.objects.get(pk=live.image_a_id)
    counts_before = dict(ImageStats.objects.values_list("image_id", "comparison_count"))
    assert archive.archive_images(project, [gone.pk]) == 1
    live.refresh_from_db()
    assert live.state == PairLease.State.RELEASED  # its slot went back
    listed = [row["id"] for row in api(rater).get("/api/v1/projects/test-project/images/").json()["results"]]
    assert gone.pk not in listed and len(listed) == len(images) - 1
    served = set()
    while (result := next_pair(project, rater)) is not None:  # every pair this rater can still get
        served.update({result[1].image_a_id, result[1].image_b_id})
    assert served and gone.pk not in served
    assert Comparison.objects.filter(pk=judged.pk).exists()
    assert dict(ImageStats.objects.filter(image_id__in=counts_before).values_list("image_id", "comparison_count")) \
        == counts_before
    assert archive.restore_images(project, [gone.pk]) == 1
    assert gone.pk in [row["id"] for row in api(rater).get("/api/v1/projects/test-project/images/?page_size=50")
                       .json()["results"]]


@pytest.mark.django_db
def test_archived_projects_are_not_listed_nor_served(api, project, images, rater):
    _, lease = next_pair(project, rater)
    archive.archive_project(project)
    lease.refresh_from_db()
    assert lease.state == PairLease.State.RELEASED
    assert api(rater).get("/api/v1/projects/").json()["count"] == 0
    assert api(rater).get(NEXT).status_code == 204
    archive.restore_project(project)
    assert api(rater).get(NEXT).status_code == 200


@pytest.mark.django_db
def test_admin_offers_no_delete_for_projects_images_and_comparisons(client, project, images, rater):
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "a-long-admin-passphrase")
    Comparison.objects.create(project=project, image_a=images[0], image_b=images[1], outcome="a", rater=rater,
                              client_key="k")
    client.force_login(admin)
    for model in ("project", "image", "comparison"):
        page = client.get(f"/admin/labeling/{model}/")
        assert page.status_code == 200 and "delete_selected" not in page.content.decode()
        obj = {"project": project, "image": images[0], "comparison": Comparison.objects.get()}[model]
        assert client.get(f"/admin/labeling/{model}/{obj.pk}/delete/").status_code == 403
        # The bulk action cannot be forced either.
        client.post(f"/admin/labeling/{model}/", {"action": "delete_selected", "_selected_action": [obj.pk],
                                                  "post": "yes"})
    assert Project.objects.count() == 1 and Image.objects.count() == len(images) and Comparison.objects.count() == 1
    client.post("/admin/labeling/image/", {"action": "archive_selected", "_selected_action": [images[2].pk]})
    assert Image.objects.get(pk=images[2].pk).archived_at is not None


@pytest.mark.django_db
def test_purge_needs_confirmation_exports_first_then_deletes_and_logs(project, images, rater, other_project,
                                                                     image_bytes, tmp_path, caplog, isolated_media,
                                                                     django_capture_on_commit_callbacks):
    from labeling.services.imports import store_image

    kept, _ = store_image(other_project, "kept.png", image_bytes(seed=99))
    _, lease = next_pair(project, rater)
    judge(project, rater, lease, winner="b")
    files = [isolated_media / images[0].file.name, isolated_media / images[0].thumbnail.name]
    assert all(path.exists() for path in files)
    with pytest.raises(CommandError, match="does not match"):
        call_command("purge_project", "test-project", "--confirm", "test-projec", "--export-dir", str(tmp_path / "x"))
    assert Comparison.objects.count() == 1 and not (tmp_path / "x").exists()

    out = io.StringIO()
    with caplog.at_level(logging.WARNING, logger="tagrank.purge"), django_capture_on_commit_callbacks(execute=True):
        call_command("purge_project", "test-project", "--confirm", "test-project", "--export-dir", str(tmp_path / "e"),
                     stdout=out)
    comparisons = list(csv.DictReader(open(tmp_path / "e" / "comparisons.csv")))
    written = [(row["client_key"], row["outcome"], row["rater"]) for row in comparisons]
    assert written == [(str(lease.token), "b", "rater1")]
    scores = list(csv.DictReader(open(tmp_path / "e" / "scores.csv")))
    assert sorted(int(row["image_id"]) for row in scores) == sorted(image.pk for image in images)
    assert (tmp_path / "e" / "manifest.json").exists()
    assert not Project.objects.filter(slug="test-project").exists()
    assert not Comparison.objects.exists() and not Image.objects.filter(project_id=project.pk).exists()
    assert not any(path.exists() for path in files)
    assert Image.objects.filter(pk=kept.pk).exists()  # another project is untouched
    assert "labeling.Comparison" in out.getvalue() and "purge of project 'test-project'" in caplog.text


def test_cells_that_could_run_as_formulas_are_neutralised():
    cases = {
        '=HYPERLINK("http://x","y")': '\'=HYPERLINK("http://x","y")', "+1+2": "'+1+2", "-A1": "'-A1",
        "@SUM(A1)": "'@SUM(A1)",
        "\tcmd": "'\tcmd", "\rcmd": "'\rcmd", "-1.5": "-1.5", "+3": "+3", "2e-3": "2e-3", "cat": "cat", "": "",
    }
    for raw, written in cases.items():
        assert spreadsheet_safety.neutralise(raw) == written
        assert spreadsheet_safety.restore(written) == raw
    # The row form (inlined for speed) writes exactly what the cell form does.
    row = [*cases, -2.5, None, 7, "-", "=", "x=1"]
    assert spreadsheet_safety.neutralise_row(row) == [spreadsheet_safety.neutralise(value) for value in row]
    assert spreadsheet_safety.neutralise(-2.5) == -2.5 and spreadsheet_safety.neutralise(None) is None
    buffer = io.StringIO()
    writer = spreadsheet_safety.SafeDictWriter(buffer, ["name", "score"])
    writer.writeheader()
    writer.writerow({"name": "=1+1", "score": -1})
    assert buffer.getvalue().splitlines() == ["name,score", "'=1+1,-1"]


@pytest.mark.django_db
def test_scores_and_comparisons_exports_neutralise_a_formula_tag(api, project, images, manager, tmp_path):
    tag = Tag.objects.create(project=project, name=Tag.normalise('=HYPERLINK("http://evil.example","click")'))
    ImageTag.objects.create(image=images[0], tag=tag)
    Image.objects.filter(pk=images[1].pk).update(original_name="@evil.png")
    response = api(manager).get("/api/v1/projects/test-project/scores/?format=csv")
    text = b"".join(response.streaming_content).decode()
    rows = {int(row["image_id"]): row for row in csv.DictReader(io.StringIO(text))}
    assert rows[images[0].pk]["tags"].startswith("'=hyperlink(")
    assert rows[images[1].pk]["file_name"] == "'@evil.png"
    for row in rows.values():
        assert not row["tags"].startswith(spreadsheet_safety.FORMULA_STARTS)
    # What the export wrote reads back as the same tag (import_images --tags).
    side = tmp_path / "tags.csv"
    with open(side, "w", newline="") as handle:
        csv.writer(handle).writerows([["file", "tags"], ["x.png", rows[images[0].pk]["tags"]]])
    assert read_tags_csv(side) == {"x.png": [tag.name, "even"]}
    comparisons = "".join(purge.iter_comparisons_csv(project))
    assert comparisons.startswith("id,created_at,rater")


@pytest.mark.django_db
def test_the_purge_archive_keeps_every_criterions_answers_and_one_question_archives_are_unchanged(
        project, images, rater, tmp_path):
    _, first = next_pair(project, rater)
    judge(project, rater, first, winner="b")
    purge.export_project(project, tmp_path / "one")
    header = open(tmp_path / "one" / "comparisons.csv").readline().strip()
    assert header == ",".join(column.name for column in purge.COMPARISON_COLUMNS)  # no answer_ columns
    project.criteria = [{"key": "alignment", "question": "Which matches the prompt?"},
                        {"key": "overall", "question": "Which is better?"}]
    project.save()
    _, lease = next_pair(project, rater)
    submit_comparison(project, rater, lease=lease.token, client_key="two", answers={"alignment": "a", "overall": "tie"})
    purge.export_project(project, tmp_path / "two")
    rows = list(csv.DictReader(open(tmp_path / "two" / "comparisons.csv")))
    assert list(rows[0])[-2:] == ["answer_alignment", "answer_overall"]  # the comparisons export's columns
    by_key = {row["client_key"]: row for row in rows}
    assert (by_key["two"]["outcome"], by_key["two"]["answer_alignment"], by_key["two"]["answer_overall"]) == (
        "tie", "a", "tie")
    # A judgment made before the criteria were asked has no answers: empty cells, its outcome kept.
    assert (by_key[str(first.token)]["outcome"], by_key[str(first.token)]["answer_alignment"]) == ("b", "")
