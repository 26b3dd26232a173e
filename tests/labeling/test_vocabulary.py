"""Vocabulary curation: create, rename, merge (moving image tags) and delete with confirmation; API and pages."""
import pytest
from django.urls import reverse

from labeling.models import Comparison, ImageTag, Tag
from labeling.services import vocabulary
from labeling.services.tags import TagRefused

API = "/api/v1/projects/test-project/vocabulary/"


def names_on(image):
    return sorted(image.image_tags.values_list("tag__name", flat=True))


@pytest.mark.django_db
def test_merge_moves_image_tags_and_keeps_one_per_image(project, images, rater):
    even, odd = Tag.objects.get(name="even"), Tag.objects.get(name="odd")
    number = vocabulary.create_tag(project, "  Number ")
    assert number.name == "number"
    ImageTag.objects.create(image=images[0], tag=number)  # image 0 has even and number
    rater_tag = ImageTag.objects.create(image=images[1], tag=Tag.objects.create(project=project, name="uneven"),
                                        source="rater", rater=rater)
    report = vocabulary.merge_tags(number, [even, odd, rater_tag.tag])
    assert report.already_there == 2 and report.moved == 7  # image 0 kept its own; image 1 had odd and uneven
    assert all(names_on(image) == ["number"] for image in images)
    assert set(Tag.objects.values_list("name", flat=True)) == {"number"}


@pytest.mark.django_db
def test_rename_refuses_an_existing_name_and_delete_needs_confirmation(project, images, rater):
    even = Tag.objects.get(name="even")
    with pytest.raises(vocabulary.TagExists, match="merge"):
        vocabulary.rename_tag(even, "ODD")
    vocabulary.rename_tag(even, "Pair")
    assert names_on(images[0]) == ["pair"]
    Comparison.objects.create(project=project, image_a=images[0], image_b=images[1], outcome="a", rater=rater,
                              client_key="k")
    with pytest.raises(vocabulary.ConfirmationNeeded):
        vocabulary.delete_tag(even, "odd")
    assert vocabulary.delete_tag(even, "pair") == 4
    assert names_on(images[0]) == [] and Comparison.objects.count() == 1  # judgments untouched
    with pytest.raises(TagRefused):
        vocabulary.create_tag(project, "   ")


@pytest.mark.django_db
def test_api(api, project, images, manager, rater, outsider, other_project):
    assert api(rater).post(API, {"name": "x"}, format="json").status_code == 403
    created = api(manager).post(API, {"name": "Sharp"}, format="json")
    assert created.status_code == 201 and created.json()["name"] == "sharp"
    assert api(manager).post(API, {"name": "sharp"}, format="json").status_code == 409
    odd = Tag.objects.get(project=project, name="odd")
    clash = api(manager).patch(f"{API}{odd.pk}/", {"name": "even"}, format="json")
    assert clash.status_code == 409 and clash.json()["code"] == "tag_exists"
    assert api(manager).patch(f"{API}{odd.pk}/", {"name": "uneven"}, format="json").json()["name"] == "uneven"
    even = Tag.objects.get(project=project, name="even")
    merged = api(manager).post(f"{API}{even.pk}/merge/", {"tags": [odd.pk]}, format="json").json()
    assert merged["moved"] == 4 and merged["tag"]["image_count"] == 8 and merged["merged_tags"] == ["uneven"]
    foreign = Tag.objects.create(project=other_project, name="foreign")
    assert api(manager).post(f"{API}{even.pk}/merge/", {"tags": [foreign.pk]}, format="json").status_code == 404
    refused = api(manager).delete(f"{API}{even.pk}/")
    assert refused.status_code == 400 and refused.json()["code"] == "confirmation_needed"
    deleted = api(manager).delete(f"{API}{even.pk}/?confirm=even")
    assert deleted.json() == {"deleted": "even", "removed_from_images": 8}
    assert api(outsider).delete(f"{API}{foreign.pk}/?confirm=foreign").status_code == 404
    assert Tag.objects.filter(pk=foreign.pk).exists()


@pytest.mark.django_db
def test_pages(client, project, images, manager):
    client.force_login(manager)
    page = reverse("project-vocabulary", args=[project.slug])
    client.post(page, {"name": "Blurry"})
    html = client.get(page).content.decode()
    assert 'data-tag="blurry"' in html and 'data-tag="even"' in html
    odd = Tag.objects.get(name="odd")
    client.post(reverse("project-tag-merge", args=[project.slug, odd.pk]), {"into": "even"})
    assert not Tag.objects.filter(name="odd").exists() and ImageTag.objects.filter(tag__name="even").count() == 8
    even = Tag.objects.get(name="even")
    confirm = client.get(reverse("project-tag-delete", args=[project.slug, even.pk])).content.decode()
    assert "8</strong> image(s)" in confirm
    client.post(reverse("project-tag-delete", args=[project.slug, even.pk]), {"confirm": "wrong"})
    assert Tag.objects.filter(name="even").exists()
    client.post(reverse("project-tag-delete", args=[project.slug, even.pk]), {"confirm": "even"})
    assert not Tag.objects.filter(name="even").exists()
    client.post(reverse("project-tag-rename", args=[project.slug, Tag.objects.get(name="blurry").pk]), {"name": "soft"})
    assert Tag.objects.filter(name="soft").exists()
