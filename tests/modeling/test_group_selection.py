"""Pair selection within comparison groups: every strategy picks pairs of one group, and the queue serves them."""
import numpy as np
import pytest

from labeling.models import Comparison, Image, PairCandidate
from labeling.services.comparisons import submit_comparison
from labeling.services.imports import store_image
from labeling.services.pair_serving import next_pair
from modeling.ml.bradley_terry import Posterior
from modeling.ml.selection import STRATEGIES, select_pairs
from modeling.models import HumanScore
from modeling.services.pair_selection import RefillPolicy, refill_pair_queue
from tests.conftest import make_image_bytes

POLICY = RefillPolicy(batch_size=20, low_water=4, refit_every=3, max_per_image=2, explore_share=0.1)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("counts_level", [0, 6])  # the cold start and after it
def test_every_strategy_pairs_only_images_of_one_group(strategy, counts_level):
    rng = np.random.default_rng(0)
    n_groups, size = 30, 4
    groups = np.repeat(np.arange(n_groups), size)
    groups = np.concatenate([groups, [-1, -1, n_groups]])  # two images without a group, one alone in its own
    n = groups.size
    posterior = Posterior(mean=rng.normal(size=n), var=rng.uniform(0.1, 1.0, size=n))
    counts = np.full(n, counts_level)
    pairs = select_pairs(posterior, counts, 40, rng, strategy=strategy, groups=groups, max_per_image=2)
    assert len(pairs) == 40
    assert np.all(groups[pairs[:, 0]] == groups[pairs[:, 1]])
    assert np.all(groups[pairs[:, 0]] >= 0) and not np.isin(pairs, [n - 1]).any()
    # Coverage: no group takes more than twice its share of the batch.
    assert np.bincount(groups[pairs[:, 0]]).max() <= int(np.ceil(2 * 40 / n_groups))


def test_excluded_pairs_are_never_selected_within_groups():
    groups = np.repeat(np.arange(5), 3)
    closed = {(0, 1), (3, 4)}
    pairs = select_pairs(None, np.zeros(15), 10, np.random.default_rng(1), strategy="random", groups=groups,
                         exclude=closed)
    assert not {tuple(sorted(pair)) for pair in pairs.tolist()} & closed


@pytest.fixture
def prompts(project):
    project.group_key = "prompt_id"
    project.save()
    images = []
    for prompt in range(6):
        for generator in range(3):
            images.append(store_image(project, f"p{prompt}_g{generator}.png", make_image_bytes(seed=10 * prompt + generator),
                                      metadata={"prompt_id": f"p{prompt}", "generator": f"g{generator}"})[0])
    store_image(project, "alone.png", make_image_bytes(seed=99), metadata={"prompt_id": "solo"})
    return images


@pytest.mark.django_db
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_refill_and_serving_keep_every_pair_within_its_prompt(project, prompts, rater, strategy):
    project.pair_strategy = strategy
    project.save()
    prompt_of = dict((image.pk, image.metadata["prompt_id"]) for image in Image.objects.filter(project=project))
    served = 0
    for round_number in range(4):
        refill_pair_queue(project, seed=round_number, policy=POLICY)
        rows = PairCandidate.objects.filter(project=project, source=strategy)
        assert rows.exists()
        assert all(prompt_of[row.image_low_id] == prompt_of[row.image_high_id] for row in rows)
        for _ in range(5):
            result = next_pair(project, rater)
            if result is None:
                break
            _, lease = result
            assert prompt_of[lease.image_a_id] == prompt_of[lease.image_b_id] != "solo"
            submit_comparison(project, rater, lease=lease.token, winner="a", client_key=str(lease.token))
            served += 1
    assert served == 18  # every within-prompt pair (6 prompts x 3 pairs), then nothing left
    assert next_pair(project, rater) is None


@pytest.mark.django_db
def test_the_human_scores_stay_one_fit_over_all_images(project, prompts, rater):
    # Within every prompt, generator 0 beats 1 beats 2: one fit orders the generators the same everywhere.
    for prompt in range(6):
        trio = prompts[3 * prompt: 3 * prompt + 3]
        for winner, loser in ((0, 1), (1, 2), (0, 2)):
            Comparison.objects.create(project=project, image_a=trio[winner], image_b=trio[loser], outcome="a",
                                      rater=rater, client_key=f"{prompt}-{winner}-{loser}")
    refill_pair_queue(project, seed=0, policy=POLICY)
    means = dict(HumanScore.objects.filter(project=project).values_list("image_id", "mean"))
    assert len(means) == Image.objects.filter(project=project).count()
    by_generator = [np.mean([means[prompts[3 * p + g].pk] for p in range(6)]) for g in range(3)]
    assert by_generator[0] > by_generator[1] > by_generator[2]
