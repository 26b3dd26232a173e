"""The payment file: per rater and crowd worker id, streamed as CSV, JSONL and Parquet (managers)."""
from __future__ import annotations

import numpy as np
import pytest
from django.test import Client

from labeling.models import Comparison, Membership
from labeling.services import crowd_links
from modeling.services import agreement
from tests.labeling.test_data_exports import rows_of
from tests.modeling.dashboard_data import add_comparisons, thurstone_judgments

URL = "/api/v1/projects/test-project/export/payment/"


@pytest.fixture
def crowd_study(project, images, manager, rater, monkeypatch):
    """Two crowd workers (one done, with gold), the rater failed the qualification."""
    monkeypatch.setattr("worker.dispatch.send_metrics_refresh", lambda project_id: None)
    link = crowd_links.create_link(project, manager, name="Pilot", quota=30, completion_code="C0DE")
    workers = [crowd_links.open_link(link.token, {"PROLIFIC_PID": pid, "STUDY_ID": "s1"}) for pid in ("w-done", "w-half")]
    rng = np.random.default_rng(0)
    quality = np.linspace(-1, 1, len(images))
    add_comparisons(project, thurstone_judgments(images, quality, 30, [workers[0].user], rng))
    add_comparisons(project, thurstone_judgments(images, quality, 10, [workers[1].user], rng))
    add_comparisons(project, [(images[0], images[1], "a", workers[0].user, 900, True, True),
                              (images[2], images[3], "b", workers[0].user, 900, True, False)])
    workers[0].completed_at = workers[0].started_at
    workers[0].save()
    Membership.objects.filter(project=project, user=rater).update(qualification="failed")
    agreement.compute_and_store_report(project, n_resamples=20)
    return link, workers


@pytest.mark.django_db
@pytest.mark.parametrize("output", ["csv", "jsonl", "parquet"])
def test_the_payment_file_has_a_row_per_rater_with_what_approval_needs(api, crowd_study, manager, rater, output):
    link, (done, half) = crowd_study
    response = api(manager).get(URL, {"format": output})
    assert response.status_code == 200 and response["Content-Disposition"].endswith(f'payment.{output}"')
    rows = {row["rater"]: row for row in rows_of(response, output)}
    assert set(rows) == {done.user.username, half.user.username, rater.username, "manager1"}
    first = rows[done.user.username]
    number = float if output == "csv" else (lambda value: value)
    assert first["external_worker_id"] == "w-done" and first["campaign_link"] == "Pilot"
    assert int(first["judgments"]) == 32 == Comparison.objects.filter(rater=done.user).count()
    assert int(first["gold_judged"]) == 2 and int(first["gold_correct"]) == 1
    assert number(first["gold_accuracy"]) == pytest.approx(0.5)
    assert number(first["time_on_task_s"]) > 0 and number(first["time_span_s"]) >= 0
    assert first["completion_code"] == "C0DE" and str(first["completed"]).lower() == "true"
    assert 0 <= number(first["weight"]) <= 1 and first["weight_as_of"]
    second = rows[half.user.username]
    assert second["external_worker_id"] == "w-half" and str(second["completed"]).lower() == "false"
    assert second["completion_code"] in ("", None)  # not done: no code
    assert "STUDY_ID" in str(second["platform_params"])
    failed = rows[rater.username]
    assert failed["qualification"] == "failed" and failed["external_worker_id"] in ("", None)
    assert failed["weight"] in ("", None)  # left out of the scores: no weight


@pytest.mark.django_db
def test_only_managers_download_the_payment_file(api, crowd_study, rater):
    assert api(rater).get(URL).status_code == 403
    worker_session = Client()
    worker_session.get(f"/study/{crowd_study[0].token}/", {"PROLIFIC_PID": "w-done"})
    assert worker_session.get(URL).status_code == 403
    assert api().get(URL).status_code == 401
