"""The dashboards' numbers: agreement rates, Krippendorff's alpha, bootstrap intervals, the rater table."""
import krippendorff
from django.urls import reverse
import numpy as np
import pytest
from scipy import stats

from modeling.ml import agreement_stats, intervals
from modeling.ml.agreement_stats import HI_WINS, LO_WINS, TIE, FlagThresholds
from modeling.models import AgreementReport
from modeling.services import agreement
from modeling.services.human_scores import ComparisonArrays
from tests.modeling.dashboard_data import add_comparisons, build_rated_project, make_images


def counts_of(*units):
    """Value counts [U, 3] from units written as lists of categories."""
    table = np.zeros((len(units), 3), dtype=np.int64)
    for row, unit in enumerate(units):
        for category in unit:
            table[row, category] += 1
    return table


def arrays(rows, n_images=10):
    """ComparisonArrays from (left index, right index, outcome, rater[, response_ms, gold])."""
    rows = [tuple(row) + (np.nan, -1)[len(row) - 4:] for row in rows]
    a, b, outcome, rater, response, gold = (np.array(column) for column in zip(*rows))
    return ComparisonArrays(np.arange(n_images, dtype=np.int64), a.astype(np.int64), b.astype(np.int64),
                            outcome.astype(float), rater.astype(np.int64), response.astype(float),
                            gold.astype(np.int64), np.arange(len(rows)), np.ones(len(rows), dtype=bool))


# --- Inter-rater agreement against hand-computed cases --------------------------------------------


def test_alpha_and_raw_agreement_two_raters_per_pair():
    # Four pairs, two judgments each: three pairs agree (lo, hi, tie), one splits lo/hi.
    # Coincidences o = [[2,0,1],[0,2,0],[1,0,2]], n = 8, marginals (3, 2, 3):
    # observed agreement 6/8; expected disagreement (64 - 22) / 7 = 6; alpha = 1 - 2/6.
    counts = counts_of([LO_WINS, LO_WINS], [LO_WINS, HI_WINS], [HI_WINS, HI_WINS], [TIE, TIE])
    result = agreement_stats.inter_rater_agreement(counts, n_resamples=200)
    assert result["pairs"] == 4 and result["judgments"] == 8
    assert result["raw_agreement"]["value"] == pytest.approx(0.75)
    assert result["alpha"]["value"] == pytest.approx(2 / 3)


def test_alpha_and_raw_agreement_with_three_raters_and_a_single_judgment():
    # (lo, lo, hi): o_ll = 1, o_lh = o_hl = 1; (hi, hi): o_hh = 2; (tie, lo): o_tl = o_lt = 1; (hi) alone: unpairable.
    # n = 7, trace 3: agreement 3/7; marginals (3, 1, 3): expected disagreement (49 - 19) / 6 = 5; alpha = 1 - 4/5.
    counts = counts_of([LO_WINS, LO_WINS, HI_WINS], [HI_WINS, HI_WINS], [TIE, LO_WINS], [HI_WINS])
    result = agreement_stats.inter_rater_agreement(counts, n_resamples=200)
    assert result["pairs"] == 3
    assert result["raw_agreement"]["value"] == pytest.approx(3 / 7)
    assert result["alpha"]["value"] == pytest.approx(0.2)


def test_our_coincidences_give_the_packages_alpha():
    rng = np.random.default_rng(7)
    counts = rng.multinomial(rng.integers(2, 6), [0.5, 0.1, 0.4], size=300)
    summed = agreement_stats.unit_coincidences(counts).sum(axis=0)
    ours, _ = agreement_stats.alpha_and_agreement(summed)
    assert float(ours) == pytest.approx(krippendorff.alpha(value_counts=counts, level_of_measurement="nominal"))


def test_alpha_is_undefined_when_every_judgment_is_the_same():
    result = agreement_stats.inter_rater_agreement(counts_of([LO_WINS, LO_WINS], [LO_WINS, LO_WINS]), n_resamples=50)
    assert result["alpha"]["value"] is None
    assert result["raw_agreement"]["value"] == 1.0
    assert agreement_stats.inter_rater_agreement(counts_of([LO_WINS]))["raw_agreement"]["value"] is None


def test_pairs_are_unordered_and_the_left_image_is_image_a():
    # Image 3 beats image 1 shown on the left, then on the right; images 1 and 2 tie.
    pairs = agreement_stats.group_pairs(np.array([3, 1, 1]), np.array([1, 3, 2]), np.array([1.0, 0.0, 0.5]))
    assert pairs.n_pairs == 2
    assert pairs.pair_index[0] == pairs.pair_index[1] != pairs.pair_index[2]
    assert list(pairs.category) == [HI_WINS, HI_WINS, TIE]  # 3 is the higher id of the pair (1, 3)
    assert sorted(zip(pairs.pair_lo.tolist(), pairs.pair_hi.tolist())) == [(1, 2), (1, 3)]


def test_latest_judgment_per_rater_and_pair():
    keep = agreement_stats.latest_per_rater(np.array([0, 0, 1, 0]), np.array([7, 8, 7, 7]))
    assert list(keep) == [False, True, True, True]


# --- Bootstrap intervals ---------------------------------------------------------------------------


def simulate_two_raters(rng, n_pairs, reliability, shares=(0.45, 0.1, 0.45)):
    """Each rater reports a pair's true category with probability ``reliability``, else a random draw.

    With the same category shares for both, the population alpha is reliability**2 and the
    population agreement is reliability**2 + (1 - reliability**2) * sum(shares**2).
    """
    truth = rng.choice(3, size=n_pairs, p=shares)
    units = []
    for category in truth:
        units.append([category if rng.random() < reliability else rng.choice(3, p=shares) for _ in range(2)])
    return counts_of(*units)


def test_bootstrap_intervals_cover_the_true_alpha_and_agreement():
    reliability, shares = 0.7, np.array([0.45, 0.1, 0.45])
    true_alpha = reliability**2
    true_agreement = reliability**2 + (1 - reliability**2) * (shares**2).sum()
    rng = np.random.default_rng(2024)
    covered = {"alpha": 0, "raw_agreement": 0}
    simulations = 150
    for simulation in range(simulations):
        counts = simulate_two_raters(rng, 150, reliability, shares)
        result = agreement_stats.inter_rater_agreement(counts, n_resamples=300, seed=simulation)
        for name, truth in (("alpha", true_alpha), ("raw_agreement", true_agreement)):
            covered[name] += result[name]["low"] <= truth <= result[name]["high"]
    # Nominal 95%: a correct interval covers 135 to 148 of 150 runs (binomial 99% range is wider still).
    for name, hits in covered.items():
        assert 0.87 <= hits / simulations <= 0.995, (name, hits)


def test_bootstrap_interval_of_an_agreement_rate_covers_and_narrows():
    rng = np.random.default_rng(5)
    covered, simulations, truth = 0, 200, 0.8
    for simulation in range(simulations):
        # 100 pairs with one to four judgments each; each judgment agrees with the model w.p. 0.8.
        sizes = rng.integers(1, 5, size=100)
        sums = rng.binomial(sizes, truth).astype(float)
        result = intervals.estimate(intervals.ratio_statistic(sums, sizes.astype(float)), 100, n_resamples=300,
                                    seed=simulation)
        covered += result["low"] <= truth <= result["high"]
    assert 0.88 <= covered / simulations <= 0.99
    large = rng.binomial(np.full(20000, 2), truth).astype(float)
    result = intervals.estimate(intervals.ratio_statistic(large, np.full(20000, 2.0)), 20000, n_resamples=200)
    assert result["low"] <= truth <= result["high"] and result["high"] - result["low"] < 0.02


def test_bootstrap_is_seeded_and_shares_resamples():
    sums, sizes = np.array([1.0, 0, 2, 1, 1]), np.array([1.0, 1, 2, 2, 1])

    def interval(seed):
        return intervals.estimate(intervals.ratio_statistic(sums, sizes), 5, seed=seed, n_resamples=200)

    assert interval(3) == interval(3) and interval(3) != interval(4)
    # Two numbers from one statistic get exactly the intervals each gets alone (same resamples).
    both = intervals.estimates(intervals.ratio_statistic(np.stack([sums, sizes - sums], 1), np.stack([sizes, sizes], 1)),
                               5, ["wins", "losses"], seed=3, n_resamples=200)
    assert both["wins"] == interval(3)
    assert both["losses"]["low"] == pytest.approx(1 - both["wins"]["high"])


def test_weighted_correlations_equal_scipy_on_the_resample():
    rng = np.random.default_rng(8)
    x = np.round(rng.normal(size=200), 1)  # with ties
    y = x + rng.normal(size=200)
    weights = np.bincount(rng.integers(200, size=200), minlength=200).astype(float)
    resample = np.repeat(np.arange(200), weights.astype(int))
    statistic = agreement_stats.correlation_statistic(x, y)
    batch = np.stack([weights, np.ones(200)])
    spearman, pearson = statistic(batch).T
    assert spearman == pytest.approx([stats.spearmanr(x[resample], y[resample])[0], stats.spearmanr(x, y)[0]])
    assert pearson == pytest.approx([stats.pearsonr(x[resample], y[resample])[0], stats.pearsonr(x, y)[0]])


def test_shares_and_side_tests_match_scipy():
    for successes, trials in [(0, 7), (3, 10), (10, 10), (41, 97)]:
        interval = stats.binomtest(successes, trials).proportion_ci(confidence_level=0.95)
        share = intervals.proportion(successes, trials)
        assert share["low"] == pytest.approx(interval.low) and share["high"] == pytest.approx(interval.high)
        assert agreement_stats.side_p_values([successes], [trials])[0] == pytest.approx(
            stats.binomtest(successes, trials).pvalue)
    assert intervals.proportion(0, 0)["value"] is None


# --- Raters ---------------------------------------------------------------------------------------

THRESHOLDS = FlagThresholds(too_fast_median_ms=800, too_fast_min_timed=5, one_side_share=0.9, one_side_min_decided=5,
                            gold_min_accuracy=0.7, gold_min_judgments=4)


def rater_counts_of(comparisons) -> dict[int, dict]:
    """What labeling.services.comparisons.rater_counts reads from the database, counted by hand."""
    counts: dict[int, dict] = {}
    for rater, outcome, gold in zip(comparisons.rater_id, comparisons.outcome, comparisons.gold):
        row = counts.setdefault(int(rater), {"n": 0, "left": 0, "right": 0, "gold_judged": 0, "gold_correct": 0})
        row["n"] += 1
        row["left"] += outcome == 1.0
        row["right"] += outcome == 0.0
        row["gold_judged"] += gold >= 0
        row["gold_correct"] += gold == 1
    return counts


def rater_table(rows, excluded=()):
    comparisons = arrays(rows)
    pairs = agreement_stats.group_pairs(comparisons.a_index, comparisons.b_index, comparisons.outcome)
    latest = agreement_stats.latest_per_rater(pairs.pair_index, comparisons.rater_id)
    included = ~np.isin(comparisons.rater_id, list(excluded))
    rows = agreement_stats.rater_rows(comparisons, pairs, included, latest, THRESHOLDS, rater_counts_of(comparisons))
    return {row["user_id"]: row for row in rows}


def test_agreement_with_the_majority_of_the_other_raters():
    rows = [
        # Pair (0, 1): raters 1 and 2 say 0 wins, rater 3 says 1 wins.
        (0, 1, 1.0, 1), (1, 0, 0.0, 2), (0, 1, 0.0, 3),
        # Pair (2, 3): raters 1 and 3 say 3 wins; rater 2 ties.
        (2, 3, 0.0, 1), (2, 3, 0.5, 2), (3, 2, 1.0, 3),
    ]
    table = rater_table(rows)
    # Rater 1: others on (0,1) split 1-1: no majority; others on (2,3) split tie/3: no majority.
    assert table[1]["majority_agreement"]["n"] == 0
    # Rater 2: (0,1) others split: none; (2,3) others both say 3 wins and rater 2 tied: disagrees.
    assert table[2]["majority_agreement"]["value"] == 0.0 and table[2]["majority_agreement"]["n"] == 1
    # Rater 3: (0,1) others both say 0 wins: disagrees; (2,3) others 3-wins and tie: no strict majority.
    assert table[3]["majority_agreement"]["value"] == 0.0 and table[3]["majority_agreement"]["n"] == 1
    assert table[1]["on_shared_pairs"] == 2


def test_an_excluded_rater_is_measured_but_does_not_make_the_majority():
    rows = [(0, 1, 1.0, 1), (0, 1, 1.0, 2), (0, 1, 1.0, 3), (0, 1, 0.0, 8), (0, 1, 0.0, 9)]
    table = rater_table(rows, excluded={9})
    assert table[9]["majority_agreement"]["value"] == 0.0  # raters 1-3 outvote rater 8
    assert table[8]["majority_agreement"]["value"] == 0.0
    # Rater 1's others: 2 and 3 agree, 8 does not; rater 9 is excluded, else it would be 2 to 2.
    assert table[1]["majority_agreement"]["value"] == 1.0


def test_position_bias_speed_gold_and_flags():
    rows = []
    for k in range(10):  # rater 1: careful, both sides, right on gold
        rows.append((k % 5, k % 5 + 5, 1.0 if k % 2 else 0.0, 1, 2500 + k, 1 if k < 4 else -1))
    for k in range(10):  # rater 2: always the left image, fast
        rows.append((k % 5, k % 5 + 5, 1.0, 2, 300 + k, -1))
    for k in range(10):  # rater 3: mostly wrong on gold, ties a quarter
        rows.append((k % 5, k % 5 + 5, 0.5 if k < 3 else float(k % 2), 3, 3000, 0 if k < 4 else (1 if k == 4 else -1)))
    table = rater_table(rows)
    assert table[1]["left_share"] == 0.5 and table[1]["flags"] == []
    assert table[1]["gold"]["value"] == 1.0 and table[1]["gold"]["n"] == 4
    assert table[1]["median_response_ms"] == pytest.approx(2504.5)
    assert table[2]["left_share"] == 1.0 and table[2]["right_share"] == 0.0
    assert table[2]["side_p_value"] == pytest.approx(2 * 0.5**10)
    assert set(table[2]["flags"]) == {"one_side", "too_fast"}
    assert table[3]["tie_share"] == pytest.approx(0.3)
    assert table[3]["gold"]["value"] == pytest.approx(1 / 5) and table[3]["flags"] == ["gold"]


def test_human_ceiling_and_the_model_on_the_same_judgments():
    # One held-out pair (0, 1) judged lo, lo, hi by three raters.
    comparisons = arrays([(0, 1, 1.0, 1), (1, 0, 0.0, 2), (0, 1, 0.0, 3)])
    pairs = agreement_stats.group_pairs(comparisons.a_index, comparisons.b_index, comparisons.outcome)
    rows, agree = agreement_stats.human_ceiling_judgments(pairs, np.ones(3, bool))
    assert list(rows) == [0, 1, 2] and list(agree) == [0.5, 0.5, 0.0]
    model = np.array([2.0, 1.0] + [5.0] * 8)  # scores image 0 higher
    per_judgment = agreement_stats.judgment_agreement(model, comparisons.a_index, comparisons.b_index, comparisons.outcome)
    assert list(per_judgment) == [1.0, 1.0, 0.0]


def test_the_posters_table_comes_from_the_versions_held_out_evaluation():
    row = {"error_mean": 0.41, "error_std": 0.3, "lcc": 0.7, "srcc": 0.68, "kl": 0.09, "emd": 0.05,
           "pairwise_agreement": 0.74, "n_references": 120}
    table = agreement.poster_table({"holdout": {"tags": row, "image_only": {**row, "srcc": 0.6}}})
    assert table["tags"]["srcc"] == 0.68 and table["image_only"]["srcc"] == 0.6
    assert table["tags"]["emd"] == 0.05 and table["tags"]["n_references"] == 120
    without_references = {key: None for key in row} | {"pairwise_agreement": 0.7, "n_references": 0}
    assert agreement.poster_table({"holdout": {"tags": without_references}}) is None
    assert agreement.poster_table({}) is None


# --- The stored report ----------------------------------------------------------------------------


@pytest.fixture
def rated_project(project):
    return build_rated_project(project)


@pytest.mark.django_db
def test_the_report_is_computed_and_stored(project, rated_project):
    report = agreement.compute_and_store_report(project, n_resamples=200)
    data = AgreementReport.objects.get(pk=report.pk).data
    assert report.model_version_id == rated_project["version"].pk
    assert data["totals"]["comparisons"] == 400 + 600 + 30
    assert data["encoder"] == {"id": "tiny", "is_demo": True}

    human = data["human"]
    assert human["pairs"] >= 150
    assert 0.5 < human["raw_agreement"]["value"] < 1
    assert human["raw_agreement"]["low"] <= human["raw_agreement"]["value"] <= human["raw_agreement"]["high"]
    assert 0 < human["alpha"]["value"] < 1

    raters = {row["username"]: row for row in data["raters"]}
    assert raters["lefty"]["left_share"] == 1.0 and "one_side" in raters["lefty"]["flags"]
    assert "too_fast" in raters["lefty"]["flags"]
    assert all(raters[f"rater{k}"]["flags"] == [] for k in range(3))

    from labeling.models import Comparison
    from modeling.services.datasets import is_holdout

    held = [is_holdout(project.pk, a, b) for a, b in Comparison.objects.values_list("image_a_id", "image_b_id")]
    assert data["totals"]["heldout_comparisons"] == sum(held) > 0  # the model loop's own rule

    active = data["model"]["versions"][0]
    assert active["is_active"] and data["model"]["active_version_id"] == active["id"]
    assert 0 < active["heldout_agreement"]["n"] <= data["totals"]["heldout_comparisons"]
    assert 0.5 < active["heldout_agreement"]["value"] <= 1
    assert active["ceiling"]["pairs"] > 0 and active["ceiling"]["human"]["value"] is not None
    assert active["human_correlation"]["srcc"]["value"] > 0.8
    assert active["human_correlation"]["srcc"]["low"] < active["human_correlation"]["srcc"]["high"]

    charts = data["charts"]
    assert len(charts["scatter"]["points"]) == 40
    assert charts["scatter"]["points"][0]["url"].startswith("/media/images/")
    assert sum(charts["histogram"]["model"]["counts"]) == 40
    assert sum(row["comparisons"] for row in charts["comparisons_per_day"]) == 1030
    assert len(charts["comparisons_per_day"]) >= 2
    assert len(charts["uncertain_images"]) == agreement_stats.GALLERY_SIZE
    assert charts["agreement_by_version"][0]["version_id"] == active["id"]


@pytest.mark.django_db
def test_an_unchanged_project_is_not_recomputed(project, rated_project):
    first = agreement.compute_and_store_report(project, n_resamples=50)
    assert agreement.compute_and_store_report(project, only_if_changed=True, n_resamples=50) is None
    add_comparisons(project, [(rated_project["images"][0], rated_project["images"][5], "a",
                               rated_project["raters"][0])])
    second = agreement.compute_and_store_report(project, only_if_changed=True, n_resamples=50)
    assert second is not None and second.pk != first.pk
    assert agreement.latest_report(project).pk == second.pk


@pytest.mark.django_db
def test_the_next_report_starts_its_comparisons_only_fit_from_the_last_ones_and_gives_the_same_numbers(
        project, rated_project, monkeypatch):
    from modeling.services import human_scores, report_fit_start

    fits = []
    fit_project_posterior = human_scores.fit_project_posterior

    def recorded(*args, **kwargs):
        fits.append(fit_project_posterior(*args, **kwargs))
        return fits[-1]

    monkeypatch.setattr(human_scores, "fit_project_posterior", recorded)
    first = agreement.compute_report_data(project, n_resamples=50)
    second = agreement.compute_report_data(project, n_resamples=50)
    report_fit_start.forget()  # as a fresh worker: from the stored means
    fresh = agreement.compute_report_data(project, n_resamples=50)
    # The project weighs its raters: the fit the raters' EM begins with is the one kept.
    from_stored, from_kept, from_stored_again = (fit.reliability.first_fit for fit in fits)
    assert from_kept.newton_steps < from_stored.newton_steps == from_stored_again.newton_steps
    np.testing.assert_allclose(fits[1].posterior.mean, fits[0].posterior.mean, atol=1e-5)
    for data in (second, fresh):
        version, first_version = data["model"]["versions"][0], first["model"]["versions"][0]
        assert version["human_correlation"]["srcc"]["value"] == pytest.approx(
            first_version["human_correlation"]["srcc"]["value"], abs=1e-6)
        assert [row["weight"] for row in data["raters"]] == pytest.approx([row["weight"] for row in first["raters"]],
                                                                            abs=1e-6)


@pytest.mark.django_db
def test_a_project_without_comparisons_or_models_has_a_report(project):
    make_images(project, 3)
    data = agreement.compute_and_store_report(project).data
    assert data["totals"]["comparisons"] == 0
    assert data["human"]["raw_agreement"]["value"] is None
    assert data["model"]["versions"] == [] and data["charts"]["scatter"] is None
    assert data["coverage"][0] == {"comparisons": "0", "images": 3}


@pytest.mark.django_db
def test_a_large_project_is_reported_from_a_sample_whose_intervals_cover_the_exact_numbers(
        project, rated_project, settings, client, manager):
    exact = agreement.compute_report_data(project, n_resamples=200)
    assert exact["sample"] is None  # below the threshold (500,000 comparisons by default): exact
    settings.TAGRANK_AGREEMENT_SAMPLE = {"above": 1000, "comparisons": 500, "images": 25}
    estimated = agreement.compute_report_data(project, n_resamples=200)

    sample = estimated["sample"]
    assert sample["of_comparisons"] == 1030 and 300 < sample["comparisons"] < 800
    assert sample["images"] == 25 and sample["of_images"] == 40
    assert estimated["totals"] == exact["totals"]  # counts stay exact
    assert estimated["human"]["judgments"] < exact["human"]["judgments"]  # the agreement is the sample's
    exact_version, estimated_version = exact["model"]["versions"][0], estimated["model"]["versions"][0]
    figures = [
        (exact["human"]["raw_agreement"], estimated["human"]["raw_agreement"]),
        (exact["human"]["alpha"], estimated["human"]["alpha"]),
        (exact_version["heldout_agreement"], estimated_version["heldout_agreement"]),
        (exact_version["ceiling"]["human"], estimated_version["ceiling"]["human"]),
        (exact_version["human_correlation"]["srcc"], estimated_version["human_correlation"]["srcc"]),
        (exact_version["human_correlation"]["lcc"], estimated_version["human_correlation"]["lcc"]),
    ]
    for exact_figure, sampled_figure in figures:
        assert sampled_figure["value"] != exact_figure["value"]  # estimated, not copied
        assert sampled_figure["low"] <= exact_figure["value"] <= sampled_figure["high"]
    # Every rater keeps a row, with the exact counts.
    assert ([(row["user_id"], row["comparisons"]) for row in estimated["raters"]]
            == [(row["user_id"], row["comparisons"]) for row in exact["raters"]])

    agreement.compute_and_store_report(project, n_resamples=50)
    client.force_login(manager)
    html = client.get(reverse("project-dashboard", args=[project.slug])).content.decode()
    assert 'id="report-sample"' in html and f"of {sample['of_comparisons']} comparisons" in html
