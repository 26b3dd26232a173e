"""The prompt shown to raters (``Project.show_prompt``, off by default) and the "both bad" answer over the API."""
import pytest

from labeling.models import Comparison, Image

NEXT = "/api/v1/projects/test-project/next-pair/"


@pytest.fixture
def captioned(project, images):
    for index, image in enumerate(images):
        Image.objects.filter(pk=image.pk).update(
            caption="a red fox in snow" if index < 4 else "a lighthouse at dusk",
            metadata={"prompt_id": "fox" if index < 4 else "lighthouse", "generator": f"g{index % 2}"},
        )
    return images


@pytest.mark.django_db
def test_the_prompt_is_hidden_by_default(api, project, captioned, rater):
    pair = api(rater).get(NEXT).json()
    assert "prompt" not in pair and "prompt" not in pair["a"] and "prompt" not in pair["b"]
    page = api(rater).get(f"/api/v1/projects/{project.slug}/").json()
    assert page["show_prompt"] is False and "group_key" not in page


@pytest.mark.django_db
def test_with_show_prompt_raters_get_the_prompt_and_nothing_else_about_the_images(api, client, project, captioned, rater):
    project.show_prompt, project.group_key = True, "prompt_id"
    project.save()
    pair = api(rater).get(NEXT).json()
    assert pair["prompt"] in ("a red fox in snow", "a lighthouse at dusk")
    assert pair["a"]["prompt"] == pair["b"]["prompt"] == pair["prompt"]
    shown = {key for side in ("a", "b") for key in pair[side]}
    assert shown == {"id", "url", "thumbnail_url", "width", "height", "tags", "prompt"}
    body = str(pair)
    for hidden in ("g0", "g1", "generator", "prompt_id", "img_"):
        assert hidden not in body
    client.force_login(rater)
    page = client.get(f"/projects/{project.slug}/rate/").content.decode()
    assert 'data-show-prompt="true"' in page and 'id="prompt"' in page
    assert "prompt_id" not in page


@pytest.mark.django_db
def test_prompts_that_differ_are_sent_per_image(api, project, captioned, rater):
    project.show_prompt = True
    project.save()
    Image.objects.filter(project=project).exclude(pk=captioned[0].pk).update(caption="something else")
    Image.objects.filter(project=project).exclude(pk__in=[captioned[0].pk, captioned[1].pk]).update(archived_at="2026-01-01T00:00Z")
    pair = api(rater).get(NEXT).json()
    assert pair["prompt"] is None
    assert {pair["a"]["prompt"], pair["b"]["prompt"]} == {"a red fox in snow", "something else"}


@pytest.mark.django_db
def test_both_bad_over_the_api_is_a_400_unless_allowed_then_stored_and_exported(api, project, captioned, rater, manager):
    pair = api(rater).get(NEXT).json()
    body = {"lease": pair["lease"], "winner": "bad", "client_key": "k-bad"}
    refused = api(rater).post(f"/api/v1/projects/{project.slug}/comparisons/", body, format="json")
    assert refused.status_code == 400 and refused.json()["code"] == "both_bad_not_allowed"
    project.allow_both_bad = True
    project.save()
    stored = api(rater).post(f"/api/v1/projects/{project.slug}/comparisons/", body, format="json")
    assert stored.status_code == 201 and stored.json()["winner"] == "bad"
    assert Comparison.objects.get().outcome == "bad"
    export = api(manager).get(f"/api/v1/projects/{project.slug}/export/comparisons/", {"format": "jsonl"})
    row = [line for line in b"".join(export.streaming_content).decode().splitlines() if line][0]
    assert '"outcome":"bad"' in row and '"winner_image_id":null' in row


@pytest.mark.django_db
def test_managers_set_the_campaign_settings_over_the_api_and_a_bad_key_is_a_400(api, project, manager):
    url = f"/api/v1/projects/{project.slug}/"
    answer = api(manager).patch(url, {"show_prompt": True, "group_key": "prompt_id", "allow_both_bad": True}, format="json")
    assert answer.status_code == 200
    assert (answer.json()["show_prompt"], answer.json()["group_key"], answer.json()["allow_both_bad"]) == (True, "prompt_id", True)
    assert api(manager).patch(url, {"group_key": "a b"}, format="json").status_code == 400
    project.refresh_from_db()
    assert project.group_key == "prompt_id"
