"""The admin is for superusers only, never edits a judgment, and leaves an image's files and project alone.

Finding 1 of issue 26: a manager made staff with every labeling and modeling permission (as seed_demo did)
used /admin/ to make himself manager of another project and to change its judgments.
"""
import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile

from labeling.models import Comparison, Image, Membership
from labeling.services.demo import ensure_demo_users


@pytest.fixture
def staff_manager(manager):
    """The demo manager as seed_demo used to make him: staff, with every labeling and modeling permission."""
    manager.is_staff = True
    manager.save()
    manager.user_permissions.add(*Permission.objects.filter(content_type__app_label__in=["labeling", "modeling"]))
    return manager


@pytest.fixture
def judgment(project, images, rater):
    return Comparison.objects.create(project=project, image_a=images[0], image_b=images[1], outcome="a",
                                     rater=rater, client_key="admin-test")


@pytest.mark.django_db
def test_staff_with_every_model_permission_gets_nothing_from_the_admin(client, staff_manager, other_project, judgment):
    client.force_login(staff_manager)
    assert client.get("/admin/").status_code == 302  # to the admin's sign-in, as for anybody else
    added = client.post("/admin/labeling/membership/add/", {
        "user": staff_manager.pk, "project": other_project.pk, "role": "manager", "is_active": "on"})
    assert added.status_code == 302 and "/admin/login/" in added["Location"]
    assert not Membership.objects.filter(user=staff_manager, project=other_project).exists()
    changed = client.post(f"/admin/labeling/comparison/{judgment.pk}/change/", {"outcome": "b"})
    assert changed.status_code == 302 and "/admin/login/" in changed["Location"]
    for url in ("/admin/labeling/project/", "/admin/modeling/trainingrun/", f"/admin/labeling/image/{judgment.image_a_id}/change/"):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], url


@pytest.mark.django_db
def test_seed_demo_makes_the_manager_neither_staff_nor_holder_of_model_permissions(project, staff_manager):
    ensure_demo_users(project)  # seed_demo's users, over an earlier demo's staff manager of the same name
    from django.contrib.auth import get_user_model

    demo_manager = get_user_model().objects.get(username="manager")
    assert not demo_manager.is_staff and not demo_manager.is_superuser
    assert not demo_manager.user_permissions.exists()
    assert Membership.objects.get(user=demo_manager, project=project).role == "manager"


@pytest.mark.django_db
def test_superusers_see_judgments_read_only_and_cannot_replace_image_files(client, django_user_model, judgment,
                                                                         images, other_project, image_bytes):
    root = django_user_model.objects.create_superuser("root", "root@example.com", "a-long-admin-passphrase")
    client.force_login(root)
    page = client.get(f"/admin/labeling/comparison/{judgment.pk}/change/")
    assert page.status_code == 200 and 'name="outcome"' not in page.content.decode()  # shown, not a form field
    assert client.post(f"/admin/labeling/comparison/{judgment.pk}/change/", {"outcome": "b"}).status_code == 403
    assert client.post("/admin/labeling/comparison/add/", {}).status_code == 403
    judgment.refresh_from_db()
    assert judgment.outcome == "a"

    image = images[0]
    before = (image.file.name, image.thumbnail.name, image.project_id)
    form = client.get(f"/admin/labeling/image/{image.pk}/change/").content.decode()
    for field in ("file", "thumbnail", "project"):
        assert f'name="{field}"' not in form
    evil = SimpleUploadedFile("evil.html", b"<script>alert(1)</script>", content_type="text/html")
    client.post(f"/admin/labeling/image/{image.pk}/change/", {
        "file": evil, "thumbnail": evil, "project": other_project.pk, "original_name": image.original_name,
        "external_id": "", "caption": "", "metadata": "{}",
        "image_tags-TOTAL_FORMS": "0", "image_tags-INITIAL_FORMS": "0"})
    image.refresh_from_db()
    assert (image.file.name, image.thumbnail.name, image.project_id) == before
    assert client.get("/admin/labeling/image/add/").status_code == 403
    assert Image.objects.count() == len(images)
