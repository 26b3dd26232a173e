"""Human scores: the per-project Bradley–Terry fit, stored as HumanScore rows."""
import numpy as np
import pytest
from scipy import stats

from labeling.models import Membership
from labeling.services import invites
from modeling.models import HumanScore
from modeling.services import human_scores
from tests.modeling.dashboard_data import (
    add_comparisons, make_images, make_model_version, member, thurstone_judgments, user,
)


def stored_means(project, images):
    means = dict(HumanScore.objects.filter(project=project).values_list("image_id", "mean"))
    return np.array([means[image.pk] for image in images])


def images_with_features(project, monkeypatch, rng, n: int = 60):
    """``n`` images whose pooled features (as the feature store would give them) predict their quality."""
    from modeling.services import model_prior

    images = make_images(project, n)
    features = rng.normal(size=(n, 6))
    quality = features @ np.array([1.0, -0.5, 0.8, 0.0, 0.3, 0.0])
    monkeypatch.setattr(model_prior, "pooled_project_features",
                        lambda image_ids, encoder_id: (np.ones(len(image_ids), dtype=bool), features))
    return images, quality


@pytest.fixture
def two_raters(project):
    honest, contrarian = user("honest"), user("contrarian")
    member(project, honest)
    member(project, contrarian)
    return honest, contrarian


@pytest.mark.django_db
def test_the_fit_orders_a_synthetic_set(project, two_raters):
    images = make_images(project, 30)
    quality = np.linspace(-2, 2, 30)
    rng = np.random.default_rng(1)
    add_comparisons(project, thurstone_judgments(images, quality, 900, list(two_raters), rng, noise=0.5))

    fit = human_scores.fit_human_scores(project)

    means = stored_means(project, images)
    assert stats.spearmanr(means, quality)[0] > 0.95
    assert HumanScore.objects.filter(project=project).count() == 30
    counts = dict(HumanScore.objects.filter(project=project).values_list("image_id", "n_comparisons"))
    assert sum(counts.values()) == 2 * 900
    assert fit.model_version_id is None  # no active model version: the flat prior


@pytest.mark.django_db
def test_a_fit_of_older_data_that_finishes_last_does_not_overwrite_a_newer_one(project, two_raters):
    """Fits run side by side on the workers (a pair refill, the dashboards' refit): the stored scores
    must never go back to fewer judgments because the slower fit, which read the data first, stored last."""
    images = make_images(project, 12)
    quality = np.linspace(-2, 2, 12)
    rng = np.random.default_rng(3)
    add_comparisons(project, thurstone_judgments(images, quality, 30, list(two_raters), rng, noise=0.5))
    older = human_scores.fit_project_posterior(project)  # read 30 judgments, still "running"
    add_comparisons(project, thurstone_judgments(images, quality, 60, list(two_raters), rng, noise=0.5))
    newer = human_scores.fit_project_posterior(project)
    assert older.data_as_of < newer.data_as_of

    human_scores.store_human_scores(project, newer)
    human_scores.store_human_scores(project, older)  # finishes last

    counts = HumanScore.objects.filter(project=project).values_list("n_comparisons", flat=True)
    assert sum(counts) == 2 * 90
    np.testing.assert_allclose(stored_means(project, images), newer.posterior.mean)
    assert set(HumanScore.objects.filter(project=project).values_list("fitted_at", flat=True)) == {newer.data_as_of}
    # In the usual order the newer fit replaces the older one.
    HumanScore.objects.filter(project=project).delete()
    human_scores.store_human_scores(project, older)
    human_scores.store_human_scores(project, newer)
    assert sum(HumanScore.objects.filter(project=project).values_list("n_comparisons", flat=True)) == 2 * 90


@pytest.mark.django_db
def test_left_is_image_a_and_a_tie_is_half_a_win(project, two_raters):
    rater = two_raters[0]
    first, second, third, fourth = make_images(project, 4)
    # first beats second twice: once shown on the left ('a'), once on the right ('b').
    # third and fourth tie twice, each shown once on either side.
    add_comparisons(project, [(first, second, "a", rater), (second, first, "b", rater),
                              (third, fourth, "tie", rater), (fourth, third, "tie", rater)])
    human_scores.fit_human_scores(project)
    means = stored_means(project, [first, second, third, fourth])
    assert means[0] > 0.3 and means[1] == pytest.approx(-means[0])
    assert means[2] == pytest.approx(means[3], abs=1e-9) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.django_db
def test_excluded_raters_are_left_out_reversibly(project, two_raters, monkeypatch):
    honest, contrarian = two_raters
    enqueued = []
    monkeypatch.setattr("worker.dispatch.send_metrics_refresh", enqueued.append)
    images = make_images(project, 20)
    quality = np.linspace(-2, 2, 20)
    rng = np.random.default_rng(2)
    # The contrarian answers the opposite of what they see, and judges more than the honest rater.
    add_comparisons(project, thurstone_judgments(images, quality, 300, [honest], rng, noise=0.3))
    add_comparisons(project, thurstone_judgments(images, quality, 500, [contrarian], rng, noise=0.3,
                                                 reverse={contrarian}))

    human_scores.fit_human_scores(project)
    assert stats.spearmanr(stored_means(project, images), quality)[0] < 0  # the contrarian wins

    invites.set_rater_excluded(project, contrarian.pk, True, by="manager1")
    assert Membership.objects.get(project=project, user=contrarian).excluded_from_training
    assert enqueued == [project.pk]
    human_scores.fit_human_scores(project)
    assert stats.spearmanr(stored_means(project, images), quality)[0] > 0.9
    assert sum(HumanScore.objects.filter(project=project).values_list("n_comparisons", flat=True)) == 2 * 300

    invites.set_rater_excluded(project, contrarian.pk, False)
    human_scores.fit_human_scores(project)
    assert sum(HumanScore.objects.filter(project=project).values_list("n_comparisons", flat=True)) == 2 * 800
    assert enqueued == [project.pk, project.pk]

    invites.set_rater_excluded(project, contrarian.pk, False)  # unchanged: nothing to recompute
    assert enqueued == [project.pk, project.pk]
    with pytest.raises(Membership.DoesNotExist):
        invites.set_rater_excluded(project, 10**9, True)


@pytest.mark.django_db
def test_the_active_model_is_the_prior_for_images_nobody_compared(project, two_raters):
    images = make_images(project, 40)
    quality = np.linspace(-2, 2, 40)
    rng = np.random.default_rng(3)
    compared, never_compared = images[::2], images[1::2]
    add_comparisons(project, thurstone_judgments(compared, quality[::2], 400, list(two_raters), rng, noise=0.5))

    human_scores.fit_human_scores(project)
    flat = stored_means(project, never_compared)
    assert np.allclose(flat, 0.0)  # without a model, an image nobody compared sits at the prior mean

    # The model scores follow the quality (on its own 1..10 scale): the prior places the uncompared images.
    version = make_model_version(project, images, 5.5 + 2 * quality + rng.normal(0, 0.1, 40))
    fit = human_scores.fit_human_scores(project)
    assert fit.model_version_id == version.pk
    placed = stored_means(project, never_compared)
    assert stats.spearmanr(placed, quality[1::2])[0] > 0.9
    assert np.ptp(placed) > 1.0  # on the human scale, not squeezed to the prior mean
    variances = dict(HumanScore.objects.filter(project=project).values_list("image_id", "variance"))
    assert all(variances[image.pk] < 1.0 for image in never_compared)  # the model prior is tighter than N(0, 1)


@pytest.mark.django_db
def test_the_fit_is_warm_started_from_the_stored_means(project, two_raters):
    images = make_images(project, 50)
    quality = np.linspace(-2, 2, 50)
    rng = np.random.default_rng(4)
    add_comparisons(project, thurstone_judgments(images, quality, 1000, list(two_raters), rng))
    cold = human_scores.fit_human_scores(project)
    warm = human_scores.fit_project_posterior(project)
    assert warm.posterior.newton_steps < cold.posterior.newton_steps
    assert np.allclose(warm.posterior.mean, cold.posterior.mean, atol=1e-4)


@pytest.mark.django_db
def test_staleness(project, two_raters):
    images = make_images(project, 4)
    assert not human_scores.human_scores_stale(project)  # nothing to fit
    add_comparisons(project, [(images[0], images[1], "a", two_raters[0])])
    assert human_scores.human_scores_stale(project)
    human_scores.fit_human_scores(project)
    assert not human_scores.human_scores_stale(project)
    add_comparisons(project, [(images[2], images[3], "b", two_raters[1])])
    assert human_scores.human_scores_stale(project)
    human_scores.fit_human_scores(project)
    # Excluding a rater changes what the fit would use, even without a new comparison.
    invites.set_rater_excluded(project, two_raters[1].pk, True, enqueue=False)
    assert human_scores.human_scores_stale(project)
    human_scores.fit_human_scores(project)
    assert not human_scores.human_scores_stale(project)


@pytest.mark.django_db
def test_without_any_version_the_left_out_head_places_images_nobody_compared(project, two_raters, monkeypatch):
    from modeling.services import model_prior

    rng = np.random.default_rng(11)
    images, quality = images_with_features(project, monkeypatch, rng)
    compared, never_compared = np.arange(0, 60, 3), np.setdiff1d(np.arange(60), np.arange(0, 60, 3))
    add_comparisons(project, thurstone_judgments([images[i] for i in compared], quality[compared], 300,
                                                 list(two_raters), rng, noise=0.5))
    fit = human_scores.fit_human_scores(project)
    assert fit.model_version_id is None and fit.prior_source.startswith("linear_bt, each image left out")
    assert fit.prior_strength["share"] > 0.3
    placed = stored_means(project, [images[i] for i in never_compared])
    assert stats.spearmanr(placed, quality[never_compared])[0] > 0.8

    # Features that predict nothing: the prior fades, the uncompared images stay together at the prior mean.
    monkeypatch.setattr(model_prior, "pooled_project_features",
                        lambda image_ids, encoder_id: (np.ones(len(image_ids), dtype=bool),
                                                       np.random.default_rng(12).normal(size=(60, 6))))
    fit = human_scores.fit_human_scores(project)
    assert fit.prior_strength["share"] < 0.1
    assert np.ptp(stored_means(project, [images[i] for i in never_compared])) < 0.5


@pytest.mark.django_db
def test_an_active_ranker_that_trained_on_most_images_leaves_the_prior_to_the_left_out_head(
        project, two_raters, monkeypatch):
    from modeling.models import ModelVersion

    rng = np.random.default_rng(5)
    images, quality = images_with_features(project, monkeypatch, rng)
    compared = np.arange(0, 50)  # 50 of 60 images compared, all before the ranker trained
    add_comparisons(project, thurstone_judgments([images[i] for i in compared], quality[compared], 300,
                                                 list(two_raters), rng, noise=0.5))
    version = make_model_version(project, images, 5.5 + 2 * quality)  # a ranker (model kind "tags") ...
    last = project.comparisons.order_by("-pk").values_list("pk", flat=True).first()
    ModelVersion.objects.filter(pk=version.pk).update(last_comparison_id=last)  # ... trained on all of them
    fit = human_scores.fit_human_scores(project)
    # Its out-of-fold scores cover 10 of 60 images: the head, each image left out, is the prior of all 60.
    assert fit.prior_source.startswith("linear_bt, each image left out")
    assert fit.prior_strength["share"] > 0.3
    uncompared = stored_means(project, [images[i] for i in range(50, 60)])
    assert stats.spearmanr(uncompared, quality[50:])[0] > 0.7


@pytest.mark.django_db
def test_with_a_model_prior_fewer_honest_raters_are_called_careless_at_one_judgment_per_image(monkeypatch):
    """On comparisons alone, at about one judgment per image nothing tells honest raters apart, and the raters'
    fit calls some of them careless; with the model's prior it judges them by what the model predicts."""
    from labeling.models import Project

    careless = {"alone": 0, "with the model prior": 0}
    for seed in range(16):
        project = Project.objects.create(name=f"p{seed}", slug=f"p{seed}", weight_raters_by_reliability=True)
        rng = np.random.default_rng(seed)
        images, quality = images_with_features(project, monkeypatch, rng)
        raters = [user(f"honest{seed}-{k}") for k in range(3)]
        for rater in raters:
            member(project, rater)
        add_comparisons(project, thurstone_judgments(images, quality, 40, raters, rng, noise=1.0))
        alone = human_scores.comparison_weights(project, human_scores.load_comparisons(project), None)[1]
        fit = human_scores.fit_project_posterior(project)
        assert fit.prior_source.startswith("linear_bt")
        careless["alone"] += int((alone.attentive < 0.3).sum())
        careless["with the model prior"] += int((fit.reliability.attentive < 0.3).sum())
    # All 48 raters are honest, with 40 judgments of 60 images each. Measured: 7 called careless alone, 1 with the
    # prior (the same before and after each rater's eta and side share were settled within an EM step; at 60
    # judgments each and 8 seeds, where this test began, the settled fit called none careless either way).
    assert careless["with the model prior"] < careless["alone"], careless
