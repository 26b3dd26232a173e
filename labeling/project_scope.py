"""The access layer (``labeling.access``) applied to views: ``ProjectScopedMixin`` for the API, ``manager_page``
for the pages, in both apps.

Every project-scoped API view resolves the caller's role once through ``ProjectScopedMixin``: a caller who
is not an active member gets 404 (other projects are not even confirmed to exist), a member who lacks
the role gets 403, so does a write to an archived project, and an anonymous caller gets 401 before any of that (``IsAuthenticated`` runs
first, and TokenAuthentication, the first authenticator, supplies the WWW-Authenticate header).
"""
from __future__ import annotations

from functools import cached_property, wraps

from django.contrib.auth.decorators import login_required
from rest_framework.exceptions import NotFound

from core.limits import MAX_ID
from labeling import access
from labeling.access import ProjectRole  # noqa: F401  (re-exported for the API views)
from labeling.models import Image, Project


def project_role(request, slug: str) -> ProjectRole:
    return access.project_role(request.user, slug)


def image_role(request, image_id: int) -> tuple[Image, ProjectRole]:
    image, role = access.image_role(request.user, image_id)
    return image, access.writes_to(role, request.method)


class ProjectScopedMixin:
    """For views under ``projects/<slug>/``: ``self.project`` and ``self.role`` for the caller."""

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authentication (401), permissions, throttles
        self.role  # then the project: a non-member gets 404 before the request body is even read

    @cached_property
    def role(self) -> ProjectRole:
        return access.writes_to(project_role(self.request, self.kwargs["slug"]), self.request.method)

    @property
    def project(self) -> Project:
        return self.role.project

    def require_manager(self, action: str = "do this") -> None:
        self.role.require_manager(action)

    def require_export(self) -> None:
        self.role.require_export()

    def managed_row(self, model, row_id: int, action: str, missing: str):
        """The project's ``model`` row ``row_id`` for a manager doing ``action``; 404 saying ``missing`` if none."""
        self.require_manager(action)
        row = model.objects.filter(project=self.project, pk=row_id).first() if row_id <= MAX_ID else None
        if row is None:
            raise NotFound(missing)
        return row


def manager_page(methods, *, writes_project: bool = True):
    """Decorates a page of a project's managers, in both apps: the caller is signed in, the request uses one of
    ``methods`` (a ``require_*`` decorator), and the view gets the project (403 for its raters and for a write to
    an archived project, 404 for anyone else) in place of the ``slug``. ``writes_project=False``: the page's
    POST changes nothing of this project (it starts another one from it), so an archived project allows it."""

    def decorate(view):
        @login_required
        @methods
        @wraps(view)
        def page(request, slug, **kwargs):
            role = access.project_role(request.user, slug).require_manager()
            return view(request, (access.writes_to(role, request.method) if writes_project else role).project, **kwargs)

        return page

    return decorate
