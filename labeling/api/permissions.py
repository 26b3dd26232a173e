"""Who may call what in the API.

Every project-scoped view resolves the project once through ``ProjectScopedMixin``: a caller who is
not an active member gets 404 (other projects are not even confirmed to exist), a member who lacks
the role gets 403, and an anonymous caller gets 401 before any of that (``IsAuthenticated`` runs
first, and TokenAuthentication, the first authenticator, supplies the WWW-Authenticate header).
"""
from __future__ import annotations

from functools import cached_property

from rest_framework.exceptions import NotFound, PermissionDenied

from labeling import access
from labeling.models import Image, Membership, Project


class ProjectRole:
    """The caller's standing in one project, looked up once per request."""

    def __init__(self, user, project: Project, membership: Membership | None = None):
        self.user, self.project, self.membership = user, project, membership

    @property
    def is_member(self) -> bool:
        return self.user.is_superuser or self.membership is not None

    @property
    def is_manager(self) -> bool:
        return self.user.is_superuser or (
            self.membership is not None and self.membership.role == Membership.Role.MANAGER
        )

    @property
    def can_export(self) -> bool:
        """Managers, and members given the ``labeling.export_project`` permission (e.g. a script's account)."""
        return self.is_manager or (self.is_member and self.user.has_perm("labeling.export_project"))

    @property
    def name(self) -> str:
        return "manager" if self.is_manager else "rater"


def project_role(request, slug: str) -> ProjectRole:
    user = request.user
    if user.is_superuser:
        project = Project.objects.filter(slug=slug).first()
        if project is None:
            raise NotFound("No such project.")
        return ProjectRole(user, project)
    # One query for the project and the caller's active membership; raw because it runs on every rating
    # request and compiling the equivalent ORM join costs more CPU than the database spends on it.
    found = list(
        Project.objects.raw(
            f"""SELECT p.*, m.id AS membership_id, m.role AS membership_role
                FROM {Project._meta.db_table} p JOIN {Membership._meta.db_table} m ON m.project_id = p.id
                WHERE p.slug = %s AND m.user_id = %s AND m.is_active""",
            [slug, user.pk],
        )
    )
    if not found:
        raise NotFound("No such project.")
    project = found[0]
    membership = Membership(
        id=project.membership_id, project=project, user=user, role=project.membership_role, is_active=True
    )
    return ProjectRole(user, project, membership)


def image_role(request, image_id: int) -> tuple[Image, ProjectRole]:
    if image_id > 2**63 - 1:  # beyond any database id (and the driver's integers)
        raise NotFound("No such image.")
    image = Image.objects.select_related("project").filter(pk=image_id).first()
    if image is None:
        raise NotFound("No such image.")
    membership = None if request.user.is_superuser else access.membership(request.user, image.project)
    role = ProjectRole(request.user, image.project, membership)
    if not role.is_member:
        raise NotFound("No such image.")
    return image, role


class ProjectScopedMixin:
    """For views under ``projects/<slug>/``: ``self.project`` and ``self.role`` for the caller."""

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authentication (401), permissions, throttles
        self.role  # then the project: a non-member gets 404 before the request body is even read

    @cached_property
    def role(self) -> ProjectRole:
        return project_role(self.request, self.kwargs["slug"])

    @property
    def project(self) -> Project:
        return self.role.project

    def require_manager(self, action: str = "do this") -> None:
        if not self.role.is_manager:
            raise PermissionDenied(f"Only a manager of this project may {action}.")

    def require_export(self) -> None:
        if not self.role.can_export:
            raise PermissionDenied("Only a manager, or an account with export permission, may export scores.")
