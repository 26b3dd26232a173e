"""The image browser: filters, sorts, keyset pages without COUNT(*), an image's comparisons; page and API."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from labeling.models import Comparison, ImageStats
from modeling.models import ImageScore, ModelVersion
from modeling.services import image_browser
from modeling.services.image_browser import Filters, browse
from tests.labeling import conftest as labeling_fixtures

# The labelling API's client and other-project fixtures, reused here.
other_project, outsider = labeling_fixtures.other_project, labeling_fixtures.outsider

API = "/api/v1/projects/test-project/images/browse/"


@pytest.fixture
def browsable(project, images, rater):
    """Scores 1..8 under the active version (a retired one scores backwards), metadata cfg = index % 3,
    and comparisons: image 0 against images 1, 2, 3."""
    active = ModelVersion.objects.create(project=project, encoder_id="tiny", is_active=True, status="active")
    old = ModelVersion.objects.create(project=project, encoder_id="tiny", status="retired")
    for index, image in enumerate(images):
        ImageScore.objects.create(model_version=active, image=image, mean=1 + index, distribution=[0.1] * 10)
        ImageScore.objects.create(model_version=old, image=image, mean=8 - index, distribution=[0.1] * 10)
        image.metadata = {"cfg": index % 3, "sampler": "ddim" if index < 4 else "euler"}
        image.save()
    for other in images[1:4]:
        Comparison.objects.create(project=project, image_a=images[0], image_b=other, outcome="a", rater=rater,
                                  client_key=f"k{other.pk}")
    return active


def ids(page):
    return [image.pk for image in page.images]


@pytest.mark.django_db
def test_filters_combine(project, images, browsable):
    pk = [image.pk for image in images]
    assert ids(browse(project, Filters(tag="even", sort="oldest"))) == pk[0::2]
    assert ids(browse(project, Filters(score_min=3, score_max=5, sort="oldest"))) == pk[2:5]
    assert ids(browse(project, Filters(comparisons_min=1, sort="oldest"))) == pk[0:4]
    assert ids(browse(project, Filters(comparisons_min=2, sort="oldest"))) == pk[0:1]
    assert ids(browse(project, Filters(metadata_key="cfg", metadata_value="2", sort="oldest"))) == [pk[2], pk[5]]
    assert ids(browse(project, Filters(metadata_key="sampler", metadata_value="euler", tag="odd", sort="oldest"))) == [
        pk[5], pk[7]]
    assert ids(browse(project, Filters(metadata_key="missing"))) == []


@pytest.mark.django_db
@pytest.mark.parametrize("sort", list(image_browser.SORTS))
def test_keyset_pages_cover_every_image_once_in_order(project, images, browsable, sort):
    whole = ids(browse(project, Filters(sort=sort, limit=100)))
    paged, cursor = [], ""
    while True:
        with CaptureQueriesContext(connection) as queries:
            page = browse(project, Filters(sort=sort, limit=3, cursor=cursor))
        assert not any("COUNT(" in q["sql"].upper() for q in queries.captured_queries)
        paged += ids(page)
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert paged == whole and len(whole) == 8
    if sort == "-score":
        assert whole == [image.pk for image in reversed(images)]  # the active version's order, not the old one's
    if sort == "-comparisons":
        assert whole[0] == images[0].pk
    if sort.endswith("comparisons"):  # by count (3, 1, 1, 1, 0 …), ties by id, in the sort's direction
        most_first = [images[0].pk] + [image.pk for image in reversed(images[1:4])] + [
            image.pk for image in reversed(images[4:])]
        assert whole == (most_first if sort == "-comparisons" else most_first[::-1])


@pytest.mark.django_db
def test_a_forged_cursor_is_refused(project, images, browsable):
    with pytest.raises(image_browser.BadBrowseRequest):
        browse(project, Filters(cursor="bm9wZQ"))


@pytest.mark.django_db
def test_api_is_for_managers_and_pages(api, project, images, browsable, manager, rater, outsider):
    assert api(rater).get(API).status_code == 403 and api(outsider).get(API).status_code == 404
    first = api(manager).get(API, {"sort": "-score", "limit": 5}).json()
    assert [row["score"] for row in first["results"]] == [8.0, 7.0, 6.0, 5.0, 4.0]
    assert first["model_version"] == browsable.pk and first["next_cursor"]
    second = api(manager).get(API, {"sort": "-score", "limit": 5, "cursor": first["next_cursor"]}).json()
    assert [row["score"] for row in second["results"]] == [3.0, 2.0, 1.0] and second["next_cursor"] is None
    assert api(manager).get(API, {"cursor": "%%%"}).status_code == 400
    history = api(manager).get(f"/api/v1/projects/test-project/images/{images[0].pk}/comparisons/").json()
    assert [row["image_b"] for row in history["results"]] == [images[3].pk, images[2].pk, images[1].pk]
    assert api(manager).get(f"/api/v1/projects/test-project/images/{images[7].pk}/comparisons/").json()[
        "results"] == []


@pytest.mark.django_db
def test_pages_show_images_and_an_image_s_comparisons(client, project, images, browsable, manager, rater):
    client.force_login(rater)
    assert client.get(reverse("project-image-browser", args=[project.slug])).status_code == 403
    client.force_login(manager)
    page = client.get(reverse("project-image-browser", args=[project.slug]), {"tag": "odd", "sort": "-score"})
    html = page.content.decode()
    assert page.status_code == 200
    assert html.index(f'data-image-id="{images[7].pk}"') < html.index(f'data-image-id="{images[1].pk}"')
    assert f'data-image-id="{images[0].pk}"' not in html
    detail = client.get(reverse("project-browser-image", args=[project.slug, images[1].pk])).content.decode()
    assert "lost" in detail and "img_0.png" in detail and "rater1" in detail
    assert ImageStats.objects.get(image=images[0]).comparison_count == 3
