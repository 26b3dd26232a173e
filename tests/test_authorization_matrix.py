"""The authorization matrix, generated from the URL conf, and able to fail where it matters.

Every route (API, pages, media, admin) is walked with the django.urls resolver and called with every
method by every kind of caller: anonymous, a deactivated account, a rater and a manager of the project, a
rater and a manager of another project, a manager of another project who is staff with every model
permission, a deactivated rater and manager of the project, a plain staff user and a superuser.

- ``MATRIX`` says, per route name and method, which callers may succeed.
- A route that is not in ``MATRIX`` (a new one) fails, and so does an entry for a route that is gone; a
  route that anybody may write to needs a valid body in ``BODIES`` (from its serializer or form).
- Writes carry those valid bodies, so a caller who is let through by mistake succeeds (and is reported)
  rather than hiding behind a 400. Callers allowed a method must succeed with it (a 2xx; a redirect that
  is not the sign-in page, for a page's POST), so the matrix cannot drift into "nobody".
- Everyone else is refused: 401/403/404/405 (or the sign-in redirect of a page). A 400, a 409 or any other
  answer where a refusal is due is reported.
- For objects outside the caller's projects the answer is exactly the one for a missing object: a foreign
  project and a missing one look the same, and so does *my own project's slug with another project's
  object id* (the project filter of every look-up). Ids past the database's range match no route (404).

``matrix_problems`` is the check; ``test_the_matrix`` runs it over every route and
``test_the_matrix_catches_a_removed_check`` proves that it reports a removed permission check and a
removed project filter. Each request runs in a transaction that is rolled back, so that one call's writes
never change the next.
"""
from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.urls.converters import IntConverter
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.conftest import make_image_bytes

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
WRITES = ("POST", "PUT", "PATCH", "DELETE")

ANON, DISABLED = "anonymous", "deactivated_account"
RATER, MANAGER = "rater", "manager"
OTHER_RATER, OTHER_MANAGER = "other_rater", "other_manager"
STAFF_MANAGER = "staff_manager_elsewhere"  # manager of the other project, is_staff, every model permission
GONE_RATER, GONE_MANAGER = "deactivated_rater", "deactivated_manager"
STAFF, SUPERUSER = "staff", "superuser"
CALLERS = (ANON, DISABLED, RATER, MANAGER, OTHER_RATER, OTHER_MANAGER, STAFF_MANAGER, GONE_RATER, GONE_MANAGER, STAFF,
           SUPERUSER)
# Signed in, not active members of the project: for them its objects do not exist.
OUTSIDERS = (OTHER_RATER, OTHER_MANAGER, STAFF_MANAGER, GONE_RATER, GONE_MANAGER, STAFF)
NOT_SIGNED_IN = (ANON, DISABLED)  # a deactivated account's token and session are refused

NOBODY: frozenset = frozenset()
PUBLIC = frozenset(CALLERS)
SIGNED_IN = PUBLIC - set(NOT_SIGNED_IN)
MEMBERS = frozenset({RATER, MANAGER, SUPERUSER})
MANAGERS = frozenset({MANAGER, SUPERUSER})
CREATORS = frozenset({STAFF, STAFF_MANAGER, SUPERUSER})  # is_staff (or add_project) creates projects, opens none


def read(group):
    return {"GET": group, "HEAD": group}


# route name -> {method: callers who may get a 2xx}. Methods not listed: nobody.
MATRIX: dict[str, dict[str, frozenset]] = {
    # Accounts and the site
    "login": {**read(PUBLIC), "POST": PUBLIC, "PUT": PUBLIC, "OPTIONS": PUBLIC},
    "logout": {"POST": PUBLIC, "OPTIONS": PUBLIC},
    "healthz": read(PUBLIC),
    "signup": {**read(PUBLIC), "POST": PUBLIC},  # whoever holds a valid invitation link
    "crowd-link": read(PUBLIC),  # a campaign link with a worker id signs the worker in (BODIES gives one)
    "api-token": {"POST": PUBLIC},
    "api-token-revoke": {"POST": SIGNED_IN},  # the caller's own token
    "api-schema": read(SIGNED_IN),
    "api-swagger": read(SIGNED_IN),
    "api-redoc": read(SIGNED_IN),
    # Labelling pages
    "project-list": read(SIGNED_IN),
    "project-create": {**read(CREATORS), "POST": CREATORS},
    "project-detail": read(MEMBERS),
    "project-rate": read(MEMBERS),
    "project-edit": {**read(MANAGERS), "POST": MANAGERS},
    "project-upload": {**read(MANAGERS), "POST": MANAGERS},
    "project-raters": {**read(MANAGERS), "POST": MANAGERS},
    "membership-toggle": {"POST": MANAGERS},
    "rater-reinstate": {"POST": MANAGERS},
    "invite-revoke": {"POST": MANAGERS},
    "project-progress": read(MANAGERS),
    "project-gold": {**read(MANAGERS), "POST": MANAGERS},
    "project-instructions": {**read(MANAGERS), "POST": MANAGERS},
    "project-campaign-links": {**read(MANAGERS), "POST": MANAGERS},
    "project-campaign-link-close": {"POST": MANAGERS},
    "project-example-delete": {"POST": MANAGERS},
    # Modeling pages (raters judge blind: no models, dashboards or analyses)
    "project-models": read(MANAGERS),
    "project-models-retrain": {"POST": MANAGERS},
    "project-models-settings": {"POST": MANAGERS},
    "project-models-promote": {"POST": MANAGERS},
    "project-models-rollback": {"POST": MANAGERS},
    "project-models-new-campaign": {"POST": frozenset({SUPERUSER})},  # managers who may also create projects
    "project-models-warm-start-into": {"POST": MANAGERS},  # of this project and of the one warm-started
    "project-dashboard": read(MANAGERS),
    "project-dashboard-recompute": {"POST": MANAGERS},
    "project-rater-exclusion": {"POST": MANAGERS},
    "project-dashboard-csv": read(MANAGERS),
    "analysis-tags": read(MANAGERS),
    "analysis-metadata": read(MANAGERS),
    "project-leaderboard": read(MANAGERS),
    "image-detail": read(MEMBERS),  # raters see the image, its tags and the question only
    "image-heat-map": read(MANAGERS),
    # Labelling API
    "api-projects": {**read(SIGNED_IN), "POST": CREATORS},
    "api-project": {**read(MEMBERS), "PATCH": MANAGERS},
    "api-next-pair": read(MEMBERS),
    "api-comparisons": {**read(MEMBERS), "POST": MEMBERS},
    "api-undo": {"POST": MEMBERS},
    "api-skip": {"POST": MEMBERS},
    "api-release": {"POST": MEMBERS},
    "api-images": {**read(MEMBERS), "POST": MANAGERS},
    "api-vocabulary": read(MEMBERS),
    "api-gold-pairs": {**read(MANAGERS), "POST": MANAGERS},
    "api-progress": read(MANAGERS),
    "api-instructions": read(MEMBERS),
    "api-export-payment": read(MANAGERS),
    "api-rater-reinstate": {"POST": MANAGERS},
    "api-scores": read(MANAGERS),
    "api-image-tags": {**read(MEMBERS), "POST": MEMBERS, "DELETE": MEMBERS},
    # Model-loop API: managers only
    "api-model-versions": read(MANAGERS),
    "api-retrain": {"POST": MANAGERS},
    "api-training-settings": {**read(MANAGERS), "PATCH": MANAGERS},
    "api-ranking-accuracy": read(MANAGERS),
    "api-training-runs": read(MANAGERS),
    "api-promotions": read(MANAGERS),
    "api-model-version": read(MANAGERS),
    "api-model-version-promote": {"POST": MANAGERS},
    "api-model-version-rollback": {"POST": MANAGERS},
    "api-training-run": read(MANAGERS),
    "api-agreement": {**read(MANAGERS), "POST": MANAGERS},
    "api-rater-exclusion": {"POST": MANAGERS},
    "api-tag-summary": read(MANAGERS),
    "api-metadata-fields": read(MANAGERS),
    "api-metadata-summary": read(MANAGERS),
    "api-leaderboard": read(MANAGERS),
    "api-image-explanation": read(MANAGERS),
    "api-image-explanation-png": read(MANAGERS),
    # The manager's tools: exports, import jobs, judgment import, vocabulary, webhooks, the image browser
    "api-export-comparisons": read(MANAGERS),
    "api-export-image-tags": read(MANAGERS),
    "api-export-raters": read(MANAGERS),
    "api-export-preferences": read(MANAGERS),
    "api-export-model-versions": read(MANAGERS),
    "api-import-jobs": {**read(MANAGERS), "POST": MANAGERS},
    "api-import-job": read(MANAGERS),
    "api-import-job-resume": {"POST": MANAGERS},
    "api-comparisons-import": {"POST": MANAGERS},
    "api-vocabulary-create": {"POST": MANAGERS},
    "api-vocabulary-tag": {"PATCH": MANAGERS, "DELETE": MANAGERS},
    "api-vocabulary-merge": {"POST": MANAGERS},
    "api-webhooks": {**read(MANAGERS), "POST": MANAGERS},
    "api-webhook": {"DELETE": MANAGERS},
    "api-webhook-deliveries": read(MANAGERS),
    "api-image-browse": read(MANAGERS),
    "api-image-comparisons": read(MANAGERS),
    "project-image-browser": read(MANAGERS),
    "project-browser-image": read(MANAGERS),
    "project-imports": {**read(MANAGERS), "POST": MANAGERS},
    "project-import-job": read(MANAGERS),
    "project-import-job-resume": {"POST": MANAGERS},
    "project-vocabulary": {**read(MANAGERS), "POST": MANAGERS},
    "project-tag-rename": {"POST": MANAGERS},
    "project-tag-merge": {"POST": MANAGERS},
    "project-tag-delete": {**read(MANAGERS), "POST": MANAGERS},  # GET: the confirmation page
    "project-webhooks": {**read(MANAGERS), "POST": MANAGERS},
    "project-webhook-delete": {"POST": MANAGERS},
    # Media: one entry per kind of file (see MEDIA_FILES)
    "media": {},
}
# Allowed callers may still get a 404 here: the object asked for does not exist yet (no agreement report,
# no analysed model, no numeric field...), which says nothing about access.
MAY_BE_MISSING = {"api-agreement", "project-dashboard-csv", "api-tag-summary", "api-metadata-summary",
                  "image-heat-map"}
# Routes whose kwargs name no object of a project (nothing to be foreign to).
NOT_PROJECT_SCOPED = {"signup", "media", "crowd-link"}
REFUSALS = {401, 403, 404, 405}


def walk(patterns, prefix="", namespace=None, outer_kwargs=()):
    """(route text, qualified name, kwarg names) of every URL pattern, through includes (whose prefixes may
    hold kwargs, such as a project's slug)."""
    for entry in patterns:
        kwargs = outer_kwargs + tuple(entry.pattern.regex.groupindex)
        if isinstance(entry, URLResolver):
            inner = entry.namespace or namespace
            qualified = f"{namespace}:{inner}" if namespace and entry.namespace else inner
            yield from walk(entry.url_patterns, prefix + str(entry.pattern), qualified, kwargs)
        elif isinstance(entry, URLPattern):
            name = f"{namespace}:{entry.name}" if namespace and entry.name else entry.name
            yield prefix + str(entry.pattern), name, kwargs


def routes():
    return list(walk(get_resolver().url_patterns))


# --- Valid bodies for the write routes -------------------------------------------------------------


@dataclass
class Body:
    """A request body: ``data`` (a dict, or ``data(world, caller)`` run inside the request's transaction, so
    it may first make what the body names: a lease, a judgment, a tag) sent as json, form or multipart;
    ``query`` is added to the URL."""

    data: Any = field(default_factory=dict)
    kind: str = "json"
    query: Any = None

    def resolve(self, world, caller):
        data = self.data(world, caller) if callable(self.data) else self.data
        query = self.query(world, caller) if callable(self.query) else self.query
        return data, query


def user_of(world, caller):
    """The user a caller-dependent body is made for: the caller when they are a member, else the rater (a
    body valid for somebody: a refused caller must be refused before the body is even read)."""
    return world["users"][caller] if caller in MEMBERS else world["users"][RATER]


def lease_for(world, caller):
    from labeling.services.pair_serving import next_pair

    _, lease = next_pair(world["project"], user_of(world, caller))
    return lease


def judgment_body(world, caller):
    return {"lease": str(lease_for(world, caller).token), "winner": "a", "client_key": f"matrix-{caller}"}


def undo_body(world, caller):
    from labeling.services.comparisons import submit_comparison

    lease = lease_for(world, caller)
    submit_comparison(world["project"], user_of(world, caller), lease=lease.token, winner="a",
                      client_key=f"matrix-undo-{caller}")
    return {}


def own_tag_query(world, caller):
    from labeling.services import tags

    tags.add_tag(world["images"][0], "matrixtag", user_of(world, caller), may_extend_vocabulary=True)
    return {"name": "matrixtag"}


def png(name="matrix.png", seed=7):
    return SimpleUploadedFile(name, make_image_bytes(seed=seed), content_type="image/png")


def judgments_csv(world, caller):
    images = world["images"]
    text = f"image_a,image_b,winner,rater,time\n{images[0].external_id},{images[1].external_id},a,rater,2024-03-01T10:00:00Z\n"
    return {"file": SimpleUploadedFile("judgments.csv", text.encode(), content_type="text/csv")}


def filled(form) -> dict:
    """A form's own initial values as POST data: valid by construction, whatever fields it gains later."""
    from django import forms

    data = {}
    for name, bound in form.fields.items():
        value = form.initial.get(name, bound.initial)
        value = value() if callable(value) else value
        if isinstance(bound, forms.BooleanField):
            if value:
                data[name] = "on"
        elif value is not None and not bound.disabled:
            data[name] = value
    return data


def project_form(world, caller, **changes):
    from labeling.forms import ProjectForm

    return {**filled(ProjectForm(instance=world["project"])), **changes}


def campaign_link_form():
    from labeling.crowd_views import CampaignLinkForm

    return CampaignLinkForm()


def training_form(world, caller):
    from modeling.services.promotion import training_settings
    from modeling.views import TrainingSettingsForm

    return filled(TrainingSettingsForm(instance=training_settings(world["project"]), user=user_of(world, caller),
                                       project=world["project"]))
HOOK = "http://127.0.0.1:9/matrix-hook"

# route name -> {method: Body}. Every method some caller may write with needs one; a read that needs a query
# has one too.
BODIES: dict[str, dict[str, Body]] = {
    "login": {"POST": Body({"username": "rater", "password": "pw-for-tests-1"}, "form")},
    "api-token": {"POST": Body({"username": "rater", "password": "pw-for-tests-1"})},
    "api-token-revoke": {"POST": Body({})},
    "api-projects": {"POST": Body({"name": "New one", "slug": "new-one", "question": "Better?"})},
    "project-create": {"POST": Body(lambda world, caller: project_form(world, caller, name="New", slug="new-one"), "form")},
    "api-project": {"PATCH": Body({"name": "Renamed"})},
    "project-edit": {"POST": Body(lambda world, caller: project_form(world, caller, name="Renamed"), "form")},
    "api-comparisons": {"POST": Body(judgment_body)},
    "api-undo": {"POST": Body(undo_body)},
    "api-skip": {"POST": Body(lambda world, caller: {"lease": str(lease_for(world, caller).token)})},
    "api-release": {"POST": Body(lambda world, caller: {"leases": [str(lease_for(world, caller).token)]})},
    "api-images": {"POST": Body(lambda world, caller: {"file": png()}, "multipart")},
    "project-upload": {"POST": Body(lambda world, caller: {"files": png(), "tags": "sky"}, "multipart")},
    "api-gold-pairs": {"POST": Body(lambda world, caller: {
        "image_a": world["images"][0].pk, "image_b": world["images"][1].pk, "expected": "a"})},
    "project-gold": {"POST": Body(lambda world, caller: {
        "image_a": world["images"][0].pk, "image_b": world["images"][1].pk, "expected": "a"}, "form")},
    "api-image-tags": {"POST": Body({"name": "cloudy"}), "DELETE": Body({}, query=own_tag_query)},
    "project-raters": {"POST": Body({"role": "rater", "max_uses": 5, "days": 7, "note": ""}, "form")},
    "membership-toggle": {"POST": Body({}, "form")},
    "rater-reinstate": {"POST": Body({}, "form")},
    "api-rater-reinstate": {"POST": Body({})},
    "project-instructions": {"POST": Body({"instructions": "Pick the sharper one."}, "form")},
    "project-example-delete": {"POST": Body({}, "form")},
    "project-models-new-campaign": {"POST": Body({}, "form")},
    "crowd-link": {"GET": Body(query={"PROLIFIC_PID": "worker-1"})},
    "api-leaderboard": {method: Body(query={"field": "generator"}) for method in ("GET", "HEAD")},
    "project-models-warm-start-into": {"POST": Body(lambda world, caller: {"project": world["project"].slug}, "form")},
    "project-campaign-links": {"POST": Body(lambda world, caller: {**filled(campaign_link_form()), "completion_code": "X"},
                                            "form")},
    "project-campaign-link-close": {"POST": Body({}, "form")},
    "invite-revoke": {"POST": Body({}, "form")},
    "api-retrain": {"POST": Body({})},
    "project-models-retrain": {"POST": Body({}, "form")},
    "api-training-settings": {"PATCH": Body({"ranking_lambda": 0.25})},
    "project-models-settings": {"POST": Body(training_form, "form")},
    "api-model-version-promote": {"POST": Body({"reason": "matrix"})},
    "api-model-version-rollback": {"POST": Body({"reason": "matrix"})},
    "project-models-promote": {"POST": Body({"reason": "matrix"}, "form")},
    "project-models-rollback": {"POST": Body({"reason": "matrix"}, "form")},
    "api-agreement": {"POST": Body({})},
    "project-dashboard-recompute": {"POST": Body({}, "form")},
    "api-rater-exclusion": {"POST": Body({"excluded": True})},
    "project-rater-exclusion": {"POST": Body({"excluded": "1"}, "form")},
    "api-import-jobs": {"POST": Body({"manifest": "https://example.com/a.png\n"})},
    "project-imports": {"POST": Body({"manifest": "https://example.com/a.png\n"}, "form")},
    "api-import-job-resume": {"POST": Body({})},
    "project-import-job-resume": {"POST": Body({}, "form")},
    "api-comparisons-import": {"POST": Body(judgments_csv, "multipart")},
    "api-vocabulary-create": {"POST": Body({"name": "foggy"})},
    "project-vocabulary": {"POST": Body({"name": "foggy"}, "form")},
    "api-vocabulary-tag": {"PATCH": Body({"name": "heaven"}), "DELETE": Body({}, query={"confirm": "spare"})},
    "api-vocabulary-merge": {"POST": Body(lambda world, caller: {"tags": [world["spare_tag"].pk]})},
    "project-tag-rename": {"POST": Body({"name": "heaven"}, "form")},
    "project-tag-merge": {"POST": Body({"into": "spare"}, "form")},
    "project-tag-delete": {"POST": Body({"confirm": "sky"}, "form")},
    "api-webhooks": {"POST": Body({"url": HOOK, "events": ["import.finished"]})},
    "project-webhooks": {"POST": Body({"url": HOOK, "events": ["import.finished"]}, "form")},
    "api-webhook": {"DELETE": Body({})},
    "project-webhook-delete": {"POST": Body({}, "form")},
}
# Public routes that answer what fits the caller (a sign-out, an invitation's sign-up form, a campaign link
# without a worker id: 400): they refuse nobody, so the matrix only checks that they do not refuse.
LENIENT = {"logout", "signup", "login", "crowd-link"}
# Kwargs that name an object of a project: the foreign variant takes them from the other project.
OBJECT_KWARGS = ("image_id", "version_id", "run_id", "membership_id", "invite_id", "user_id", "job_id", "hook_id",
                 "tag_id", "example_id", "link_id")
ROUTE_KWARGS = {  # per route, where one object does not fit every route
    "crowd-link": {"token": "link_token"},
    "api-vocabulary-tag": {"tag_id": "spare_tag_id"},  # its DELETE removes the tag: not the one the body names
    "project-tag-delete": {"tag_id": "tag_id"},
}


def test_every_route_has_an_entry_in_the_matrix_and_every_write_a_body():
    names = set()
    for route, name, _ in routes():
        if route.startswith("admin/"):
            continue  # Django's admin: superusers only, probed in test_admin_is_for_superusers_only
        assert name, f"route {route!r} has no name: name it and give it an entry in MATRIX"
        assert name in MATRIX, f"route {name} ({route}) has no entry in the authorization MATRIX"
        names.add(name)
        for method, allowed in MATRIX[name].items():
            if method in WRITES and allowed and name not in LENIENT:
                assert method in BODIES.get(name, {}), f"{method} {name} ({route}) needs a valid body in BODIES"
    assert set(MATRIX) - names == set(), "MATRIX entries for routes that no longer exist"
    assert set(BODIES) <= names, "BODIES entries for routes that no longer exist"


def test_no_route_takes_an_unbounded_integer():
    """<int:…> takes any number of digits (an overflow in the database driver); <id:…> stops at 18."""
    unbounded = []

    def visit(patterns, prefix=""):
        for entry in patterns:
            if any(isinstance(converter, IntConverter) for converter in entry.pattern.converters.values()):
                unbounded.append(prefix + str(entry.pattern))
            if isinstance(entry, URLResolver):
                visit(entry.url_patterns, prefix + str(entry.pattern))

    visit(get_resolver().url_patterns)
    assert unbounded == [], "use <id:…> (labeling/url_ids.py) instead of <int:…>"


# --- The world the matrix is run in ---------------------------------------------------------------


def _objects(project, owner, image_seed: int):
    """Images, model versions, a run, an invite, an import job, a webhook and tags of one project."""
    from labeling.models import ExamplePair, ImportJob, Tag, Webhook
    from labeling.services.imports import store_image
    from labeling.services.crowd_links import create_link
    from labeling.services.invites import create_invite
    from modeling.models import ModelVersion, TrainingRun

    images = []
    for k in range(2):
        image = store_image(project, f"{image_seed + k}.png", make_image_bytes(seed=image_seed + k), tags=["sky"])[0]
        image.external_id = f"ext-{project.slug}-{k}"
        image.metadata = {"generator": f"gen-{k}"}  # a categorical field: the leaderboard ranks its values
        image.save(update_fields=["external_id", "metadata"])
        images.append(image)
    active = ModelVersion.objects.create(project=project, encoder_id="tiny", status="active", is_active=True,
                                         activated_at=timezone.now(), weights=f"models/{project.pk}/v1-run1.pt")
    earlier = ModelVersion.objects.create(project=project, encoder_id="tiny", status="retired",
                                          activated_at=timezone.now(), weights=f"models/{project.pk}/v0-run0.pt")
    for version in (active, earlier):
        default_storage.save(version.weights.name, ContentFile(b"weights"))
    run = TrainingRun.objects.create(project=project)
    job = ImportJob.objects.create(project=project, source_kind="folder", source="photos", created_by=owner,
                                   status="failed")
    hook = Webhook.objects.create(project=project, url=HOOK, secret="s", events=["import.finished"])
    return {
        "images": images, "version": active, "earlier": earlier, "run": run, "job": job, "hook": hook,
        "invite": create_invite(project, owner, max_uses=100), "tag": Tag.objects.get(project=project, name="sky"),
        "spare_tag": Tag.objects.create(project=project, name="spare"),
        "example": ExamplePair.objects.create(project=project, image_a=images[0], image_b=images[1], expected="a"),
        "link": create_link(project, owner, completion_code="DONE"),
    }


@pytest.fixture
def world(db, settings):
    from labeling.models import Membership, Project

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.TAGRANK_MEDIA_ACCEL_REDIRECT = ""
    settings.TAGRANK_OUTBOUND_ALLOW_PRIVATE = True  # the webhook bodies name 127.0.0.1 (nothing is sent)
    settings.TAGRANK_MAX_LIVE_LEASES = 0
    project = Project.objects.create(name="Matrix", slug="matrix", overlap=1, question="Which is better?")
    other = Project.objects.create(name="Elsewhere", slug="elsewhere", overlap=1)
    User = get_user_model()
    users = {ANON: None}
    for name, where, role, active in (
        (RATER, project, Membership.Role.RATER, True), (MANAGER, project, Membership.Role.MANAGER, True),
        (OTHER_RATER, other, Membership.Role.RATER, True), (OTHER_MANAGER, other, Membership.Role.MANAGER, True),
        (STAFF_MANAGER, other, Membership.Role.MANAGER, True),
        (GONE_RATER, project, Membership.Role.RATER, False), (GONE_MANAGER, project, Membership.Role.MANAGER, False),
        (DISABLED, project, Membership.Role.MANAGER, True),
    ):
        users[name] = User.objects.create_user(name, password="pw-for-tests-1")
        Membership.objects.create(project=where, user=users[name], role=role, is_active=active)
    users[STAFF] = User.objects.create_user(STAFF, password="pw-for-tests-1", is_staff=True)
    users[SUPERUSER] = User.objects.create_superuser(SUPERUSER, password="pw-for-tests-1")
    users[STAFF_MANAGER].is_staff = True
    users[STAFF_MANAGER].save()
    users[STAFF_MANAGER].user_permissions.set(Permission.objects.filter(content_type__app_label__in=("labeling",
                                                                                                       "modeling")))
    mine, theirs = _objects(project, users[MANAGER], 0), _objects(other, users[OTHER_MANAGER], 10)
    tokens = {name: Token.objects.create(user=user).key for name, user in users.items() if user is not None}
    users[DISABLED].is_active = False  # after its token and session exist: both must stop working
    users[DISABLED].save()
    Token.objects.get_or_create(user=users[DISABLED], defaults={"key": tokens[DISABLED]})

    def values(objects, user_id, membership_id, slug):
        return {"slug": slug, "image_id": objects["images"][0].pk, "version_id": objects["earlier"].pk,
                "run_id": objects["run"].pk, "membership_id": membership_id, "invite_id": objects["invite"].pk,
                "user_id": user_id, "job_id": objects["job"].pk, "hook_id": objects["hook"].pk,
                "tag_id": objects["tag"].pk, "spare_tag_id": objects["spare_tag"].pk,
                "example_id": objects["example"].pk, "link_id": objects["link"].pk}

    kwargs = {**values(mine, users[RATER].pk, Membership.objects.get(user=users[RATER]).pk, project.slug),
              "table": "raters", "field": "seed", "token": mine["invite"].token, "link_token": mine["link"].token}
    # My own project's slug with the other project's objects: each must be as missing as a missing one.
    foreign = {**kwargs, **values(theirs, users[OTHER_RATER].pk, Membership.objects.get(user=users[OTHER_RATER]).pk,
                                  project.slug)}
    absent = {**kwargs, **{key: 999999999 for key in (*OBJECT_KWARGS, "spare_tag_id")}}  # in my project: none
    missing = {**absent, "slug": "no-such-project"}
    features = f"features/tiny/images/0/{mine['images'][0].pk}.npy"
    default_storage.save(features, ContentFile(b"features"))
    explanation = f"explanations/v{mine['version'].pk}/{mine['images'][0].pk}.json"
    stored = {"image": mine["images"][0].pk, "model_version": mine["version"].pk, "score": 5.0, "texts": [],
              "regions": {"grid": 1, "deltas": [[0.1]], "method": "occlusion",
                          "crop": {"left": 8, "top": 0, "size": 48}}}
    default_storage.save(explanation, ContentFile(json.dumps(stored).encode()))
    media = {  # path -> callers who may read it
        mine["images"][0].file.name: MEMBERS,
        mine["images"][0].thumbnail.name: MEMBERS,
        explanation: MANAGERS,  # it reveals the score
        mine["version"].weights.name: NOBODY,
        features: NOBODY,
    }
    api_clients, page_clients = {ANON: APIClient()}, {ANON: Client()}
    for name, user in users.items():
        if user is not None:
            api_clients[name] = APIClient()
            api_clients[name].credentials(HTTP_AUTHORIZATION=f"Token {tokens[name]}")
            page_clients[name] = Client()
            page_clients[name].force_login(user) if user.is_active else _session_of_a_disabled(page_clients[name],
                                                                                                  user)
    return {"users": users, "tokens": tokens, "kwargs": kwargs, "foreign": foreign, "absent": absent, "missing": missing,
            "media": media, "project": project, "images": mine["images"], "version": mine["version"],
            "spare_tag": mine["spare_tag"], "api_clients": api_clients, "page_clients": page_clients}


def _session_of_a_disabled(client, user):
    """A session made while the account was active: deactivating it must end the session too."""
    user.is_active = True
    client.force_login(user)
    user.is_active = False


# --- Calling a route --------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    location: str = ""
    detail: str = ""  # why a write was not done: the API's error, or a form's errors

    @property
    def to_sign_in(self) -> bool:
        return self.status == 302 and self.location.startswith(reverse("login"))

    def __str__(self):
        return f"{self.status}{' → ' + self.location if self.location else ''}{' ' + self.detail if self.detail else ''}"


def why(response) -> str:
    """Why a write was not done: the API's error, or the fields a page's form refused."""
    if response.status_code not in (200, 400, 409, 422) or getattr(response, "streaming", False):
        return ""
    text = response.content[:200000].decode(errors="replace")
    if response.status_code == 200:
        fields = re.findall(r'name="([^"]+)"[^>]*aria-invalid="true"', text)
        errors = re.findall(r'class="(?:error|errorlist)[^"]*"[^>]*>(.*?)</', text, flags=re.S)
        return f"form errors: {fields} {[re.sub(r'<[^>]+>', '', e).strip() for e in errors][:5]}" if errors else ""
    return text[:300]


def is_api(url: str) -> bool:
    return url.startswith("/api/") or url.startswith("/media/")


def call(world, caller: str, method: str, url: str, body: Body | None = None, then: Any = None) -> Answer:
    """One request, rolled back afterwards. The API and media with the caller's token, pages with a session.
    ``then(world)`` runs after the body is made, before the request (in the same transaction)."""
    api = is_api(url)
    client = world["api_clients" if api else "page_clients"][caller]
    cache.clear()  # throttle counts
    cookies = copy.deepcopy(client.cookies)  # a logout or a login must not change the caller for the next call
    with transaction.atomic():
        data, query = (body or Body(kind="json" if api else "form")).resolve(world, caller)
        if query:
            url = f"{url}?{urlencode(query, doseq=True)}"
        kind = (body.kind if body else None) or ("json" if api else "form")
        if then is not None:
            then(world)
        if method not in WRITES:
            response = client.generic(method, url)
        elif kind == "multipart":
            response = client.generic(method, url) if method != "POST" else (
                client.post(url, data, format="multipart") if api else client.post(url, data))
        elif kind == "json":
            response = client.generic(method, url, data=json.dumps(data), content_type="application/json")
        else:
            response = client.generic(method, url, data=urlencode(data, doseq=True),
                                      content_type="application/x-www-form-urlencoded")
        transaction.set_rollback(True)
    client.cookies = cookies
    return Answer(response.status_code, response.get("Location", ""), why(response) if method in WRITES else "")


def url_for(name: str, kwarg_names, values: dict) -> str:
    renamed = {**{key: key for key in kwarg_names}, **ROUTE_KWARGS.get(name, {})}
    return reverse(name, kwargs={key: values[renamed[key]] for key in kwarg_names})


def oversized(name: str, kwarg_names, values: dict) -> str | None:
    """The route's URL with every object id 23 digits long (None when it takes no id)."""
    ids = [key for key in kwarg_names if key in OBJECT_KWARGS]
    if not ids:
        return None
    url = url_for(name, kwarg_names, values)
    for key in ids:
        url = url.replace(f"/{values[ROUTE_KWARGS.get(name, {}).get(key, key)]}", "/" + "1" * 23, 1)
    return url


def succeeded(answer: Answer, method: str, api: bool) -> bool:
    if api or method not in WRITES:
        return 200 <= answer.status < 300
    # A page's write redirects once done, or shows what it did (an upload's report, a new invitation link).
    return (answer.status == 302 and not answer.to_sign_in) or (answer.status == 200 and not answer.detail)


def refused(answer: Answer) -> bool:
    return answer.status in REFUSALS or answer.to_sign_in


# --- The check --------------------------------------------------------------------------------------


def matrix_problems(world, only: set[str] | None = None) -> list[str]:
    """Every way the routes (all, or those named in ``only``) answer against MATRIX; empty when all is well."""
    problems = []
    for route, name, kwarg_names in routes():
        if route.startswith("admin/") or name == "media" or (only is not None and name not in only):
            continue
        url = url_for(name, kwarg_names, world["kwargs"])
        api = is_api(url)
        scoped = bool(kwarg_names) and name not in NOT_PROJECT_SCOPED
        missing_url = url_for(name, kwarg_names, world["missing"]) if scoped else None
        has_objects = any(key in OBJECT_KWARGS for key in kwarg_names)
        foreign_url = url_for(name, kwarg_names, world["foreign"]) if has_objects else None
        absent_url = url_for(name, kwarg_names, world["absent"]) if has_objects else None
        for method in METHODS:
            allowed = MATRIX[name].get(method, NOBODY)
            body = BODIES.get(name, {}).get(method)
            as_missing = []

            def missing():  # what a signed-in non-member is told of a missing object (all outsiders must match)
                if not as_missing:
                    as_missing.append(call(world, OTHER_RATER, method, missing_url, body))
                return as_missing[0]

            for caller in CALLERS:
                answer = call(world, caller, method, url, body)
                where = f"{method} {url} as {caller}: {answer}"
                if answer.status >= 500:
                    problems.append(f"server error: {where}")
                elif caller in allowed:
                    ok = answer.status not in REFUSALS if name in LENIENT else succeeded(answer, method, api)
                    if not ok and not (answer.status == 404 and name in MAY_BE_MISSING):
                        problems.append(f"an allowed caller did not succeed: {where}")
                elif 200 <= answer.status < 300 or (300 <= answer.status < 400 and not answer.to_sign_in):
                    problems.append(f"unexpected success: {where}")
                elif not refused(answer):
                    problems.append(f"not a refusal (401/403/404/405) where one is due: {where}")
                if scoped and caller in OUTSIDERS:
                    if answer.status != missing().status or answer.status == 403:
                        problems.append(f"foreign object answers unlike a missing one ({missing()}): {where}")
            # My own project, another project's object: as missing as an absent object, even for a superuser
            # (the project filter), except where the route has no slug and the superuser may see everything.
            for caller in (RATER, MANAGER, SUPERUSER) if foreign_url and method not in ("HEAD", "OPTIONS") else ():
                if caller == SUPERUSER and "slug" not in kwarg_names:
                    continue
                answer, expected = call(world, caller, method, foreign_url, body), call(world, caller, method, absent_url, body)
                if answer.status != expected.status or 200 <= answer.status < 300:
                    problems.append(f"my slug with another project's object answers unlike a missing one "
                                    f"({expected}): {method} {foreign_url} as {caller}: {answer}")
        huge = oversized(name, kwarg_names, world["kwargs"])
        for method in ("GET", "POST") if huge else ():
            answer = call(world, MANAGER, method, huge)
            if answer.status != 404:
                problems.append(f"an oversized id is not a 404: {method} {huge} as manager: {answer}")
    return problems


def test_the_matrix(world):
    problems = matrix_problems(world)
    assert not problems, "\n".join(problems)


def test_the_matrix_catches_a_removed_check(world, monkeypatch):
    """Remove one permission check (managers only on POST gold-pairs/) and one project filter (the image
    looked up by images/<id>/comparisons/): the check reports both."""
    from labeling.api.gold_pairs import GoldPairListView
    from labeling.models import Image
    from modeling.api import image_browser

    routes_touched = {"api-gold-pairs", "api-image-comparisons"}
    assert matrix_problems(world, only=routes_touched) == []

    monkeypatch.setattr(GoldPairListView, "require_manager", lambda self, action="": None)

    class UnfilteredImages:  # Image.objects.filter without its project=...
        class objects:
            @staticmethod
            def filter(project=None, **lookups):
                return Image.objects.filter(**lookups)

    monkeypatch.setattr(image_browser, "Image", UnfilteredImages)
    problems = matrix_problems(world, only=routes_touched)
    gold = [p for p in problems if "gold-pairs/" in p and p.startswith("unexpected success: POST") and "as rater" in p]
    comparisons = [p for p in problems if "/comparisons/" in p and "another project's object" in p
                   and f"/images/{world['foreign']['image_id']}/" in p]
    assert gold, "\n".join(problems)
    assert comparisons, "\n".join(problems)


def test_the_matrix_reports_a_400_where_a_refusal_is_due(world, monkeypatch):
    """A manager check that answers 400 instead of 403 (a refusal dressed as bad input) is reported too."""
    from rest_framework.exceptions import ValidationError

    from labeling.api.gold_pairs import GoldPairListView

    def bad_input_instead_of_403(self, action=""):
        if not self.role.is_manager:
            raise ValidationError({"detail": ["Bad input."]})

    monkeypatch.setattr(GoldPairListView, "require_manager", bad_input_instead_of_403)
    problems = matrix_problems(world, only={"api-gold-pairs"})
    assert any(p.startswith("not a refusal (401/403/404/405) where one is due: POST") and "as rater: 400" in p
               for p in problems), "\n".join(problems)


def test_media_files_map_to_their_owner(world):
    problems = []
    for path, allowed in world["media"].items():
        url = reverse("media", kwargs={"path": path})
        for method in METHODS:
            for caller in CALLERS:
                answer = call(world, caller, method, url)
                ok = method in ("GET", "HEAD") and caller in allowed
                if ok and answer.status != 200:
                    problems.append(f"refused: {method} {path} as {caller}: {answer}")
                if not ok and 200 <= answer.status < 300:
                    problems.append(f"unexpected 2xx: {method} {path} as {caller}: {answer}")
                if not ok and caller in OUTSIDERS and method == "GET" and answer.status != 404:
                    problems.append(f"not a 404: {method} {path} as {caller}: {answer}")
    assert not problems, "\n".join(problems)


def test_admin_is_for_superusers_only(world):
    """Django's admin edits rows of every project at once, so it is for superusers alone: staff, and a manager
    of another project who is staff with every model permission, get nothing from any admin page."""
    values = {"app_label": "labeling", "object_id": str(world["images"][0].pk), "content_type_id": "1", "url": "x"}
    problems, seen = [], 0
    for route, name, kwarg_names in routes():
        if not route.startswith("admin/") or not name or name in ("admin:login", "admin:logout"):
            continue  # (its sign-in and sign-out pages are for everyone)
        try:
            url = url_for(name, kwarg_names, values)
        except Exception:  # a route whose kwargs these values do not fit (e.g. an app label regex)
            continue
        seen += 1
        for method in ("GET", "POST"):
            for caller in PUBLIC - {SUPERUSER}:
                answer = call(world, caller, method, url)
                if 200 <= answer.status < 300:
                    problems.append(f"unexpected 2xx: {method} {url} as {caller}: {answer}")
    for page in ("/admin/", "/admin/labeling/comparison/", "/admin/labeling/project/"):
        if call(world, SUPERUSER, "GET", page).status != 200:
            problems.append(f"the superuser is refused {page}")
    assert seen > 10 and not problems, "\n".join(problems)


def test_an_archived_project_takes_no_writes(world):
    """Archived: every write that succeeds on an open project (the same valid body, the same callers) is
    refused with 403, raters' and managers' alike, the superuser's too; the reads still answer, exports
    included. Starting a new campaign from its model writes nothing to it and stays open."""
    from labeling.models import Project
    from labeling.services import archive

    def archived(world):  # after the body is made (a lease, a judgment), as if the project were archived then
        archive.archive_project(Project.objects.get(pk=world["project"].pk))  # (a copy: the world's stays open)

    problems, writes = [], 0
    for route, name, kwarg_names in routes():
        if route.startswith("admin/") or not kwarg_names or name in NOT_PROJECT_SCOPED:
            continue
        url = url_for(name, kwarg_names, world["kwargs"])
        for method, allowed in MATRIX[name].items():
            for caller in sorted(allowed & MEMBERS):
                answer = call(world, caller, method, url, BODIES.get(name, {}).get(method), then=archived)
                where = f"{method} {url} as {caller}: {answer}"
                if method in WRITES and name != "project-models-new-campaign":  # (warm-start-into: its target is)
                    writes += 1
                    if answer.status != 403:
                        problems.append(f"not refused (403) on an archived project: {where}")
                elif not succeeded(answer, method, is_api(url)) and not (
                        answer.status == 404 and name in MAY_BE_MISSING):
                    problems.append(f"refused on an archived project: {where}")
    assert writes > 50 and not problems, "\n".join(problems)
