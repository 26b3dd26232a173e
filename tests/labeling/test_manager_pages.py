"""The server-rendered pages: the rating page, and the manager's project, upload, rater, progress and gold pages."""
import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from labeling.models import GoldPair, Image, Invite, Membership, PairLease, Project
from labeling.services import invites
from labeling.services.pair_serving import next_pair


@pytest.mark.django_db
def test_rating_page_has_the_question_keys_and_no_external_assets(client, project, rater):
    client.force_login(rater)
    html = client.get(reverse("project-rate", args=[project.slug])).content.decode()
    assert project.question in html and 'id="img-a"' in html and 'id="img-b"' in html
    for button in ("Tie", "Skip", "Undo"):
        assert f'{button} <span class="key-hint"><kbd>{button[0]}</kbd></span>' in html
    assert "/static/js/rate.js" in html and "/static/css/rate.css" in html
    assert not re.search(r"(src|href)=\"https?://", html)  # nothing from a CDN
    assert 'data-csrf="' in html and "Nothing to rate right now" in html


@pytest.mark.django_db
def test_rating_page_hides_tie_where_ties_are_not_allowed(client, project, rater):
    Project.objects.filter(pk=project.pk).update(allow_ties=False)
    client.force_login(rater)
    html = client.get(reverse("project-rate", args=[project.slug])).content.decode()
    assert 'id="tie-button"' not in html and 'data-allow-ties="false"' in html


@pytest.mark.django_db
def test_manager_pages_are_for_managers(client, project, rater, manager):
    pages = ["project-edit", "project-upload", "project-raters", "project-progress", "project-gold"]
    client.force_login(rater)
    for name in pages:
        assert client.get(reverse(name, args=[project.slug])).status_code == 403
    client.force_login(manager)
    for name in pages:
        assert client.get(reverse(name, args=[project.slug])).status_code == 200
    assert 'href="/projects/test-project/progress/"' in client.get(reverse("project-detail", args=[project.slug])).content.decode()


@pytest.mark.django_db
def test_staff_create_a_project_and_become_its_manager(client, make_user):
    staff = make_user("staff", is_staff=True)
    client.force_login(staff)
    response = client.post(reverse("project-create"), {
        "name": "Portraits", "slug": "portraits", "question": "Which portrait is better lit?", "description": "",
        "tag_vocabulary": "closed", "overlap": 3, "gold_rate": 0.1, "allow_ties": "", "pair_strategy": "active",
        "retrain_min_new_comparisons": 50, "retrain_max_age_hours": 24,
    })
    assert response.status_code == 302 and response.url == reverse("project-upload", args=["portraits"])
    project = Project.objects.get(slug="portraits")
    assert (project.overlap, project.allow_ties, project.tag_vocabulary) == (3, False, "closed")
    assert Membership.objects.get(project=project).role == "manager"


@pytest.mark.django_db
def test_non_staff_cannot_create_projects(client, rater):
    client.force_login(rater)
    assert client.get(reverse("project-create")).status_code == 403


@pytest.mark.django_db
def test_editing_settings_refuses_bad_values_and_keeps_the_slug(client, project, manager):
    client.force_login(manager)
    url = reverse("project-edit", args=[project.slug])
    data = {"name": "Renamed", "slug": "sneaky", "question": "Q?", "description": "", "tag_vocabulary": "open",
            "overlap": 2, "gold_rate": 3, "allow_ties": "on", "pair_strategy": "random",
            "retrain_min_new_comparisons": 50, "retrain_max_age_hours": 24}
    response = client.post(url, data)
    assert response.status_code == 200 and "between 0 and 1" in response.content.decode()
    response = client.post(url, {**data, "gold_rate": 0.05})
    assert response.status_code == 302
    project.refresh_from_db()
    assert (project.name, project.slug, project.overlap, project.gold_rate) == ("Renamed", "test-project", 2, 0.05)


@pytest.mark.django_db
def test_upload_page_imports_good_files_and_reports_bad_ones_by_name(client, project, manager, image_bytes):
    client.force_login(manager)
    files = [
        SimpleUploadedFile("good.png", image_bytes(seed=1)),
        SimpleUploadedFile("broken.jpg", b"not really a jpeg"),
        SimpleUploadedFile("good-again.png", image_bytes(seed=1)),
    ]
    response = client.post(reverse("project-upload", args=[project.slug]), {"files": files, "tags": "Beach, sky"})
    html = response.content.decode()
    assert response.status_code == 200
    assert "imported 1, duplicates skipped 1, rejected 1" in html
    assert "broken.jpg" in html and "not an image" in html
    (image,) = Image.objects.filter(project=project)
    assert sorted(image.image_tags.values_list("tag__name", flat=True)) == ["beach", "sky"]


@pytest.mark.django_db
def test_invite_link_signs_up_a_rater_who_lands_on_the_rating_page(client, project, manager):
    client.force_login(manager)
    response = client.post(reverse("project-raters", args=[project.slug]),
                           {"role": "rater", "max_uses": 1, "days": 7, "note": "for Ana"})
    link = re.search(r'id="invite-link"[^>]*value="([^"]+)"', response.content.decode()).group(1)
    assert link.startswith("http://testserver/signup/")
    client.logout()
    path = link.removeprefix("http://testserver")
    assert "Join Test project" in client.get(path).content.decode()
    response = client.post(path, {"username": "ana", "email": "", "password1": "a-long-passphrase-1",
                                  "password2": "a-long-passphrase-1"})
    assert response.status_code == 302 and response.url == reverse("project-rate", args=[project.slug])
    ana = get_user_model().objects.get(username="ana")
    assert Membership.objects.get(user=ana, project=project).role == "rater"
    assert client.get(reverse("project-rate", args=[project.slug])).status_code == 200  # signed in
    client.logout()
    used_up = client.get(path)
    assert used_up.status_code == 410 and "already been used" in used_up.content.decode()


@pytest.mark.django_db
def test_unusable_invites_explain_why_and_create_no_account(client, project, manager):
    expired = invites.create_invite(project, manager)
    Invite.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(days=1))
    assert "expired" in client.get(reverse("signup", args=[expired.token])).content.decode()
    revoked = invites.create_invite(project, manager)
    client.force_login(manager)
    client.post(reverse("invite-revoke", args=[project.slug, revoked.pk]))
    client.logout()
    response = client.post(reverse("signup", args=[revoked.token]),
                           {"username": "late", "password1": "a-long-passphrase-1", "password2": "a-long-passphrase-1"})
    assert response.status_code == 410 and "revoked" in response.content.decode()
    assert client.get(reverse("signup", args=["no-such-token"])).status_code == 410
    assert not get_user_model().objects.filter(username="late").exists()


@pytest.mark.django_db
def test_invites_neither_reactivate_nor_promote_nor_demote(client, project, manager, make_user):
    member = make_user("returning")
    Membership.objects.create(project=project, user=member, is_active=False)
    invite = invites.create_invite(project, manager, role="manager", max_uses=5)
    client.force_login(member)
    response = client.post(reverse("signup", args=[invite.token]))
    assert response.status_code == 410 and "deactivated" in response.content.decode()
    membership = Membership.objects.get(user=member, project=project)
    assert not membership.is_active and membership.role == "rater"
    # An active rater who opens a manager link stays a rater; a manager who opens a rater link stays a manager.
    Membership.objects.filter(pk=membership.pk).update(is_active=True)
    assert client.post(reverse("signup", args=[invite.token])).status_code == 302
    assert Membership.objects.get(pk=membership.pk).role == "rater"
    rater_link = invites.create_invite(project, manager, role="rater", max_uses=5)
    client.force_login(manager)
    assert client.post(reverse("signup", args=[rater_link.token])).status_code == 302
    assert Membership.objects.get(user=manager, project=project).role == "manager"
    invite.refresh_from_db()
    rater_link.refresh_from_db()
    assert invite.uses == 0 and rater_link.uses == 0  # existing members do not use up a link
    newcomer = make_user("newcomer")
    client.force_login(newcomer)
    assert client.post(reverse("signup", args=[invite.token])).status_code == 302
    assert Membership.objects.get(user=newcomer, project=project).role == "manager"


@pytest.mark.django_db
def test_deactivating_a_rater_ends_their_access_and_returns_their_leases(client, api, project, images, manager, rater,
                                                                        monkeypatch):
    _, lease = next_pair(project, rater)
    client.force_login(manager)
    membership = Membership.objects.get(user=rater, project=project)
    client.post(reverse("membership-toggle", args=[project.slug, membership.pk]), {"action": "deactivate"})
    membership.refresh_from_db()
    assert not membership.is_active
    lease.refresh_from_db()
    assert lease.state == PairLease.State.RELEASED
    assert api(rater).get("/api/v1/projects/test-project/next-pair/").status_code == 404
    refits = []
    monkeypatch.setattr("worker.dispatch.send_metrics_refresh", refits.append)
    client.post(reverse("membership-toggle", args=[project.slug, membership.pk]), {"action": "exclude"})
    membership.refresh_from_db()
    assert membership.excluded_from_training
    assert refits == [project.pk]  # the human scores and the agreement report are refitted without them
    client.post(reverse("membership-toggle", args=[project.slug, membership.pk]), {"action": "activate"})
    assert api(rater).get("/api/v1/projects/test-project/next-pair/").status_code == 200
    mine = Membership.objects.get(user=manager)
    response = client.post(reverse("membership-toggle", args=[project.slug, mine.pk]), {"action": "deactivate"}, follow=True)
    assert "cannot deactivate yourself" in response.content.decode()


@pytest.mark.django_db
def test_progress_page_shows_counts_per_rater(client, project, images, manager, rater):
    from labeling.services.comparisons import submit_comparison

    _, lease = next_pair(project, rater)
    submit_comparison(project, rater, lease=lease.token, winner="a", client_key="k")
    client.force_login(manager)
    html = client.get(reverse("project-progress", args=[project.slug])).content.decode()
    assert '<dd id="progress-comparisons">1</dd>' in html
    assert '<dd id="progress-never-compared">6</dd>' in html
    assert "rater1" in html and "1.00" in html  # one left answer of one: left share 1.00


@pytest.mark.django_db
def test_gold_page_marks_a_pair_and_refuses_a_bad_one(client, project, images, manager):
    client.force_login(manager)
    url = reverse("project-gold", args=[project.slug])
    response = client.post(url, {"image_a": images[0].pk, "image_b": images[1].pk, "expected": "b", "note": ""})
    assert response.status_code == 302
    assert GoldPair.objects.get().expected == "b"
    again = client.post(url, {"image_a": images[1].pk, "image_b": images[0].pk, "expected": "a"})
    assert "already a gold pair" in again.content.decode()
    missing = client.post(url, {"image_a": images[2].pk, "image_b": 999999, "expected": "a"})
    assert "not in this project" in missing.content.decode()
    assert GoldPair.objects.count() == 1
