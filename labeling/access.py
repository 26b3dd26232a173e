"""The one access layer: who may read or write what, for the API, the pages, media files and exports.

A caller's standing in a project is a ``ProjectRole``: superusers (site staff) may do everything;
otherwise only an *active* membership counts, and its role decides between rater and manager.
Outside their projects callers learn nothing: a foreign object and a missing one both raise
``Http404``; a member who lacks the role gets ``PermissionDenied`` (403). Both exceptions are Django's,
so pages answer them directly and DRF turns them into its JSON errors.

Archived projects are read-only: every request that writes (any method but GET, HEAD and OPTIONS) on one
is refused with 403 once the caller's standing is known, exports included among the reads (``writes_to``,
called by every entry point: the API's project and image look-ups, the model-version look-ups and
``manager_page``).

Blind raters: only managers see anything that reveals a score (model or human scores, generation
metadata, training runs, explanations) or other raters' names.
"""
from __future__ import annotations

import re

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404

from core import prepared_sql
from core.limits import MAX_ID
from labeling.models import Image, Membership, Project



def is_site_staff(user) -> bool:
    """Superusers see and manage every project; a plain ``is_staff`` flag only opens the admin."""
    return bool(user.is_authenticated and user.is_superuser)


class ProjectRole:
    """The caller's standing in one project, looked up once per request."""

    def __init__(self, user, project: Project, membership: Membership | None = None):
        self.user, self.project, self.membership = user, project, membership

    @property
    def is_staff(self) -> bool:
        return is_site_staff(self.user)

    @property
    def is_member(self) -> bool:
        return self.is_staff or (self.membership is not None and self.membership.is_active)

    @property
    def is_manager(self) -> bool:
        return self.is_staff or (self.is_member and self.membership.role == Membership.Role.MANAGER)

    @property
    def sees_scores(self) -> bool:
        """Raters judge blind: scores, metadata, runs and explanations are for managers."""
        return self.is_manager

    @property
    def sees_image_sources(self) -> bool:
        """Where an image came from (file name, external id, caption or prompt, metadata): managers only. Raters
        judge blind; a name like ``astronaut_blur_1`` tells the distortion and its strength."""
        return self.is_manager

    @property
    def can_export(self) -> bool:
        """Managers, and members given the ``labeling.export_project`` permission (e.g. a script's account)."""
        return self.is_manager or (self.is_member and self.user.has_perm("labeling.export_project"))

    @property
    def is_archived(self) -> bool:
        return self.project.archived_at is not None

    def require_open(self) -> "ProjectRole":
        if self.is_archived:
            raise PermissionDenied("This project is archived: it is read-only (exports still work).")
        return self

    @property
    def name(self) -> str:
        return "manager" if self.is_manager else "rater"

    def require_member(self, what: str = "project") -> "ProjectRole":
        if not self.is_member:
            raise Http404(f"No such {what}.")
        return self

    def require_manager(self, action: str = "do this") -> "ProjectRole":
        if not self.is_manager:
            raise PermissionDenied(f"Only a manager of this project may {action}.")
        return self

    def require_export(self) -> "ProjectRole":
        if not self.can_export:
            raise PermissionDenied("Only a manager, or an account with export permission, may export scores.")
        return self


READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def writes_to(role: ProjectRole, method: str) -> ProjectRole:
    """``role`` for a request with ``method``: refused (403) when it would write to an archived project."""
    return role if method in READ_METHODS else role.require_open()


# --- Looking up a standing ----------------------------------------------------------------------


def membership(user, project: Project) -> Membership | None:
    if not user.is_authenticated:
        return None
    return Membership.objects.filter(user=user, project=project, is_active=True).first()


def role_in(user, project: Project | None, what: str = "project") -> ProjectRole:
    """The caller's role in ``project``; 404 when there is none or the caller is not an active member."""
    if project is None or not user.is_authenticated:
        raise Http404(f"No such {what}.")
    found = None if is_site_staff(user) else membership(user, project)
    return ProjectRole(user, project, found).require_member(what)


def project_role(user, slug: str) -> ProjectRole:
    """``role_in`` by slug, in one query (it runs on every rating request)."""
    if not user.is_authenticated:
        raise Http404("No such project.")
    if is_site_staff(user):
        return role_in(user, Project.objects.filter(slug=slug).first())
    # A prepared statement: building the equivalent ORM join costs more CPU than the database spends on it.
    fields = [field.attname for field in Project._meta.concrete_fields if field.get_internal_type() != "JSONField"]
    rows = prepared_sql.execute(
        f"""SELECT {", ".join("p." + Project._meta.get_field(name).column for name in fields)}, m.id, m.role
            FROM {Project._meta.db_table} p JOIN {Membership._meta.db_table} m ON m.project_id = p.id
            WHERE p.slug = %s AND m.user_id = %s AND m.is_active""",
        [slug, user.pk],
    )
    if not rows:
        raise Http404("No such project.")
    *project_values, membership_id, membership_role = rows[0]
    project = prepared_sql.model_from_row(Project, fields, project_values)
    member = Membership(id=membership_id, project=project, user=user, role=membership_role, is_active=True)
    return ProjectRole(user, project, member)


def image_role(user, image_id: int) -> tuple[Image, ProjectRole]:
    """An image and the caller's role in its project; 404 for a foreign or missing image alike."""
    image = None
    if 0 < int(image_id) <= MAX_ID:
        image = Image.objects.select_related("project").filter(pk=image_id).first()
    if image is None:
        raise Http404("No such image.")
    return image, role_in(user, image.project, "image")


def projects_for(user) -> QuerySet[Project]:
    if not user.is_authenticated:
        return Project.objects.none()
    if is_site_staff(user):
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user, memberships__is_active=True).distinct()


def managed_projects(user) -> QuerySet[Project]:
    """The projects the caller manages (all of them for site staff): e.g. the sources a warm start may name."""
    if not user.is_authenticated:
        return Project.objects.none()
    if is_site_staff(user):
        return Project.objects.all()
    return Project.objects.filter(
        memberships__user=user, memberships__is_active=True, memberships__role=Membership.Role.MANAGER
    ).distinct()


def roles_for(user, projects) -> dict[int, str]:
    """Role names of the caller in a page of projects (one query)."""
    if is_site_staff(user):
        return {project.pk: "manager" for project in projects}
    return dict(
        Membership.objects.filter(user=user, project__in=[p.pk for p in projects], is_active=True).values_list(
            "project_id", "role"
        )
    )


def can_rate(user, project: Project) -> bool:
    return user.is_authenticated and (is_site_staff(user) or membership(user, project) is not None)


def can_manage(user, project: Project) -> bool:
    if not user.is_authenticated:
        return False
    if is_site_staff(user):
        return True
    member = membership(user, project)
    return member is not None and member.role == Membership.Role.MANAGER


def can_create_projects(user) -> bool:
    return user.is_authenticated and (user.is_staff or user.has_perm("labeling.add_project"))


# --- Crowd identities --------------------------------------------------------------------------------

# A crowd worker signed in through a campaign link (labeling/services/crowd_links.py) may rate and nothing
# else: the rating page, the rating API, the images' files and tags, the instructions, signing out.
CROWD_SESSION_KEY = "tagrank_crowd_worker"
CROWD_ROUTES = frozenset({
    "crowd-link", "project-rate", "api-next-pair", "api-comparisons", "api-undo", "api-skip", "api-release",
    "api-vocabulary", "api-image-tags", "api-instructions", "media", "logout",
})


def is_crowd_session(session) -> bool:
    return bool(session.get(CROWD_SESSION_KEY))


def crowd_worker_may(route_name: str | None) -> bool:
    """May a crowd identity reach the route ``route_name``? Only rating (``CROWD_ROUTES``)."""
    return route_name in CROWD_ROUTES


# --- Files under MEDIA_ROOT ------------------------------------------------------------------------

# A stored file's path names its owner; anything else under media (trained weights, cached features)
# is never served.
IMAGE_FILE = re.compile(
    r"^(?P<kind>images|thumbnails)/(?P<project>[0-9]{1,18})/[0-9a-f]{2}/(?P<sha>[0-9a-f]{64})\.(jpg|png|webp)$"
)
EXPLANATION_FILE = re.compile(r"^explanations/v(?P<version>[0-9]{1,18})/(?P<image>[0-9]{1,18})\.(json|png)$")


def media_image(path: str) -> Image | None:
    """The image whose original or thumbnail is at ``path`` (relative to MEDIA_ROOT), if any."""
    match = IMAGE_FILE.match(path)
    if match is None:
        return None
    image = Image.objects.select_related("project").filter(
        project_id=int(match["project"]), sha256=match["sha"]
    ).first()
    if image is None:
        return None
    stored = image.file.name if match["kind"] == "images" else image.thumbnail.name
    return image if stored == path else None


def media_explanation_ids(path: str) -> tuple[int, int] | None:
    """(model version id, image id) of a cached explanation file; its owner is looked up by the caller
    (model versions live in the modeling app, which labeling does not import)."""
    match = EXPLANATION_FILE.match(path)
    return (int(match["version"]), int(match["image"])) if match else None


def media_file_role(user, path: str, explanation_project=None) -> ProjectRole:
    """May ``user`` read the media file at ``path``? Images: any active member of the image's project;
    explanations: its managers (they reveal scores). Everything else, and every refusal, is 404.

    ``explanation_project(version_id, image_id)`` maps an explanation file to its project (or None).
    """
    image = media_image(path)
    if image is not None:
        return role_in(user, image.project, "file")
    ids = media_explanation_ids(path)
    if ids is not None and explanation_project is not None:
        role = role_in(user, explanation_project(*ids), "file")
        if role.sees_scores:
            return role
    raise Http404("No such file.")


# --- Failures ----------------------------------------------------------------------------------------


def error_message(error: str) -> str:
    """A stored failure trimmed to its message, for anyone but site staff: the exception line that ends
    a traceback, or else the first line."""
    lines = [line.strip() for line in (error or "").strip().splitlines() if line.strip()]
    if not lines:
        return ""
    return lines[-1] if lines[0].startswith("Traceback") else lines[0]


def error_for(user, error: str) -> str:
    return error if is_site_staff(user) else error_message(error)
