"""Import of judgments from CSV and JSON Lines: line-by-line validation, all or nothing, idempotent."""
import io
import json
from datetime import datetime, timezone

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from labeling.models import Comparison, ImageStats
from labeling.services.judgment_imports import JudgmentFileInvalid, import_judgments

URL = "/api/v1/projects/test-project/comparisons/import/"


@pytest.fixture
def named(images):
    """Images 0-3 get external ids; the others are referred to by file name."""
    for index, image in enumerate(images[:4]):
        image.external_id = f"ext-{index}"
        image.save()
    return images


GOOD_CSV = (
    "image_a,image_b,winner,rater,time,response_ms\n"
    "ext-0,ext-1,a,rater1,2024-03-01T10:00:00Z,1500\n"
    "ext-2,img_5.png,img_5.png,rater2,2024-03-01T10:01:00+01:00,\n"
    "\n"
    "ext-3,img_6.png,tie,rater1,2024-03-02 08:00:00,\n"
)


@pytest.mark.django_db
def test_csv_import_stores_every_field_and_is_idempotent(project, named, rater, second_rater):
    report = import_judgments(project, io.BytesIO(GOOD_CSV.encode()), "old-study.csv")
    assert (report.imported, report.already_present) == (3, 0)
    first, second, third = Comparison.objects.order_by("id")
    assert (first.image_a_id, first.image_b_id, first.outcome, first.rater, first.response_ms) == (
        named[0].pk, named[1].pk, "a", rater, 1500)
    assert first.created_at == datetime(2024, 3, 1, 10, 0, tzinfo=timezone.utc)
    assert (second.image_b_id, second.outcome, second.rater) == (named[5].pk, "b", second_rater)
    assert second.created_at == datetime(2024, 3, 1, 9, 1, tzinfo=timezone.utc)
    assert third.outcome == "tie" and third.created_at == datetime(2024, 3, 2, 8, 0, tzinfo=timezone.utc)
    assert ImageStats.objects.get(image=named[0]).comparison_count == 1  # counters kept in step
    again = import_judgments(project, io.BytesIO(GOOD_CSV.encode()), "old-study.csv")
    assert (again.imported, again.already_present) == (0, 3) and Comparison.objects.count() == 3


@pytest.mark.django_db
def test_every_bad_line_is_named_and_nothing_is_stored(project, named, rater, outsider):
    text = (
        "image_a,image_b,winner,rater,time\n"
        "ext-0,ext-1,a,rater1,2024-03-01T10:00:00Z\n"        # fine
        "ext-0,nope,a,rater1,2024-03-01T10:00:00Z\n"         # line 3: unknown image
        "ext-0,ext-1,left,rater1,2024-03-01T10:00:00Z\n"     # line 4: bad winner
        "ext-0,ext-1,a,outsider,2024-03-01T10:00:00Z\n"      # line 5: not a member
        "ext-0,ext-1,a,rater1,yesterday\n"                   # line 6: bad time
        "ext-0,ext-0,a,rater1,2024-03-01T10:00:00Z\n"        # line 7: same image
        "ext-0,,a,rater1,2024-03-01T10:00:00Z\n"             # line 8: missing image_b
    )
    with pytest.raises(JudgmentFileInvalid) as caught:
        import_judgments(project, io.StringIO(text), "bad.csv")
    lines = {error.line: error.reason for error in caught.value.errors}
    assert sorted(lines) == [3, 4, 5, 6, 7, 8] and all(e.path == "bad.csv" for e in caught.value.errors)
    assert "'nope'" in lines[3] and "winner" in lines[4] and "outsider" in lines[5] and "ISO 8601" in lines[6]
    assert "bad.csv:3:" in str(caught.value)
    assert Comparison.objects.count() == 0


@pytest.mark.django_db
def test_jsonl_import_and_a_missing_header(project, named, rater):
    lines = [
        {"image_a": "ext-1", "image_b": "ext-2", "winner": "b", "rater": "rater1", "time": "2024-05-01T00:00:00Z"},
        {"image_a": "img_7.png", "image_b": "ext-3", "winner": "ext-3", "rater": "rater1",
         "time": "2024-05-01T00:00:01Z", "response_ms": 900},
    ]
    report = import_judgments(project, io.StringIO("\n".join(json.dumps(r) for r in lines)), "x.jsonl")
    assert report.imported == 2 and Comparison.objects.filter(outcome="b").count() == 2
    with pytest.raises(JudgmentFileInvalid) as caught:
        import_judgments(project, io.StringIO('{"image_a": 1}\nnot json\n[1]\n'), "y.jsonl")
    assert [e.line for e in caught.value.errors] == [1, 2, 3]
    with pytest.raises(JudgmentFileInvalid, match="header lacks winner"):
        import_judgments(project, io.StringIO("image_a,image_b,rater,time\n"), "z.csv")


@pytest.mark.django_db
def test_api_imports_for_managers_and_lists_bad_lines(api, project, named, manager, rater, second_rater):
    assert api(rater).post(URL, {"file": SimpleUploadedFile("a.csv", GOOD_CSV.encode())},
                           format="multipart").status_code == 403
    response = api(manager).post(URL, {"file": SimpleUploadedFile("a.csv", GOOD_CSV.encode())}, format="multipart")
    assert response.status_code == 201 and response.json() == {"imported": 3, "already_present": 0}
    bad = api(manager).post(URL, {"file": SimpleUploadedFile("b.csv", b"image_a,image_b,winner,rater,time\n"
                                                               b"ext-0,ext-1,a,nobody,2024-01-01T00:00:00Z\n")},
                            format="multipart")
    assert bad.status_code == 400
    assert bad.json()["errors"] == [{"file": "b.csv", "line": 2, "reason": "rater 'nobody' is not an active rater of this project"}]
    assert Comparison.objects.count() == 3


@pytest.mark.django_db
def test_management_command(project, named, rater, second_rater, tmp_path, capsys):
    good = tmp_path / "good.csv"
    good.write_text(GOOD_CSV)
    call_command("import_judgments", "test-project", str(good))
    assert "imported 3 judgments" in capsys.readouterr().out
    bad = tmp_path / "bad.csv"
    bad.write_text("image_a,image_b,winner,rater,time\next-0,ext-1,x,rater1,2024-01-01T00:00:00Z\n")
    with pytest.raises(CommandError, match="1 bad line"):
        call_command("import_judgments", "test-project", str(bad))
    assert f"{bad}:2:" in capsys.readouterr().err


@pytest.mark.django_db
def test_only_active_raters_of_the_project_and_no_user_name_oracle(project, named, rater, manager, outsider,
                                                                     make_member, make_user):
    from labeling.models import Membership

    gone = make_member(project, "gone_member", "rater")
    Membership.objects.filter(user=gone).update(is_active=False)
    disabled = make_member(project, "disabled_account", "rater")
    disabled.is_active = False
    disabled.save()
    make_user("site_admin", is_superuser=True, is_staff=True)
    names = ["site_admin", "gone_member", "disabled_account", "outsider", "manager1", "no_such_person"]
    text = "image_a,image_b,winner,rater,time\n" + "".join(
        f"ext-0,ext-1,a,{name},2024-03-01T10:00:00Z\n" for name in names)
    with pytest.raises(JudgmentFileInvalid) as caught:
        import_judgments(project, io.StringIO(text), "who.csv")
    reasons = [error.reason for error in caught.value.errors]
    assert len(reasons) == len(names) and Comparison.objects.count() == 0
    # One wording for all: a name that exists elsewhere reads exactly like one that exists nowhere.
    assert {reason.replace(repr(name), "NAME") for reason, name in zip(reasons, names)} == {
        "rater NAME is not an active rater of this project"}


@pytest.mark.django_db
@pytest.mark.parametrize("when", ["9999-12-31T23:59:59Z", "9999-12-31T23:59:59-05:00", "2999-01-01T00:00:00Z",
                                  "1969-12-31T23:59:59Z", "0001-01-01T00:00:00+01:00"])
def test_judgment_times_are_bounded(project, named, rater, when):
    text = f"image_a,image_b,winner,rater,time\next-0,ext-1,a,rater1,{when}\n"
    with pytest.raises(JudgmentFileInvalid, match="out of range"):
        import_judgments(project, io.StringIO(text), "when.csv")
    assert Comparison.objects.count() == 0
