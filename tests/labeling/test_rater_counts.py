"""Per-rater, per-day counters: kept by triggers as judgments are stored, undone, imported, moved or deleted,
and always equal to a recount of the comparisons."""
import io
from datetime import timedelta

import pytest
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from labeling.models import Comparison, RaterDayCount
from labeling.services import comparisons as service
from labeling.services import pair_serving, rater_counts
from labeling.services.judgment_imports import import_judgments

FIELDS = ("rater_id", "day", *rater_counts.COUNTED, "last_at")


def counters(project):
    return sorted(RaterDayCount.objects.filter(project=project, comparisons__gt=0).values_list(*FIELDS))


def recounted(project):
    """The counters rebuilt from the comparisons (the reference), leaving the kept ones as they were."""
    kept = counters(project)
    rater_counts.recount_rater_days(project)
    rebuilt = counters(project)
    return kept, rebuilt


def assert_counters_match_a_recount(project):
    kept, rebuilt = recounted(project)
    assert kept == rebuilt


def judge(project, rater, winner="a", key="k", response_ms=850):
    lease = pair_serving.next_pair(project, rater)[1]
    return service.submit_comparison(project, rater, lease=lease.token, winner=winner, client_key=key,
                                     response_ms=response_ms)[0]


@pytest.mark.django_db
def test_judgments_and_an_undo_keep_the_counters_equal_to_a_recount(project, images, rater, second_rater):
    for k, winner in enumerate(["a", "b", "a"]):
        judge(project, rater, winner, key=f"r1-{k}", response_ms=None if k == 1 else 1000 + k)
    judge(project, second_rater, "b", key="r2-0")
    assert_counters_match_a_recount(project)
    totals = rater_counts.per_rater(project)
    assert totals[rater.pk]["n"] == 3 and totals[rater.pk]["left"] == 2 and totals[rater.pk]["right"] == 1
    assert totals[rater.pk]["mean_ms"] == pytest.approx((1000 + 1002) / 2)  # only the judgments that sent a time
    assert rater_counts.project_total(project) == 4 and rater_counts.rater_total(project, second_rater) == 1

    latest = Comparison.objects.filter(rater=rater).order_by("-id").first()
    service.undo_last_comparison(project, rater, comparison_id=latest.pk)
    assert rater_counts.rater_total(project, rater) == 2
    assert_counters_match_a_recount(project)  # last_at included: it goes back to the judgment before


@pytest.mark.django_db
def test_a_bulk_import_and_moved_or_deleted_rows_keep_the_counters_equal_to_a_recount(
        project, images, rater, second_rater):
    for index, image in enumerate(images[:4]):
        image.external_id = f"ext-{index}"
        image.save()
    judge(project, rater, key="live")
    csv = ("image_a,image_b,winner,rater,time,response_ms\n"
           "ext-0,ext-1,a,rater1,2024-03-01T10:00:00Z,1500\n"
           "ext-2,ext-3,ext-3,rater2,2024-03-01T23:59:00Z,\n"
           "ext-1,ext-2,tie,rater1,2024-03-02 08:00:00,700\n")
    report = import_judgments(project, io.BytesIO(csv.encode()), "old.csv")
    assert report.imported == 3
    assert_counters_match_a_recount(project)
    since = timezone.now().date() - timedelta(days=5000)
    days = {row["day"].isoformat(): row["comparisons"] for row in rater_counts.per_day(project, since)}
    assert days["2024-03-01"] == 2 and days["2024-03-02"] == 1
    # Rows changed or deleted in bulk, by hand or by a purge: the triggers follow every statement.
    Comparison.objects.filter(project=project, outcome="tie").update(created_at=F("created_at") - timedelta(days=3),
                                                                     outcome="a")
    assert_counters_match_a_recount(project)
    Comparison.objects.filter(project=project, rater=second_rater).delete()
    assert_counters_match_a_recount(project)
    assert rater_counts.rater_total(project, second_rater) == 0


@pytest.mark.django_db
def test_storing_a_judgment_sends_no_statement_for_the_counters(project, images, rater):
    """The trigger runs inside the INSERT: the judgment's statements are those it had before the counters."""
    judge(project, rater, key="first")
    lease = pair_serving.next_pair(project, rater)[1]
    with CaptureQueriesContext(connection) as queries:
        service.submit_comparison(project, rater, lease=lease.token, winner="a", client_key="second")
    assert not any("raterdaycount" in query["sql"].lower() for query in queries.captured_queries)
    assert rater_counts.rater_total(project, rater) == 2


@pytest.mark.django_db
def test_the_progress_page_and_api_read_the_counters_not_the_comparisons(client, api, project, images, manager,
                                                                         rater):
    judge(project, rater, key="one")
    judge(project, rater, "b", key="two")
    client.force_login(manager)
    with CaptureQueriesContext(connection) as queries:
        page = client.get(reverse("project-progress", args=[project.slug]))
        detail = client.get(reverse("project-detail", args=[project.slug]))
    assert page.status_code == 200 and detail.status_code == 200
    comparison_table = Comparison._meta.db_table
    assert not any(f'FROM "{comparison_table}"' in query["sql"] for query in queries.captured_queries)
    body = api(manager).get(f"/api/v1/projects/{project.slug}/progress/").json()
    assert body["comparisons"] == 2
    row = next(row for row in body["per_rater"] if row["rater"] == rater.pk)
    assert row["comparisons"] == 2 and row["left_share"] == 0.5
