"""Human scores per criterion: a project whose two criteria disagree gets two different orders; the scores
export takes ?criterion=; one-question projects read as before."""
import csv
import io

import numpy as np
import pytest
from django.urls import reverse
from rest_framework.test import APIClient
from scipy import stats

from labeling.models import CriterionAnswer
from modeling.models import AgreementReport, CriterionScore, HumanScore
from modeling.services import criterion_scores
from tests.modeling.dashboard_data import add_comparisons, make_images, make_model_version, member, user
from worker import metrics_tasks

CRITERIA = [{"key": "alignment", "question": "Which matches the prompt better?"},
            {"key": "overall", "question": "Which is better overall?"}]


def client_for(someone):
    client = APIClient()
    client.force_authenticate(someone)
    return client


def judge(images, quality, n, raters, rng):
    """(left, right, outcome, rater) rows on ``quality`` with a noisy observer."""
    rows = []
    for _ in range(n):
        i, j = rng.choice(len(images), size=2, replace=False)
        better = quality[i] + rng.normal(0, 0.5) > quality[j] + rng.normal(0, 0.5)
        rows.append((images[i], images[j], "a" if better else "b", raters[rng.integers(len(raters))]))
    return rows


def criterion_campaign(project, n_images=20, n_comparisons=600, seed=0):
    """Overall follows ``quality``; alignment follows the reverse order (the criteria disagree)."""
    project.criteria = CRITERIA
    project.save()
    raters = [user("r1"), user("r2")]
    for rater in raters:
        member(project, rater)
    images = make_images(project, n_images)
    quality = np.linspace(-2, 2, n_images)
    rng = np.random.default_rng(seed)
    rows = judge(images, quality, n_comparisons, raters, rng)
    created = add_comparisons(project, rows)
    answers = []
    for comparison, (left, right, _, _) in zip(created, rows):
        i, j = images.index(left), images.index(right)
        aligned = -quality[i] + rng.normal(0, 0.5) > -quality[j] + rng.normal(0, 0.5)
        answers += [CriterionAnswer(comparison=comparison, criterion="overall", outcome=comparison.outcome),
                    CriterionAnswer(comparison=comparison, criterion="alignment", outcome="a" if aligned else "b")]
    CriterionAnswer.objects.bulk_create(answers)
    return images, quality


def one_question_campaign(project):
    """The project keeps its one question: one rater's two judgments, no criterion answers."""
    rater = user("solo")
    member(project, rater)
    images = make_images(project, 6)
    add_comparisons(project, [(images[0], images[1], "a", rater), (images[2], images[3], "b", rater)])


def project_manager(project):
    manager = user("boss")
    member(project, manager, role="manager")
    return manager


def ordered(rows, images, key="human_score"):
    by_id = {int(row["image_id"]): row for row in rows}
    return np.array([float(by_id[image.pk][key]) for image in images])


@pytest.mark.django_db
def test_two_criteria_that_disagree_get_different_scores(project):
    images, quality = criterion_campaign(project)
    summary = metrics_tasks.fit_human_scores(project.pk)[project.slug]
    assert summary["criteria"]["alignment"]["comparisons"] == 600

    overall = dict(HumanScore.objects.filter(project=project).values_list("image_id", "mean"))
    alignment = dict(CriterionScore.objects.filter(project=project, criterion="alignment")
                     .values_list("image_id", "mean"))
    assert stats.spearmanr([overall[image.pk] for image in images], quality)[0] > 0.9
    assert stats.spearmanr([alignment[image.pk] for image in images], quality)[0] < -0.9
    # The primary criterion is the HumanScore rows: no second copy of it.
    assert not CriterionScore.objects.filter(criterion="overall").exists()
    assert not criterion_scores.criterion_scores_stale(project)


@pytest.mark.django_db
def test_the_periodic_fit_catches_up_a_criterion_behind_the_primary_one(project):
    criterion_campaign(project, n_comparisons=200)
    from modeling.services import human_scores

    human_scores.fit_human_scores(project)  # a pair refill fits the primary criterion alone
    assert criterion_scores.criterion_scores_stale(project)
    done = metrics_tasks.fit_human_scores()  # the schedule
    assert "alignment" in done[project.slug]["criteria"]
    assert CriterionScore.objects.filter(project=project, criterion="alignment").count() == 20
    assert not criterion_scores.criterion_scores_stale(project)


@pytest.mark.django_db
def test_a_criterion_without_answers_in_old_judgments_uses_the_answered_ones(project):
    images, _ = criterion_campaign(project, n_comparisons=100)
    CriterionAnswer.objects.filter(criterion="alignment", comparison_id__in=list(
        CriterionAnswer.objects.filter(criterion="alignment").order_by("comparison_id")
        .values_list("comparison_id", flat=True)[:40])).delete()
    fit = criterion_scores.fit_criterion(project, "alignment")
    assert fit.n_comparisons == 60 and int(fit.counts.sum()) == 120


@pytest.mark.django_db
def test_the_scores_export_takes_a_criterion(project):
    images, quality = criterion_campaign(project)
    metrics_tasks.fit_human_scores(project.pk)
    manager = project_manager(project)
    url = f"/api/v1/projects/{project.slug}/scores/"

    def rows(**params):
        response = client_for(manager).get(url, {"format": "csv", **params})
        assert response.status_code == 200, response.content
        return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode()))), response

    default, _ = rows()
    overall, _ = rows(criterion="overall")
    alignment, response = rows(criterion="alignment")
    assert "alignment" in response["Content-Disposition"]
    assert ordered(default, images).tolist() == ordered(overall, images).tolist()
    assert stats.spearmanr(ordered(default, images), quality)[0] > 0.9
    assert stats.spearmanr(ordered(alignment, images), quality)[0] < -0.9
    assert list(alignment[0]) == list(default[0])  # the same columns
    refused = client_for(manager).get(url, {"format": "csv", "criterion": "beauty"})
    assert refused.status_code == 400 and "criterion" in refused.json()


@pytest.mark.django_db
def test_raters_still_cannot_read_the_scores_of_any_criterion(project):
    criterion_campaign(project, n_comparisons=50)
    from django.contrib.auth import get_user_model

    rater = get_user_model().objects.get(username="r1")
    url = f"/api/v1/projects/{project.slug}/scores/"
    assert client_for(rater).get(url, {"format": "csv", "criterion": "alignment"}).status_code == 403


@pytest.mark.django_db
def test_one_question_projects_have_no_criterion_scores_and_refuse_a_criterion(project):
    one_question_campaign(project)
    summary = metrics_tasks.fit_human_scores(project.pk)[project.slug]
    assert "criteria" not in summary and not CriterionScore.objects.exists()
    assert not criterion_scores.criterion_scores_stale(project)
    manager = project_manager(project)
    url = f"/api/v1/projects/{project.slug}/scores/"
    assert client_for(manager).get(url, {"format": "csv"}).status_code == 200
    assert client_for(manager).get(url, {"format": "csv", "criterion": "overall"}).status_code == 400


@pytest.mark.django_db
def test_dropping_the_criteria_drops_their_scores(project):
    criterion_campaign(project, n_comparisons=50)
    metrics_tasks.fit_human_scores(project.pk)
    assert CriterionScore.objects.exists()
    project.criteria = []
    project.save()
    assert criterion_scores.criterion_scores_stale(project)
    metrics_tasks.fit_human_scores()
    assert not CriterionScore.objects.exists()


# --- Agreement and the dashboard, per criterion ----------------------------------------------------


@pytest.fixture
def reported(project):
    """Two disagreeing criteria, their scores fitted, a model that follows the overall order, the reports."""
    images, quality = criterion_campaign(project)
    make_model_version(project, images, 5.5 + 2 * quality)
    metrics_tasks.fit_human_scores(project.pk)
    done = metrics_tasks.compute_agreement(project.pk)[project.slug]
    manager = project_manager(project)
    return manager, done


def srcc(report: dict) -> float:
    active = next(version for version in report["model"]["versions"] if version["is_active"])
    return active["human_correlation"]["srcc"]["value"]


@pytest.mark.django_db
def test_the_agreement_report_is_per_criterion(project, reported):
    manager, done = reported
    assert set(done) == {"", "alignment"} and all(done.values())
    url = f"/api/v1/projects/{project.slug}/agreement/"
    default = client_for(manager).get(url).json()
    overall = client_for(manager).get(url, {"criterion": "overall"}).json()
    alignment = client_for(manager).get(url, {"criterion": "alignment"}).json()
    assert default["report_id"] == overall["report_id"] != alignment["report_id"]
    assert default["criterion"] == "overall" and alignment["criterion"] == "alignment"
    # The model follows the overall order: it agrees with the overall answers and not with alignment's.
    assert srcc(default) > 0.8 and srcc(alignment) < -0.8
    assert client_for(manager).get(url, {"criterion": "beauty"}).status_code == 400
    rater = AgreementReport.objects.get(pk=alignment["report_id"]).project.memberships.filter(role="rater").first()
    assert client_for(rater.user).get(url, {"criterion": "alignment"}).status_code == 403
    # Unchanged data: the periodic run adds no report of either criterion.
    assert metrics_tasks.compute_agreement()[project.slug] == {"": None, "alignment": None}


@pytest.mark.django_db
def test_the_dashboard_has_a_criterion_selector_and_its_csvs_follow_it(client, project, reported):
    manager, done = reported
    client.force_login(manager)
    url = reverse("project-dashboard", args=[project.slug])
    page = client.get(url, {"criterion": "alignment"}).content.decode()
    assert 'id="criterion-select"' in page and '<option value="alignment" selected>' in page
    assert "?criterion=alignment" in page
    csv_url = reverse("project-dashboard-csv", args=[project.slug, "versions"])
    primary_rows = list(csv.DictReader(io.StringIO(client.get(csv_url).content.decode())))
    alignment_rows = list(csv.DictReader(io.StringIO(client.get(csv_url, {"criterion": "alignment"}).content.decode())))
    assert float(primary_rows[0]["srcc_human"]) > 0.8 and float(alignment_rows[0]["srcc_human"]) < -0.8
    assert client.get(url, {"criterion": "beauty"}).status_code == 404


@pytest.mark.django_db
def test_one_question_reports_are_unchanged(project):
    one_question_campaign(project)
    done = metrics_tasks.compute_agreement(project.pk)
    assert isinstance(done[project.slug], int)
    report = AgreementReport.objects.get()
    assert report.criterion == "" and "criterion" not in report.data
    manager = project_manager(project)
    url = f"/api/v1/projects/{project.slug}/agreement/"
    assert client_for(manager).get(url).json()["report_id"] == report.pk
    assert client_for(manager).get(url, {"criterion": "overall"}).status_code == 400
