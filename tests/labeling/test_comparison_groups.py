"""Comparison groups (``Project.group_key``): every pair served shares the group, from every source."""
from __future__ import annotations

import random

import pytest

from labeling.models import Comparison, GoldPair, Image, PairCandidate, PairLease, Project
from labeling.services import comparison_groups, pair_queue
from labeling.services.comparisons import submit_comparison
from labeling.services.imports import store_image
from labeling.services.pair_serving import lease_from_fallback, lease_gold_pair, next_pair
from tests.conftest import make_image_bytes


def group_of(image_id: int) -> str | None:
    return Image.objects.get(pk=image_id).metadata.get("prompt_id")


@pytest.fixture
def grouped(project):
    """Four prompts with three images each, one prompt with a single image, and an image without the key."""
    project.group_key = "prompt_id"
    project.save()
    images, seed = [], 0
    for prompt in ("p1", "p2", "p3", "p4"):
        for generator in ("g1", "g2", "g3"):
            seed += 1
            images.append(store_image(project, f"{prompt}_{generator}.png", make_image_bytes(seed=seed),
                                      metadata={"prompt_id": prompt, "generator": generator})[0])
    alone = store_image(project, "alone.png", make_image_bytes(seed=90), metadata={"prompt_id": "p5"})[0]
    keyless = store_image(project, "keyless.png", make_image_bytes(seed=91), metadata={"generator": "g1"})[0]
    return {"images": images, "alone": alone, "keyless": keyless}


@pytest.mark.django_db
def test_the_fallback_serves_only_pairs_within_a_group_until_every_such_pair_is_judged(project, grouped, rater):
    served = []
    while (result := next_pair(project, rater, rng=random.Random(len(served)))) is not None:
        _, lease = result
        assert group_of(lease.image_a_id) == group_of(lease.image_b_id) is not None
        served.append(frozenset((lease.image_a_id, lease.image_b_id)))
        submit_comparison(project, rater, lease=lease.token, winner="a", client_key=str(lease.token))
    # Every pair within the four groups of three (4 x 3), once; the lone and the keyless image never.
    assert len(served) == len(set(served)) == 12
    never = {grouped["alone"].pk, grouped["keyless"].pk}
    assert not any(pair & never for pair in served)


@pytest.mark.django_db
def test_without_a_group_key_pairs_may_cross_prompts(project, grouped, rater):
    project.group_key = ""
    project.save()
    crossed = 0
    while (result := next_pair(project, rater, rng=random.Random(crossed))) is not None:
        _, lease = result
        crossed += group_of(lease.image_a_id) != group_of(lease.image_b_id)
        submit_comparison(project, rater, lease=lease.token, winner="a", client_key=str(lease.token))
    assert crossed > 0


@pytest.mark.django_db
def test_the_queue_passes_over_candidates_across_groups(project, grouped, rater):
    first, other_prompt, same_prompt = grouped["images"][0], grouped["images"][3], grouped["images"][1]
    pair_queue.enqueue_pairs(project, [(first.pk, other_prompt.pk, 9.0), (first.pk, same_prompt.pk, 1.0)])
    _, lease = next_pair(project, rater)
    assert {lease.image_a_id, lease.image_b_id} == {first.pk, same_prompt.pk}
    assert lease.candidate.priority == 1.0
    # Without the key, the better candidate (across prompts) is served first.
    project.group_key = ""
    project.save()
    PairLease.objects.all().delete()
    _, lease = next_pair(project, rater)
    assert {lease.image_a_id, lease.image_b_id} == {first.pk, other_prompt.pk}


@pytest.mark.django_db
def test_gold_pairs_across_groups_are_not_served(project, grouped, rater):
    a, b, c = grouped["images"][0], grouped["images"][3], grouped["images"][1]
    GoldPair.objects.create(project=project, image_a=a, image_b=b, expected="a")
    assert lease_gold_pair(project, rater) is None
    GoldPair.objects.create(project=project, image_a=a, image_b=c, expected="a")
    lease = lease_gold_pair(project, rater)
    assert {lease.image_a_id, lease.image_b_id} == {a.pk, c.pk}


@pytest.mark.django_db
def test_a_project_of_singletons_and_keyless_images_has_nothing_to_serve(project, rater):
    project.group_key = "prompt_id"
    project.save()
    for index in range(5):
        store_image(project, f"s{index}.png", make_image_bytes(seed=index), metadata={"prompt_id": f"p{index}"})
    assert lease_from_fallback(project, rater) is None
    assert next_pair(project, rater) is None


@pytest.mark.django_db
def test_the_group_summary_counts_groups_singletons_and_images_without_the_key(project, grouped):
    summary = comparison_groups.group_summary(project)
    assert (summary.groups, summary.grouped_images, summary.singletons, summary.without_key) == (4, 12, 1, 1)
    Image.objects.filter(pk=grouped["images"][0].pk).update(archived_at=grouped["alone"].created_at)
    assert comparison_groups.group_summary(project).grouped_images == 11
    project.group_key = ""
    assert comparison_groups.group_summary(project) is None


@pytest.mark.django_db
def test_numbers_and_text_of_the_same_value_are_one_group(project, rater):
    project.group_key = "prompt_id"
    project.save()
    store_image(project, "n1.png", make_image_bytes(seed=1), metadata={"prompt_id": 7})
    store_image(project, "n2.png", make_image_bytes(seed=2), metadata={"prompt_id": 7})
    store_image(project, "n3.png", make_image_bytes(seed=3), metadata={"prompt_id": 8})
    groups = comparison_groups.image_groups(project)
    assert sorted(groups.values()) == ["7", "7"]
    _, lease = next_pair(project, rater)
    assert {group_of(lease.image_a_id), group_of(lease.image_b_id)} == {7}


@pytest.mark.django_db
def test_a_group_key_must_be_a_plain_metadata_key(project):
    from django.core.exceptions import ValidationError

    for bad in ("a__b", "1st", "prompt id", 'p"x', "$.x"):
        project.group_key = bad
        with pytest.raises(ValidationError):
            project.full_clean()
    project.group_key = "prompt.id-2"
    project.full_clean()


@pytest.mark.django_db
def test_both_bad_is_refused_unless_the_project_allows_it(project, images, rater):
    from labeling.services.comparisons import BothBadNotAllowed

    _, lease = next_pair(project, rater)
    with pytest.raises(BothBadNotAllowed):
        submit_comparison(project, rater, lease=lease.token, winner="bad", client_key="k1")
    assert not Comparison.objects.exists()
    Project.objects.filter(pk=project.pk).update(allow_both_bad=True)
    project.refresh_from_db()
    comparison, created = submit_comparison(project, rater, lease=lease.token, winner="bad", client_key="k1")
    assert created and comparison.outcome == Comparison.Outcome.BOTH_BAD
    assert PairCandidate.objects.get(pk=lease.candidate_id).judgments == 1
