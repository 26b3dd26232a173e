"""API: next-pair, comparisons (submit, replay, list), skip, release and undo."""
import json
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.throttling import ScopedRateThrottle

from labeling.models import Comparison, GoldPair, Membership, PairLease, Project

NEXT = "/api/v1/projects/test-project/next-pair/"
COMPARISONS = "/api/v1/projects/test-project/comparisons/"


def lease_pair(client) -> dict:
    response = client.get(NEXT)
    assert response.status_code == 200, response.content
    return response.json()


def send(client, pair_or_lease, winner="a", key=None, **extra):
    lease = pair_or_lease["lease"] if isinstance(pair_or_lease, dict) else str(pair_or_lease)
    payload = {"lease": lease, "winner": winner, "client_key": key or f"key-{lease}", "response_ms": 1200, **extra}
    return client.post(COMPARISONS, payload, format="json")


@pytest.mark.django_db
def test_next_pair_returns_a_lease_two_images_with_urls_and_tags(api, project, images, rater):
    body = lease_pair(api(rater))
    assert set(body) == {"lease", "a", "b", "expires_at"}
    assert body["a"]["id"] != body["b"]["id"]
    for side in ("a", "b"):
        image = body[side]
        assert image["url"].startswith("http://testserver/media/images/")
        assert image["thumbnail_url"].startswith("http://testserver/media/thumbnails/")
        assert image["tags"] in (["even"], ["odd"])
        assert (image["width"], image["height"]) == (64, 48)
    lease = PairLease.objects.get(token=body["lease"])
    assert (lease.image_a_id, lease.image_b_id, lease.rater) == (body["a"]["id"], body["b"]["id"], rater)


@pytest.mark.django_db
def test_next_pair_is_204_when_nothing_is_left(api, project, rater, image_bytes):
    from labeling.services.imports import store_image

    client = api(rater)
    assert client.get(NEXT).status_code == 204  # no images at all
    store_image(project, "x.png", image_bytes(seed=1))
    store_image(project, "y.png", image_bytes(seed=2))
    assert send(client, lease_pair(client)).status_code == 201
    response = client.get(NEXT)
    assert response.status_code == 204 and response.content == b""


@pytest.mark.django_db
def test_next_pair_only_for_active_members(api, project, images, rater, outsider):
    assert api(outsider).get(NEXT).status_code == 404
    Membership.objects.filter(user=rater).update(is_active=False)
    assert api(rater).get(NEXT).status_code == 404


@pytest.mark.django_db
def test_submit_stores_and_a_replay_returns_the_same_body(api, project, images, rater):
    client = api(rater)
    pair = lease_pair(client)
    first = send(client, pair, winner="b", key="client-key-1")
    assert first.status_code == 201
    body = first.json()
    assert body["winner"] == "b" and body["image_a"] == pair["a"]["id"] and body["image_b"] == pair["b"]["id"]
    assert body["client_key"] == "client-key-1" and body["response_ms"] == 1200 and body["rater"] == rater.pk
    assert body["project"] == "test-project"
    replay = send(client, pair, winner="b", key="client-key-1")
    assert replay.status_code == 200 and replay.json() == body
    assert Comparison.objects.count() == 1
    # The submit answer is built without the serializer (speed); it must say exactly what the serializer says.
    from labeling.api.serializers import ComparisonSerializer

    assert json.loads(json.dumps(ComparisonSerializer(Comparison.objects.get()).data)) == body


@pytest.mark.django_db
def test_submit_refuses_malformed_json_and_bad_fields(api, project, images, rater):
    client = api(rater)
    pair = lease_pair(client)
    malformed = client.post(COMPARISONS, data='{"lease": ', content_type="application/json")
    assert malformed.status_code == 400 and "JSON parse error" in malformed.json()["detail"]
    unknown_winner = send(client, pair, winner="left")
    assert unknown_winner.status_code == 400 and "winner" in unknown_winner.json()
    no_key = client.post(COMPARISONS, {"lease": pair["lease"], "winner": "a"}, format="json")
    assert no_key.status_code == 400 and "client_key" in no_key.json()
    long_key = send(client, pair, key="k" * 65)
    assert long_key.status_code == 400 and "client_key" in long_key.json()
    bad_lease = send(client, "not-a-uuid")
    assert bad_lease.status_code == 400 and "lease" in bad_lease.json()
    negative = send(client, pair, response_ms=-1)
    assert negative.status_code == 400 and "response_ms" in negative.json()
    assert Comparison.objects.count() == 0


@pytest.mark.django_db
def test_submit_refusals_carry_a_message_and_a_code(api, project, images, rater, second_rater, other_project):
    client = api(rater)
    unknown = send(client, uuid.uuid4())
    assert unknown.status_code == 400 and unknown.json()["code"] == "lease_unknown"

    pair = lease_pair(client)
    foreign = send(api(second_rater), pair)
    assert foreign.status_code == 403 and foreign.json()["code"] == "lease_foreign"

    Membership.objects.create(project=other_project, user=rater)
    wrong_project = api(rater).post(
        "/api/v1/projects/other-project/comparisons/",
        {"lease": pair["lease"], "winner": "a", "client_key": "x"},
        format="json",
    )
    assert wrong_project.status_code == 400 and wrong_project.json()["code"] == "lease_wrong_project"

    PairLease.objects.filter(token=pair["lease"]).update(expires_at=timezone.now() - timedelta(seconds=5))
    expired = send(client, pair)
    assert expired.status_code == 410 and "expired" in expired.json()["detail"]
    assert Comparison.objects.count() == 0


@pytest.mark.django_db
def test_ties_refused_where_disallowed_and_client_keys_not_reused(api, project, images, rater):
    Project.objects.filter(pk=project.pk).update(allow_ties=False)
    client = api(rater)
    pair = lease_pair(client)
    tie = send(client, pair, winner="tie")
    assert tie.status_code == 400 and tie.json()["code"] == "ties_not_allowed"
    assert send(client, pair, key="same").status_code == 201
    reused = send(client, lease_pair(client), key="same")
    assert reused.status_code == 409 and reused.json()["code"] == "client_key_reused"
    assert Comparison.objects.count() == 1


@pytest.mark.django_db
def test_submissions_are_throttled(api, project, images, rater, monkeypatch):
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"auth": "20/min", "submit": "3/min", "next_pair": "600/min"})
    client = api(rater)
    statuses = [send(client, lease_pair(client)).status_code for _ in range(4)]
    assert statuses == [201, 201, 201, 429]
    assert client.get(COMPARISONS).status_code == 200  # reading is not a submission


@pytest.mark.django_db
def test_managers_list_every_comparison_raters_only_their_own(api, project, images, rater, second_rater, manager):
    for user in (rater, rater, second_rater):
        client = api(user)
        assert send(client, lease_pair(client)).status_code == 201
    everything = api(manager).get(COMPARISONS).json()
    assert len(everything["results"]) == 3 and {"is_gold", "gold_correct"} <= set(everything["results"][0])
    ids = [row["id"] for row in everything["results"]]
    assert ids == sorted(ids, reverse=True)  # newest first
    by_rater = api(manager).get(COMPARISONS, {"rater": second_rater.pk}).json()["results"]
    assert [row["rater_username"] for row in by_rater] == ["rater2"]
    own = api(rater).get(COMPARISONS).json()["results"]
    assert len(own) == 2 and {row["rater"] for row in own} == {rater.pk} and "is_gold" not in own[0]
    assert api(rater).get(COMPARISONS, {"rater": second_rater.pk}).status_code == 403


@pytest.mark.django_db
def test_comparison_list_filters_by_time_and_paginates(api, project, images, rater, manager):
    client = api(rater)
    for _ in range(3):
        assert send(client, lease_pair(client)).status_code == 201
    Comparison.objects.filter(pk=Comparison.objects.order_by("id").first().pk).update(
        created_at=timezone.now() - timedelta(days=3)
    )
    since = (timezone.now() - timedelta(days=1)).isoformat()
    assert len(api(manager).get(COMPARISONS, {"since": since}).json()["results"]) == 2
    assert len(api(manager).get(COMPARISONS, {"until": since}).json()["results"]) == 1
    bad = api(manager).get(COMPARISONS, {"since": "yesterday"})
    assert bad.status_code == 400 and "since" in bad.json()
    page = api(manager).get(COMPARISONS, {"page_size": 2}).json()
    assert len(page["results"]) == 2 and page["next"]
    rest = api(manager).get(page["next"]).json()
    assert len(rest["results"]) == 1 and rest["next"] is None


@pytest.mark.django_db
def test_comparisons_hidden_from_other_projects_members(api, project, images, outsider):
    assert api(outsider).get(COMPARISONS).status_code == 404
    assert api(outsider).post(COMPARISONS, {}, format="json").status_code == 404


@pytest.mark.django_db
def test_skip_and_release(api, project, image_bytes, rater, second_rater):
    from labeling.services.imports import store_image

    store_image(project, "x.png", image_bytes(seed=1))
    store_image(project, "y.png", image_bytes(seed=2))
    client = api(rater)
    pair = lease_pair(client)
    skipped = client.post("/api/v1/projects/test-project/skip/", {"lease": pair["lease"]}, format="json")
    assert skipped.status_code == 200 and skipped.json() == {"lease": pair["lease"], "state": "skipped"}
    assert client.post("/api/v1/projects/test-project/skip/", {"lease": pair["lease"]}, format="json").status_code == 200
    assert client.get(NEXT).status_code == 204  # never again for this rater
    other = api(second_rater)
    pair = lease_pair(other)  # ...but the slot went back to the others
    released = other.post("/api/v1/projects/test-project/release/", {"leases": [pair["lease"], str(uuid.uuid4())]},
                          format="json")
    assert released.json() == {"released": 1}
    pair = lease_pair(other)
    assert send(other, pair).status_code == 201
    judged = other.post("/api/v1/projects/test-project/skip/", {"lease": pair["lease"]}, format="json")
    assert judged.status_code == 409 and "already judged" in judged.json()["detail"]
    assert client.post("/api/v1/projects/test-project/skip/", {"lease": "nope"}, format="json").status_code == 400


@pytest.mark.django_db
def test_undo_takes_back_the_latest_judgment_and_leases_the_pair_again(api, project, images, rater):
    client = api(rater)
    pair = lease_pair(client)
    stored = send(client, pair).json()
    response = client.post(f"{COMPARISONS}undo/", {"comparison": stored["id"]}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["undone"] == stored["id"] and body["lease"] != pair["lease"]
    assert (body["a"]["id"], body["b"]["id"]) == (pair["a"]["id"], pair["b"]["id"])
    assert Comparison.objects.count() == 0
    nothing = client.post(f"{COMPARISONS}undo/", {}, format="json")
    assert nothing.status_code == 404 and nothing.json()["code"] == "nothing_to_undo"
    again = send(client, body, winner="b")
    assert again.status_code == 201 and again.json()["winner"] == "b"
    first_id = again.json()["id"]
    assert send(client, lease_pair(client)).status_code == 201
    not_latest = client.post(f"{COMPARISONS}undo/", {"comparison": first_id}, format="json")
    assert not_latest.status_code == 409 and "latest" in not_latest.json()["detail"]


@pytest.mark.django_db
def test_gold_fields_are_for_managers_only(api, project, images, rater, manager):
    Project.objects.filter(pk=project.pk).update(gold_rate=1.0)
    GoldPair.objects.create(project=project, image_a=images[0], image_b=images[1], expected="tie")
    client = api(rater)
    response = send(client, lease_pair(client), winner="tie")
    assert response.status_code == 201 and "is_gold" not in response.json()
    (row,) = api(manager).get(COMPARISONS).json()["results"]
    assert row["is_gold"] is True and row["gold_correct"] is True
