"""The one access layer (labeling.access): roles, active membership, site staff, and what a refusal looks like."""
from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404

from labeling import access
from labeling.models import Membership, Project


@pytest.mark.django_db
def test_roles_come_from_active_memberships_and_superusers(project, rater, manager, make_user):
    assert access.project_role(rater, project.slug).name == "rater"
    assert access.project_role(manager, project.slug).is_manager
    with pytest.raises(PermissionDenied):
        access.project_role(rater, project.slug).require_manager("upload")
    Membership.objects.filter(user=manager).update(is_active=False)
    with pytest.raises(Http404):
        access.project_role(manager, project.slug)
    with pytest.raises(Http404):
        access.role_in(manager, project)
    assert list(access.projects_for(manager)) == []
    root = make_user("root", is_superuser=True, is_staff=True)
    assert access.project_role(root, project.slug).is_manager and list(access.projects_for(root)) == [project]


@pytest.mark.django_db
def test_a_foreign_project_and_a_missing_one_are_refused_alike(project, make_user):
    other = Project.objects.create(name="Other", slug="other", overlap=1)
    stranger = make_user("stranger")
    Membership.objects.create(project=other, user=stranger, role=Membership.Role.MANAGER)
    admin_only = make_user("clerk", is_staff=True)  # the admin flag alone opens no project
    for user in (stranger, admin_only):
        with pytest.raises(Http404) as foreign:
            access.project_role(user, project.slug)
        with pytest.raises(Http404) as missing:
            access.project_role(user, "no-such-project")
        assert str(foreign.value) == str(missing.value)
    assert access.can_create_projects(admin_only) and not access.can_create_projects(stranger)


@pytest.mark.django_db
def test_a_foreign_image_answers_like_a_missing_one(project, images, make_user):
    stranger = make_user("stranger")
    for image_id in (images[0].pk, 999999999, 2**63):
        with pytest.raises(Http404, match="No such image"):
            access.image_role(stranger, image_id)


def test_failures_are_trimmed_to_their_message_for_all_but_site_staff():
    traceback = 'Traceback (most recent call last):\n  File "x.py", line 1\nRuntimeError: CUDA out of memory\n'
    assert access.error_message(traceback) == "RuntimeError: CUDA out of memory"
    assert access.error_message("worker lost\ndetails") == "worker lost"
    assert access.error_message("") == ""
