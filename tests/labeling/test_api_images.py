"""API: the image list and its filters, uploads, an image's tags and the tag vocabulary."""
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from labeling.models import Image, ImageTag, Project, Tag

IMAGES = "/api/v1/projects/test-project/images/"


def tags_url(image) -> str:
    return f"/api/v1/images/{image.pk}/tags/"


@pytest.fixture
def imported_callbacks(monkeypatch):
    """The feature extraction sent after an upload's transaction commits, instead of broker messages."""
    calls = []
    monkeypatch.setattr("worker.dispatch.send_feature_extraction", lambda project_id, ids: calls.append((project_id, ids)))
    return calls


@pytest.mark.django_db
def test_members_list_images_with_urls_tags_and_counts(api, project, images, rater, manager):
    body = api(rater).get(IMAGES).json()
    assert body["count"] == 8
    first = body["results"][0]
    assert first["id"] == images[0].pk and "original_name" not in first  # raters judge blind
    assert first["url"].startswith("http://testserver/media/images/") and first["tags"] == ["even"]
    assert (first["width"], first["height"]) == (64, 48)
    first = api(manager).get(IMAGES).json()["results"][0]
    assert first["original_name"] == "img_0.png" and first["comparison_count"] == 0


@pytest.mark.django_db
def test_image_list_filters_and_pages(api, project, images, rater, manager):
    from modeling.models import ImageScore, ModelVersion

    Image.objects.filter(pk=images[3].pk).update(external_id="ava-123")
    version = ModelVersion.objects.create(project=project, encoder_id="tiny", is_active=True, status="active")
    for image in images[:3]:
        ImageScore.objects.create(model_version=version, image=image, mean=5.0, distribution=[0.1] * 10)
    client = api(rater)
    assert [row["id"] for row in client.get(IMAGES, {"tag": "ODD"}).json()["results"]] == [i.pk for i in images[1::2]]
    assert client.get(IMAGES, {"external_id": "ava-123"}).status_code == 403  # raters judge blind
    assert [row["id"] for row in api(manager).get(IMAGES, {"external_id": "ava-123"}).json()["results"]] == [images[3].pk]
    assert client.get(IMAGES, {"has_score": "true"}).status_code == 403  # raters judge blind
    assert api(manager).get(IMAGES, {"has_score": "true"}).json()["count"] == 3
    assert api(manager).get(IMAGES, {"has_score": "false"}).json()["count"] == 5
    page = client.get(IMAGES, {"page_size": 3, "page": 2}).json()
    assert [row["id"] for row in page["results"]] == [i.pk for i in images[3:6]] and page["next"]
    assert client.get(IMAGES, {"has_score": "perhaps"}).status_code == 400
    assert client.get(IMAGES, {"page": 99}).status_code == 404


@pytest.mark.django_db
def test_images_hidden_from_outsiders(api, project, images, outsider):
    assert api(outsider).get(IMAGES).status_code == 404
    assert api(outsider).get(tags_url(images[0])).status_code == 404


@pytest.mark.django_db
def test_manager_uploads_an_image_through_the_import_service(
    api, project, manager, image_bytes, imported_callbacks, django_capture_on_commit_callbacks
):
    upload = SimpleUploadedFile("sunset.jpg", image_bytes(seed=7, fmt="JPEG"), content_type="image/jpeg")
    with django_capture_on_commit_callbacks(execute=True):
        response = api(manager).post(
            IMAGES,
            {"file": upload, "tags": "Sunset; sky", "external_id": "ext-1", "caption": "a sunset",
             "metadata": json.dumps({"seed": 7})},
            format="multipart",
        )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["duplicate"] is False and body["tags"] == ["sky", "sunset"] and body["external_id"] == "ext-1"
    image = Image.objects.get(pk=body["id"])
    assert image.metadata == {"seed": 7} and image.caption == "a sunset" and image.thumbnail
    assert imported_callbacks == [(project.pk, [image.pk])]
    with django_capture_on_commit_callbacks(execute=True):
        again = api(manager).post(
            IMAGES, {"file": SimpleUploadedFile("copy.jpg", image_bytes(seed=7, fmt="JPEG"))}, format="multipart"
        )
    assert again.status_code == 200 and again.json()["duplicate"] is True and again.json()["id"] == image.pk
    assert Image.objects.count() == 1 and len(imported_callbacks) == 1  # a duplicate is not imported again


@pytest.mark.django_db
def test_upload_refuses_a_file_that_is_not_an_image_and_stores_nothing(api, project, manager, isolated_media):
    fake = SimpleUploadedFile("notes.jpg", b"this is a text file, not a JPEG", content_type="image/jpeg")
    response = api(manager).post(IMAGES, {"file": fake}, format="multipart")
    assert response.status_code == 400
    assert response.json()["code"] == "image_rejected" and "notes.jpg" in response.json()["detail"]
    assert "not an image" in response.json()["detail"]
    assert Image.objects.count() == 0
    stored_files = [path for path in isolated_media.rglob("*") if path.is_file()]
    assert stored_files == []


@pytest.mark.django_db
def test_upload_refuses_bad_requests(api, project, manager, rater, image_bytes):
    client = api(manager)
    assert "file" in client.post(IMAGES, {}, format="multipart").json()
    two = client.post(IMAGES, {"file": [SimpleUploadedFile("a.png", image_bytes(seed=1)),
                                        SimpleUploadedFile("b.png", image_bytes(seed=2))]}, format="multipart")
    assert two.status_code == 400 and "one file" in two.json()["file"][0]
    bad_metadata = client.post(IMAGES, {"file": SimpleUploadedFile("a.png", image_bytes(seed=1)), "metadata": "[1,"},
                               format="multipart")
    assert bad_metadata.status_code == 400 and "metadata" in bad_metadata.json()
    assert client.post(IMAGES, {"file": "x"}, format="json").status_code == 415
    as_rater = api(rater).post(IMAGES, {"file": SimpleUploadedFile("a.png", image_bytes(seed=1))}, format="multipart")
    assert as_rater.status_code == 403
    assert Image.objects.count() == 0


@pytest.mark.django_db
def test_raters_add_tags_and_remove_only_their_own(api, project, images, rater, manager):
    client = api(rater)
    url = tags_url(images[0])
    assert [tag["name"] for tag in client.get(url).json()] == ["even"]
    added = client.post(url, {"name": "  Blurry  Background "}, format="json")
    assert added.status_code == 201
    assert {tag["name"]: tag["source"] for tag in added.json()} == {"blurry background": "rater", "even": "import"}
    assert client.post(url, {"name": "blurry background"}, format="json").status_code == 200  # already there
    refused = client.delete(url + "?name=even")
    assert refused.status_code == 403 and "only the tags you added" in refused.json()["detail"]
    removed = client.delete(url + "?name=Blurry%20Background")
    assert removed.status_code == 200 and [tag["name"] for tag in removed.json()] == ["even"]
    assert api(manager).delete(url + "?name=even").json() == []
    assert client.delete(url + "?name=even").status_code == 404
    assert client.delete(url).status_code == 400


@pytest.mark.django_db
def test_a_closed_vocabulary_refuses_new_tags_from_raters(api, project, images, rater, manager):
    Project.objects.filter(pk=project.pk).update(tag_vocabulary=Project.TagVocabulary.CLOSED)
    url = tags_url(images[0])
    refused = api(rater).post(url, {"name": "brand new"}, format="json")
    assert refused.status_code == 400 and refused.json()["code"] == "tag_not_in_vocabulary"
    assert "closed" in refused.json()["detail"]
    assert not Tag.objects.filter(name="brand new").exists()
    assert api(rater).post(url, {"name": "ODD"}, format="json").status_code == 201  # an existing tag is fine
    assert api(manager).post(url, {"name": "brand new"}, format="json").status_code == 201  # managers own it


@pytest.mark.django_db
def test_tag_requests_refuse_bad_input(api, project, images, rater):
    client = api(rater)
    url = tags_url(images[0])
    assert client.post(url, data="{bad", content_type="application/json").status_code == 400
    assert client.post(url, {"name": "   "}, format="json").status_code == 400
    assert client.post(url, {"name": "x" * 150}, format="json").json()["code"] == "tag_refused"
    assert client.get("/api/v1/images/999999/tags/").status_code == 404
    assert client.get(f"/api/v1/images/{2**70}/tags/").status_code == 404  # beyond any id: not a 500
    assert client.delete(url + "?name=bad%00name").status_code == 400  # PostgreSQL text cannot hold NUL
    assert client.post(url, {"name": "bad\x00name"}, format="json").status_code == 400
    assert client.get("/api/v1/projects/test-project/tags/?q=%00").status_code == 400
    assert ImageTag.objects.filter(image=images[0]).count() == 1


@pytest.mark.django_db
def test_vocabulary_autocompletes_by_prefix_most_used_first(api, project, images, rater):
    Tag.objects.create(project=project, name="evening")
    client = api(rater)
    names = [tag["name"] for tag in client.get("/api/v1/projects/test-project/tags/", {"q": "EV"}).json()["results"]]
    assert names == ["even", "evening"]
    everything = client.get("/api/v1/projects/test-project/tags/").json()["results"]
    assert [(tag["name"], tag["image_count"]) for tag in everything] == [("even", 4), ("odd", 4), ("evening", 0)]
