"""The leaderboard of a categorical field: the fit (plain numpy), the service, the API, the CSV and the page."""
import csv
import io

import numpy as np
import pytest

from labeling.models import Comparison
from labeling.services.imports import store_image
from modeling.ml.leaderboard import LeaderboardConfig, build_leaderboard, fit_ratings, ranks, win_matrix
from tests.clients import signed_in
from tests.conftest import make_image_bytes

FAST = LeaderboardConfig(n_bootstrap=200)


def simulate(strength, n_prompts, per_prompt, rng):
    values = np.arange(len(strength))
    a, b, y, cluster = [], [], [], []
    for prompt in range(n_prompts):
        for _ in range(per_prompt):
            first, second = rng.choice(values, 2, replace=False)
            a.append(first), b.append(second), cluster.append(prompt)
            y.append(float(rng.random() < 1 / (1 + np.exp(strength[second] - strength[first]))))
    return np.array(a), np.array(b), np.array(y), np.array(cluster)


def test_the_fit_recovers_known_strengths_and_is_centred():
    rng = np.random.default_rng(0)
    strength = np.array([1.2, 0.5, 0.0, -0.3, -1.4])
    a, b, y, cluster = simulate(strength, 400, 10, rng)
    rating = fit_ratings(win_matrix(a, b, y, 5))
    assert abs(rating.mean()) < 1e-9
    assert np.abs(rating - (strength - strength.mean())).max() < 0.15
    assert ranks(rating).tolist() == [1, 2, 3, 4, 5]


def test_intervals_contain_the_estimate_and_shrink_with_more_data():
    rng = np.random.default_rng(1)
    strength = np.array([0.6, 0.2, -0.1, -0.7])
    a, b, y, c = simulate(strength, 30, 4, rng)
    small = build_leaderboard(a, b, y, 4, c, FAST)
    a, b, y, c = simulate(strength, 300, 4, rng)
    large = build_leaderboard(a, b, y, 4, c, FAST)
    for board in (small, large):
        assert np.all(board.rating_low <= board.rating) and np.all(board.rating <= board.rating_high)
        assert np.all(board.rank_low <= board.rank) and np.all(board.rank <= board.rank_high)
    assert np.mean(large.rating_high - large.rating_low) < 0.6 * np.mean(small.rating_high - small.rating_low)
    estimate, low, high = large.difference_interval(0, 3)
    assert low < estimate < high and low > 0  # the strongest beats the weakest, clearly


def test_comparisons_within_one_value_are_left_out_and_ties_count_half():
    wins = win_matrix(np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]), np.array([1.0, 0.5, 1.0, 0.0]), 2)
    assert wins.tolist() == [[0.0, 0.5], [1.5, 0.0]]


def test_an_unbeaten_value_gets_a_finite_rating():
    rating = fit_ratings(np.array([[0.0, 5.0], [0.0, 0.0]]))
    assert np.all(np.isfinite(rating)) and rating[0] > 2


@pytest.fixture
def generator_campaign(project, rater):
    """Four prompts x three generators; strong beats middle beats weak in every prompt, judged by a rater."""
    project.group_key, project.allow_both_bad = "prompt_id", True
    project.save()
    images = {}
    for prompt in range(4):
        for index, generator in enumerate(("strong", "middle", "weak")):
            images[prompt, generator] = store_image(
                project, f"p{prompt}-{generator}.png", make_image_bytes(seed=10 * prompt + index),
                caption=f"prompt number {prompt}", metadata={"prompt_id": f"p{prompt}", "generator": generator},
            )[0]
    key = 0
    for prompt in range(4):
        for winner, loser in (("strong", "middle"), ("middle", "weak"), ("strong", "weak")):
            key += 1
            Comparison.objects.create(project=project, image_a=images[prompt, loser], image_b=images[prompt, winner],
                                      outcome="b", rater=rater, client_key=f"k{key}")
    return images


@pytest.mark.django_db
def test_the_api_ranks_the_generators_with_intervals_win_rates_and_a_csv(project, manager, generator_campaign):
    url = f"/api/v1/projects/{project.slug}/leaderboard/"
    body = signed_in(manager).get(url, {"field": "generator"}).json()
    assert [row["value"] for row in body["values"]] == ["strong", "middle", "weak"]
    assert body["grouped_by"] == "prompt_id" and body["comparisons"] == 12
    top = body["values"][0]
    assert top["human_rank"] == 1 and top["human_low"] <= top["human_rating"] <= top["human_high"]
    assert top["human_win_rate"] == 1.0 and top["human_comparisons"] == 8
    assert top["model_rating"] is None  # no model version yet
    strong = next(row for row in body["human_win_rates"] if row["value"] == "strong")
    assert strong["against"]["weak"] == {"win_rate": 1.0, "comparisons": 4}
    answer = signed_in(manager).get(url, {"field": "generator", "format": "csv"})
    rows = list(csv.DictReader(io.StringIO(answer.content.decode())))
    assert answer["Content-Type"].startswith("text/csv") and [r["value"] for r in rows] == ["strong", "middle", "weak"]
    assert signed_in(manager).get(url).status_code == 400  # no field: the answer names the candidates
    assert "generator" in signed_in(manager).get(url).json()["field"][0]
    assert signed_in(manager).get(url, {"field": "a__b"}).status_code == 400
    assert signed_in(manager).get(url, {"field": "prompt_idx"}).status_code == 400


@pytest.mark.django_db
def test_the_model_leaderboard_sits_beside_the_human_one(project, manager, generator_campaign):
    from modeling.models import ImageScore, ModelVersion

    version = ModelVersion.objects.create(project=project, is_active=True)
    # The model prefers the weak generator: the manager sees where it disagrees with the raters.
    quality = {"strong": 3.0, "middle": 5.0, "weak": 8.0}
    for (prompt, generator), image in generator_campaign.items():
        ImageScore.objects.create(model_version=version, image=image, mean=quality[generator] + 0.1 * prompt,
                                  distribution=[0.1] * 10)
    body = signed_in(manager).get(f"/api/v1/projects/{project.slug}/leaderboard/", {"field": "generator"}).json()
    by_value = {row["value"]: row for row in body["values"]}
    assert body["model_version"] == version.pk
    assert by_value["weak"]["model_rank"] == 1 and by_value["strong"]["model_rank"] == 3
    assert by_value["strong"]["human_rank"] == 1


@pytest.mark.django_db
def test_the_page_shows_the_leaderboard_to_managers_only(client, project, manager, rater, generator_campaign):
    client.force_login(rater)
    assert client.get(f"/projects/{project.slug}/leaderboard/").status_code == 403
    client.force_login(manager)
    page = client.get(f"/projects/{project.slug}/leaderboard/").content.decode()
    assert 'id="leaderboard-table"' in page and 'id="human-win-rates"' in page
    assert page.index('data-value="strong"') < page.index('data-value="middle"') < page.index('data-value="weak"')
    assert "export/preferences/" in page


@pytest.mark.django_db
def test_a_criterion_the_project_does_not_ask_is_a_400_on_the_api_and_a_404_on_the_page(
        client, project, manager, generator_campaign):
    api_url, page_url = f"/api/v1/projects/{project.slug}/leaderboard/", f"/projects/{project.slug}/leaderboard/"
    client.force_login(manager)
    # One question: any criterion is refused, as by the scores export and the analyses.
    refused = signed_in(manager).get(api_url, {"field": "generator", "criterion": "overall"})
    assert refused.status_code == 400 and "criterion" in refused.json()
    assert client.get(page_url, {"field": "generator", "criterion": "overall"}).status_code == 404
    assert signed_in(manager).get(api_url, {"field": "generator"}).json()["criterion"] is None  # unchanged
    project.criteria = [{"key": "alignment", "question": "Which matches the prompt?"},
                        {"key": "overall", "question": "Which is better?"}]
    project.save()
    refused = signed_in(manager).get(api_url, {"field": "generator", "criterion": "beauty"})
    assert refused.status_code == 400 and "beauty" in refused.json()["criterion"][0]
    assert client.get(page_url, {"field": "generator", "criterion": "beauty"}).status_code == 404
    # The primary key reads the judgments' outcomes, and the answer names it.
    primary = signed_in(manager).get(api_url, {"field": "generator", "criterion": "overall"}).json()
    assert primary["criterion"] == "overall" and primary["values"][0]["value"] == "strong"
    page = client.get(page_url, {"field": "generator", "criterion": "alignment"})
    assert page.status_code == 200 and "criterion=alignment&amp;format=csv" in page.content.decode()
