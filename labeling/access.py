"""Who may do what in a project. Superusers may do everything; otherwise the membership decides."""
from django.db.models import QuerySet

from labeling.models import Membership, Project


def projects_for(user) -> QuerySet[Project]:
    if not user.is_authenticated:
        return Project.objects.none()
    if user.is_superuser:
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user, memberships__is_active=True).distinct()


def membership(user, project: Project) -> Membership | None:
    if not user.is_authenticated:
        return None
    return Membership.objects.filter(user=user, project=project, is_active=True).first()


def can_rate(user, project: Project) -> bool:
    return user.is_authenticated and (user.is_superuser or membership(user, project) is not None)


def can_manage(user, project: Project) -> bool:
    if not user.is_authenticated:
        return False
    if user.is_superuser:
        return True
    member = membership(user, project)
    return member is not None and member.role == Membership.Role.MANAGER
