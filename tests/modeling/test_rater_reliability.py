"""The rater-reliability fit (crowd-BT's attentive rater) and its use in the human scores and dashboards."""
import numpy as np
import pytest
from scipy import stats

from modeling.ml import bradley_terry as bt
from modeling.ml import rater_reliability
from modeling.ml.rater_reliability import fit_rater_reliability
from modeling.models import HumanScoreStamp
from modeling.services import agreement, human_score_writes, human_scores
from tests.modeling.dashboard_data import add_comparisons, make_images, member, thurstone_judgments, user


def crowd(seed: int, n_images: int = 300, per_image: int = 4, n_raters: int = 20):
    """Random pairs judged by honest raters 0..14, random clickers 15..18 and an always-left rater 19."""
    rng = np.random.default_rng(seed)
    quality = rng.normal(size=n_images)
    m = per_image * n_images
    a = rng.integers(0, n_images, m)
    b = (a + rng.integers(1, n_images, m)) % n_images
    rater = np.arange(m) % n_raters
    outcome = (rng.random(m) < stats.norm.cdf(quality[a] - quality[b])).astype(float)
    outcome[rater >= 15] = (rng.random(np.count_nonzero(rater >= 15)) < 0.5).astype(float)
    outcome[rater == 19] = 1.0
    return quality, a, b, outcome, rater


def test_random_and_one_sided_raters_get_low_weights_and_the_ranking_recovers():
    quality, a, b, outcome, rater = crowd(0)
    fit = fit_rater_reliability(quality.size, a, b, outcome, rater)
    assert list(fit.rater_ids) == list(range(20))
    assert fit.attentive[:15].min() > 0.8
    assert fit.attentive[15:19].max() < 0.45
    assert fit.attentive[19] < 0.05 and fit.careless_left[19] > 0.9
    plain = bt.fit_posterior(quality.size, a, b, outcome)
    honest = rater < 15
    oracle = bt.fit_posterior(quality.size, a[honest], b[honest], outcome[honest])
    srcc = {name: stats.spearmanr(posterior.mean, quality)[0]
            for name, posterior in (("plain", plain), ("weighted", fit.posterior), ("oracle", oracle))}
    assert srcc["weighted"] > srcc["plain"] + 0.03
    assert srcc["weighted"] > srcc["oracle"] - 0.02
    # Each comparison's weight is its probability of being attentive: the spammers' are small.
    assert fit.weight[rater >= 15].mean() < 0.4 < 0.8 < fit.weight[honest].mean()


def test_without_spammers_the_weighted_fit_ranks_as_the_unweighted_one():
    quality, a, b, outcome, rater = crowd(1)
    honest = rater < 15
    a, b, outcome, rater = a[honest], b[honest], outcome[honest], rater[honest]
    fit = fit_rater_reliability(quality.size, a, b, outcome, rater)
    plain = bt.fit_posterior(quality.size, a, b, outcome)
    assert fit.attentive.min() > 0.8
    assert abs(stats.spearmanr(fit.posterior.mean, quality)[0] - stats.spearmanr(plain.mean, quality)[0]) < 0.01


def test_a_tie_weighs_its_raters_attentive_probability():
    a, b = np.array([0, 1, 2, 0]), np.array([1, 2, 3, 3])
    fit = fit_rater_reliability(4, a, b, np.array([1.0, 1.0, 0.5, 1.0]), np.array([7, 7, 7, 9]))
    assert fit.weight[2] == pytest.approx(fit.attentive_of(7))
    assert fit.attentive_of(8) is None
    assert list(fit.judgments) == [3, 1]


@pytest.mark.django_db
def test_the_human_scores_weight_raters_unless_the_project_turns_it_off(project):
    honest, clicker = user("honest"), user("clicker")
    member(project, honest)
    member(project, clicker)
    images = make_images(project, 40)
    quality = np.linspace(-2, 2, 40)
    rng = np.random.default_rng(5)
    add_comparisons(project, thurstone_judgments(images, quality, 200, [honest], rng, noise=0.5))
    clicks = thurstone_judgments(images, quality, 200, [clicker], rng)
    add_comparisons(project, [(left, right, "a" if rng.random() < 0.5 else "b", rater, ms)
                              for left, right, _, rater, ms in clicks])

    weighted = human_scores.fit_human_scores(project)
    assert weighted.reliability.attentive_of(clicker.pk) < 0.3 < 0.8 < weighted.reliability.attentive_of(honest.pk)
    assert weighted.summary()["rater_weighting"] >= 1
    report = agreement.compute_report_data(project, n_resamples=50)
    weights = {row["username"]: row["weight"] for row in report["raters"]}
    assert weights["clicker"] < 0.3 < 0.8 < weights["honest"]

    project.weight_raters_by_reliability = False
    project.save()
    plain = human_scores.fit_human_scores(project)
    assert plain.reliability is None
    assert stats.spearmanr(weighted.posterior.mean, quality)[0] > stats.spearmanr(plain.posterior.mean, quality)[0]
    report = agreement.compute_report_data(project, n_resamples=50)
    assert {row["weight"] for row in report["raters"]} == {None}


def two_honest_raters_and_a_clicker(project):
    """``judge(n)``: n judgments of 40 images by two honest raters, and n / 2 random clicks by a third."""
    raters = [user(name) for name in ("honest", "steady", "clicker")]
    for rater in raters:
        member(project, rater)
    images = make_images(project, 40)
    quality = np.linspace(-2, 2, 40)
    rng = np.random.default_rng(8)

    def judge(n):
        honest = thurstone_judgments(images, quality, n, raters[:2], rng, noise=0.5)
        clicks = [(left, right, "a" if rng.random() < 0.5 else "b", raters[2], ms)
                  for left, right, _, _, ms in thurstone_judgments(images, quality, n // 2, raters[2:], rng)]
        add_comparisons(project, honest + clicks)

    return judge


@pytest.mark.django_db
def test_a_refit_starts_from_the_stored_fits_raters_weights(project):
    judge = two_honest_raters_and_a_clicker(project)
    judge(200)
    first = human_scores.fit_human_scores(project)
    stored = human_score_writes.stored_rater_weights(project)
    np.testing.assert_array_equal(stored.rater_ids, first.reliability.rater_ids)
    np.testing.assert_array_equal(stored.attentive, first.reliability.attentive)
    # A refit of the same comparisons starts where the first fit did: the same scores.
    np.testing.assert_allclose(human_scores.fit_project_posterior(project).posterior.mean, first.posterior.mean,
                               rtol=0, atol=1e-6)

    judge(6)
    warm = human_scores.fit_project_posterior(project)
    HumanScoreStamp.objects.filter(project=project).update(rater_weights=None)  # as before any weights were stored
    cold = human_scores.fit_project_posterior(project)
    assert warm.reliability.steps < cold.reliability.steps
    np.testing.assert_allclose(warm.reliability.attentive, cold.reliability.attentive, atol=0.05)
    assert stats.spearmanr(warm.posterior.mean, cold.posterior.mean)[0] > 0.99

    project.weight_raters_by_reliability = False  # a fit that weighs every rater alike stores no weights
    project.save()
    human_scores.fit_human_scores(project)
    assert human_score_writes.stored_rater_weights(project) is None


def test_a_refit_started_from_the_last_fit_takes_fewer_steps_and_agrees():
    quality, a, b, outcome, rater = crowd(2)
    keep = np.arange(a.size) < a.size - 20  # the last fit saw all but the 20 newest judgments
    last = fit_rater_reliability(quality.size, a[keep], b[keep], outcome[keep], rater[keep])
    cold = fit_rater_reliability(quality.size, a, b, outcome, rater)
    warm = fit_rater_reliability(quality.size, a, b, outcome, rater, init=last.posterior.mean,
                                 previous=last.rater_weights())
    assert warm.steps < cold.steps
    np.testing.assert_allclose(warm.attentive, cold.attentive, atol=0.05)
    assert stats.spearmanr(warm.posterior.mean, cold.posterior.mean)[0] > 0.99


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_honest_rater_keeps_their_weight_when_the_judgments_cannot_identify_it(seed):
    """A quarter of a judgment per image: the leave-one-out likelihoods say next to nothing (1/2 on most
    images), and a careless side share fitted to the rater's own clicks used to win, pulling ``eta`` to 0.
    Here the fit swung between eta 0 and 1 at every step, and ended where ``max_steps`` (30, even) left it;
    now a swing settles halfway (0.5, the prior's mean, where the data cannot tell) whatever ``max_steps``."""
    rng = np.random.default_rng(seed)
    n_images = 600
    quality = rng.normal(size=n_images)
    a = rng.integers(0, n_images, n_images // 4)
    b = (a + rng.integers(1, n_images, a.size)) % n_images
    outcome = (rng.random(a.size) < stats.norm.cdf((quality[a] - quality[b]) / np.sqrt(2))).astype(float)
    fit = fit_rater_reliability(n_images, a, b, outcome, np.zeros(a.size, dtype=int))
    odd = fit_rater_reliability(n_images, a, b, outcome, np.zeros(a.size, dtype=int),
                                config=rater_reliability.ReliabilityConfig(max_steps=29))
    assert fit.steps < 29 and odd.attentive[0] == fit.attentive[0]  # settled, not stopped by max_steps
    assert fit.attentive[0] >= 0.5
    assert fit.weight.mean() >= 0.45
    plain = bt.fit_posterior(n_images, a, b, outcome)
    # Not the prior: the judged images moved, about as far as in the unweighted fit.
    assert np.abs(fit.posterior.mean).max() > 0.5 * np.abs(plain.mean).max()


# --- The fast arithmetic against the previous one (bisection for eta, backtracking to the last step) ----


def bisection_map_attentive(attentive, careless, rater_of, n_raters, config, start=None):
    """``_map_attentive`` as it was: 40 halvings of [1e-4, 1 - 1e-4] over every judgment."""
    alpha = config.prior_strength * config.prior_attentive
    beta = config.prior_strength * (1.0 - config.prior_attentive)
    low, high = np.full(n_raters, 1e-4), np.full(n_raters, 1.0 - 1e-4)
    for _ in range(40):
        eta = (low + high) / 2
        mixture = eta[rater_of] * attentive + (1.0 - eta[rater_of]) * careless
        slope = np.bincount(rater_of, (attentive - careless) / mixture, minlength=n_raters)
        slope += (alpha - 1.0) / eta - (beta - 1.0) / (1.0 - eta)
        rising = slope > 0
        low = np.where(rising, eta, low)
        high = np.where(rising, high, eta)
    return (low + high) / 2


def backtracking_fit_posterior(n_images, a_index, b_index, outcome, weight=None, prior_mean=None, prior_var=None,
                               init=None, config=bt.FitConfig()):
    """``bradley_terry.fit_posterior`` as it was: every step through the line search, the last one too."""
    problem = bt._Problem(n_images, a_index, b_index, outcome, weight, prior_mean, prior_var, config)
    scores = np.array(problem.prior_mean if init is None else init, dtype=np.float64)
    current = problem.objective(scores)
    newton_steps = 0
    for newton_steps in range(1, config.max_newton_steps + 1):
        gradient, pair_curvature = problem.curvature(scores)
        step = bt._preconditioned_cg(lambda x: problem.hessian_times(pair_curvature, x), -gradient,
                                     1.0 / problem.hessian_diagonal(pair_curvature), config.cg_rtol, config.max_cg_steps)
        scores, current, step_size = bt._line_search(problem, scores, step, gradient, current)
        if step_size * np.max(np.abs(step), initial=0.0) < config.tolerance:
            break
    _, pair_curvature = problem.curvature(scores)
    return bt.Posterior(scores, 1.0 / problem.hessian_diagonal(pair_curvature), newton_steps)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_bracketed_newton_eta_is_bisections(seed):
    """Random likelihoods for raters of every kind: informative either way, random clickers whose eta sits at
    the floor, near-perfect raters near the ceiling, one judgment, none (the prior alone); three priors,
    one of them not log-concave (kept on bisection's path)."""
    rng = np.random.default_rng(seed)
    n_raters = 40
    sizes = rng.integers(1, 400, n_raters)
    sizes[[3, 17]] = 0  # only ties: no decided judgment
    sizes[5] = 1
    rater_of = np.repeat(np.arange(n_raters), sizes)
    attentive = rng.uniform(0.05, 0.95, rater_of.size)
    careless = rng.uniform(0.05, 0.95, rater_of.size)
    careless[rater_of < 8] = attentive[rater_of < 8] + rng.uniform(0.0, 0.04, np.count_nonzero(rater_of < 8))
    careless[(rater_of >= 8) & (rater_of < 14)] *= 0.02  # as good as certainly attentive
    leaning = rater_reliability.ReliabilityConfig(prior_attentive=0.9, prior_strength=4.0)  # Beta(3.6, 0.4)
    for config in (rater_reliability.ReliabilityConfig(), leaning,
                   rater_reliability.ReliabilityConfig(prior_attentive=0.75, prior_strength=8.0)):
        expected = bisection_map_attentive(attentive, careless, rater_of, n_raters, config)
        for start in (None, rng.uniform(0, 1, n_raters)):
            fast = rater_reliability._map_attentive(attentive, careless, rater_of, n_raters, config, start=start)
            assert np.max(np.abs(fast - expected)) < 1e-9
        if config == rater_reliability.ReliabilityConfig():
            assert expected.min() < 2e-4 and expected.max() > 0.99  # the range's ends were reached


def test_each_raters_eta_is_what_their_judgments_alone_give():
    """The passes over the judgments leave out the raters already solved: a rater's eta is, to the last bit,
    what solving that rater alone gives, however long the others take."""
    rng = np.random.default_rng(7)
    n_raters = 12
    rater_of = rng.permutation(np.repeat(np.arange(n_raters), rng.integers(50, 300, n_raters)))
    attentive = rng.uniform(0.05, 0.95, rater_of.size)
    careless = rng.uniform(0.05, 0.95, rater_of.size)
    careless[rater_of < 3] = attentive[rater_of < 3] * 1.3  # random clickers: their eta ends at the floor, late
    config = rater_reliability.ReliabilityConfig()
    start = rng.uniform(0.2, 0.8, n_raters)
    together = rater_reliability._map_attentive(attentive, careless, rater_of, n_raters, config, start=start)
    for rater in range(n_raters):
        own = rater_of == rater
        alone = rater_reliability._map_attentive(attentive[own], careless[own], np.zeros(own.sum(), np.int64), 1,
                                                 config, start=start[rater:rater + 1])
        assert alone[0] == together[rater]
    assert together[:3].max() < 1e-3 < together[3:].min()


@pytest.mark.parametrize("seed", [3, 4])
def test_the_fit_gives_what_the_previous_arithmetic_gave(seed, monkeypatch):
    quality, a, b, outcome, rater = crowd(seed, n_images=400, per_image=6, n_raters=25)
    warm = quality + np.random.default_rng(seed).normal(0, 0.5, quality.size)
    fast = fit_rater_reliability(quality.size, a, b, outcome, rater, init=warm)
    monkeypatch.setattr(rater_reliability, "_map_attentive", bisection_map_attentive)
    monkeypatch.setattr(rater_reliability.bt, "fit_posterior", backtracking_fit_posterior)
    previous = fit_rater_reliability(quality.size, a, b, outcome, rater, init=warm)
    assert fast.steps == previous.steps
    for field in ("attentive", "careless_left", "weight"):
        assert np.max(np.abs(getattr(fast, field) - getattr(previous, field))) < 1e-6
    assert np.max(np.abs(fast.posterior.mean - previous.posterior.mean)) < 1e-6
    assert np.max(np.abs(fast.posterior.var - previous.posterior.var)) < 1e-6


def established_crowd(seed: int, n: int = 3000, m: int = 30_000):
    """(rng, n, (a, b, outcome, rater)): random pairs judged by 20 raters, 0 and 1 random clickers, the rest
    Thurstone observers; the rng goes on to draw what comes next."""
    rng = np.random.default_rng(seed)
    quality = rng.normal(size=n)
    a = rng.integers(0, n, m)
    b = (a + rng.integers(1, n, m)) % n
    rater = rng.integers(0, 20, m)
    outcome = (rng.random(m) < stats.norm.cdf(quality[a] - quality[b])).astype(float)
    outcome[rater < 2] = (rng.random(np.count_nonzero(rater < 2)) < 0.5).astype(float)  # two random clickers
    return rng, n, (a, b, outcome, rater)


@pytest.mark.parametrize("seed", [1, 3])
def test_newcomers_with_three_judgments_do_not_keep_the_fit_stepping(seed):
    # At 10^7 comparisons each step is a fit of all of them (minutes); before, a newcomer whose eta swung
    # between two values kept the fit stepping to max_steps (30) on these seeds.
    rng, n, (a, b, outcome, rater) = established_crowd(seed)
    established = fit_rater_reliability(n, a, b, outcome, rater)
    new_a = rng.integers(0, n, 15)
    new_b = (new_a + rng.integers(1, n, 15)) % n
    joined = (np.concatenate([a, new_a]), np.concatenate([b, new_b]),
              np.concatenate([outcome, (rng.random(15) < 0.5).astype(float)]),
              np.concatenate([rater, 100 + np.arange(15) // 3]))  # five newcomers, three random judgments each

    fit = fit_rater_reliability(n, *joined)

    assert fit.steps <= established.steps + 2 < rater_reliability.ReliabilityConfig().max_steps
    np.testing.assert_allclose(fit.attentive[:20], established.attentive, atol=0.02)
    assert fit.attentive[0] < 0.1 and fit.attentive[1] < 0.1 and np.all(fit.attentive[2:20] > 0.9)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_a_carried_refit_after_newcomers_random_judgments_takes_one_weighted_fit(seed, monkeypatch):
    """As the scale run appends: random judgments by the established raters and ten newcomers. A newcomer's eta
    and careless side share used to swing against each other for several steps, each a fit of every comparison;
    they are now settled within a step, so the carried start, one weighted fit and a check suffice."""
    rng, n, (a, b, outcome, rater) = established_crowd(seed)
    established = fit_rater_reliability(n, a, b, outcome, rater)
    k = 300
    new_a = rng.integers(0, n, k)
    joined = (np.concatenate([a, new_a]), np.concatenate([b, (new_a + rng.integers(1, n, k)) % n]),
              np.concatenate([outcome, rng.integers(0, 2, k).astype(float)]),
              np.concatenate([rater, rng.integers(0, 30, k)]))  # raters 20..29 are new

    fits = []
    fit_posterior = rater_reliability.bt.fit_posterior
    monkeypatch.setattr(rater_reliability.bt, "fit_posterior", lambda *args, **kwargs: fits.append(1) or
                        fit_posterior(*args, **kwargs))
    rounds = []  # rounds of each settling: eta against side share, a pass over the raters still moving each
    settle, map_attentive = rater_reliability._settle_raters, rater_reliability._map_attentive

    def counted_settle(*args, **kwargs):
        rounds.append(0)
        return settle(*args, **kwargs)

    def counted_map(*args, **kwargs):
        rounds[-1] += 1
        return map_attentive(*args, **kwargs)

    monkeypatch.setattr(rater_reliability, "_settle_raters", counted_settle)
    monkeypatch.setattr(rater_reliability, "_map_attentive", counted_map)
    refit = fit_rater_reliability(n, *joined, init=established.posterior.mean, previous=established.rater_weights())

    assert len(fits) == 2  # the carried start and one fit with the judgments' own weights
    # A newcomer swinging between two states is settled halfway, not left to the rounds' cap (without that rule,
    # seed 3 took every round of both steps).
    assert max(rounds) < rater_reliability.MAX_SETTLE_ROUNDS
    np.testing.assert_allclose(refit.attentive[:20], established.attentive, atol=0.02)
    # Near the fit stepped until no eta moves by 10^-4 (the stopping rule's tolerance lets a newcomer's eta stop
    # where a few judgments' weight would still move; measured up to 0.04 on these seeds).
    monkeypatch.setattr(rater_reliability.bt, "fit_posterior", fit_posterior)
    monkeypatch.setattr(rater_reliability, "_settle_raters", settle)
    monkeypatch.setattr(rater_reliability, "_map_attentive", map_attentive)
    converged = fit_rater_reliability(n, *joined, init=established.posterior.mean, previous=established.rater_weights(),
                                      config=rater_reliability.ReliabilityConfig(tolerance=1e-4, settled_weight=0.0))
    assert converged.steps > refit.steps
    np.testing.assert_allclose(refit.attentive, converged.attentive, atol=0.1)
    np.testing.assert_allclose(refit.posterior.mean, converged.posterior.mean, atol=0.01)
