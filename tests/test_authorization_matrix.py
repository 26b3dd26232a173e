"""The authorization matrix, generated from the URL conf.

Every route (API, pages, media, admin) is walked with the django.urls resolver and called with every
method by every kind of caller: anonymous, a rater and a manager of the project, a rater and a manager
of another project, a deactivated rater and manager of the project, a plain staff user and a superuser.

- ``MATRIX`` says, per route name and method, which callers may succeed; any other 2xx fails.
- A route that is not in ``MATRIX`` (a new one) fails, and so does an entry for a route that is gone.
- Callers allowed a method are not refused (401/403/404/405), so the matrix cannot drift into "nobody".
- For objects outside the caller's projects the answer is exactly the one for a missing object (404,
  or 405 for a method the route never takes): a foreign project and a missing one look the same.

Each request runs in a transaction that is rolled back, so that one call's writes never change the next.
"""
from __future__ import annotations

import copy
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

ANON = "anonymous"
RATER, MANAGER = "rater", "manager"
OTHER_RATER, OTHER_MANAGER = "other_rater", "other_manager"
GONE_RATER, GONE_MANAGER = "deactivated_rater", "deactivated_manager"
STAFF, SUPERUSER = "staff", "superuser"
CALLERS = (ANON, RATER, MANAGER, OTHER_RATER, OTHER_MANAGER, GONE_RATER, GONE_MANAGER, STAFF, SUPERUSER)
OUTSIDERS = (OTHER_RATER, OTHER_MANAGER, GONE_RATER, GONE_MANAGER, STAFF)  # signed in, not active members

NOBODY: frozenset = frozenset()
PUBLIC = frozenset(CALLERS)
SIGNED_IN = PUBLIC - {ANON}
MEMBERS = frozenset({RATER, MANAGER, SUPERUSER})
MANAGERS = frozenset({MANAGER, SUPERUSER})
CREATORS = frozenset({STAFF, SUPERUSER})


def read(group):
    return {"GET": group, "HEAD": group}


# route name -> {method: callers who may get a 2xx}. Methods not listed: nobody.
MATRIX: dict[str, dict[str, frozenset]] = {
    # Accounts and the site
    "login": {**read(PUBLIC), "POST": PUBLIC, "PUT": PUBLIC, "OPTIONS": PUBLIC},
    "logout": {"POST": PUBLIC, "OPTIONS": PUBLIC},
    "healthz": read(PUBLIC),
    "signup": {**read(PUBLIC), "POST": PUBLIC},  # whoever holds a valid invitation link
    "crowd-link": read(NOBODY),  # a campaign link: only with a worker id (the matrix calls it without: 400)
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
# no analysed model, no numeric field, no judgment to undo...), which says nothing about access.
MAY_BE_MISSING = {"api-undo", "api-agreement", "project-dashboard-csv", "api-tag-summary", "api-metadata-summary",
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


def test_every_route_has_an_entry_in_the_matrix_and_every_entry_a_route():
    names = set()
    for route, name, _ in routes():
        if route.startswith("admin/"):
            continue  # Django's admin: its own staff check, probed in test_admin_is_for_staff_only
        assert name, f"route {route!r} has no name: name it and give it an entry in MATRIX"
        assert name in MATRIX, f"route {name} ({route}) has no entry in the authorization MATRIX"
        names.add(name)
    assert set(MATRIX) - names == set(), "MATRIX entries for routes that no longer exist"


# --- The world the matrix is run in ---------------------------------------------------------------


@pytest.fixture
def world(db, settings, image_bytes):
    from labeling.models import Membership, Project
    from labeling.services.imports import store_image
    from labeling.services.invites import create_invite
    from modeling.models import ModelVersion, TrainingRun

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.TAGRANK_MEDIA_ACCEL_REDIRECT = ""
    project = Project.objects.create(name="Matrix", slug="matrix", overlap=1, question="Which is better?")
    other = Project.objects.create(name="Elsewhere", slug="elsewhere", overlap=1)
    User = get_user_model()
    users = {ANON: None}
    for name, where, role, active in (
        (RATER, project, Membership.Role.RATER, True), (MANAGER, project, Membership.Role.MANAGER, True),
        (OTHER_RATER, other, Membership.Role.RATER, True), (OTHER_MANAGER, other, Membership.Role.MANAGER, True),
        (GONE_RATER, project, Membership.Role.RATER, False), (GONE_MANAGER, project, Membership.Role.MANAGER, False),
    ):
        users[name] = User.objects.create_user(name, password="pw-for-tests-1")
        Membership.objects.create(project=where, user=users[name], role=role, is_active=active)
    users[STAFF] = User.objects.create_user(STAFF, password="pw-for-tests-1", is_staff=True)
    users[SUPERUSER] = User.objects.create_superuser(SUPERUSER, password="pw-for-tests-1")

    images = [store_image(project, f"{k}.png", image_bytes(seed=k), tags=["sky"])[0] for k in range(2)]
    version = ModelVersion.objects.create(project=project, encoder_id="tiny", status="active", is_active=True,
                                          weights=f"models/{project.pk}/v1-run1.pt")
    default_storage.save(version.weights.name, ContentFile(b"weights"))
    features = f"features/tiny/images/0/{images[0].pk}.npy"
    default_storage.save(features, ContentFile(b"features"))
    explanation = f"explanations/v{version.pk}/{images[0].pk}.json"
    stored = {"image": images[0].pk, "model_version": version.pk, "score": 5.0, "texts": [],
              "regions": {"grid": 1, "deltas": [[0.1]], "method": "occlusion",
                          "crop": {"left": 8, "top": 0, "size": 48}}}
    default_storage.save(explanation, ContentFile(json.dumps(stored).encode()))
    run = TrainingRun.objects.create(project=project)
    invite = create_invite(project, users[MANAGER], max_uses=100)
    from labeling.models import ExamplePair, ImportJob, Tag, Webhook

    job = ImportJob.objects.create(project=project, source_kind="folder", source="photos", created_by=users[MANAGER])
    hook = Webhook.objects.create(project=project, url="http://127.0.0.1:9/hook", secret="s", events=["import.finished"])
    tag = Tag.objects.get(project=project, name="sky")
    example = ExamplePair.objects.create(project=project, image_a=images[0], image_b=images[1], expected="a")
    from labeling.services.crowd_links import create_link

    campaign_link = create_link(project, users[MANAGER], completion_code="DONE")
    tokens = {name: Token.objects.create(user=user).key for name, user in users.items() if user is not None}
    kwargs = {
        "slug": project.slug, "image_id": images[0].pk, "version_id": version.pk, "run_id": run.pk,
        "membership_id": Membership.objects.get(user=users[RATER]).pk, "invite_id": invite.pk,
        "user_id": users[RATER].pk, "table": "raters", "field": "seed", "token": invite.token,
        "job_id": job.pk, "hook_id": hook.pk, "tag_id": tag.pk, "example_id": example.pk,
        "link_id": campaign_link.pk,
    }
    missing = {**kwargs, "slug": "no-such-project", "image_id": 999999999, "version_id": 999999999,
               "run_id": 999999999, "membership_id": 999999999, "invite_id": 999999999, "user_id": 999999999,
               "job_id": 999999999, "hook_id": 999999999, "tag_id": 999999999, "example_id": 999999999,
               "link_id": 999999999}
    media = {  # path -> callers who may read it
        images[0].file.name: MEMBERS,
        images[0].thumbnail.name: MEMBERS,
        explanation: MANAGERS,  # it reveals the score
        version.weights.name: NOBODY,
        features: NOBODY,
    }
    api_clients, page_clients = {ANON: APIClient()}, {ANON: Client()}
    for name, user in users.items():
        if user is not None:
            api_clients[name] = APIClient()
            api_clients[name].credentials(HTTP_AUTHORIZATION=f"Token {tokens[name]}")
            page_clients[name] = Client()
            page_clients[name].force_login(user)
    return {"users": users, "tokens": tokens, "kwargs": kwargs, "missing": missing, "media": media,
            "images": images, "version": version, "api_clients": api_clients, "page_clients": page_clients}


def call(world, caller: str, method: str, url: str):
    """One request, rolled back afterwards. The API and media with the caller's token, pages with a session."""
    if url.startswith("/api/v1/") or url.startswith("/media/"):
        client = world["api_clients"][caller]
        body = {"data": "{}", "content_type": "application/json"}
    else:
        client = world["page_clients"][caller]
        body = {"data": "", "content_type": "application/x-www-form-urlencoded"}
    cache.clear()  # throttle counts
    cookies = copy.deepcopy(client.cookies)  # a logout or a login must not change the caller for the next call
    with transaction.atomic():
        response = client.generic(method, url, **(body if method in ("POST", "PUT", "PATCH", "DELETE") else {}))
        transaction.set_rollback(True)
    client.cookies = cookies
    return response.status_code


def url_for(name: str, kwarg_names, values: dict) -> str:
    return reverse(name, kwargs={key: values[key] for key in kwarg_names})


def test_the_matrix(world):
    problems = []
    for route, name, kwarg_names in routes():
        if route.startswith("admin/") or name == "media":
            continue
        url = url_for(name, kwarg_names, world["kwargs"])
        scoped = bool(kwarg_names) and name not in NOT_PROJECT_SCOPED
        missing_url = url_for(name, kwarg_names, world["missing"]) if scoped else None
        for method in METHODS:
            allowed = MATRIX[name].get(method, NOBODY)
            missing_status = {}
            for caller in CALLERS:
                status = call(world, caller, method, url)
                where = f"{method} {url} as {caller}: {status}"
                if 200 <= status < 300 and caller not in allowed:
                    problems.append(f"unexpected 2xx: {where}")
                if caller in allowed and status in REFUSALS and not (status == 404 and name in MAY_BE_MISSING):
                    problems.append(f"refused an allowed caller: {where}")
                if scoped and caller in OUTSIDERS:
                    if caller not in missing_status:
                        missing_status[caller] = call(world, caller, method, missing_url)
                    if status != missing_status[caller] or status == 403:
                        problems.append(f"foreign object answers unlike a missing one ({missing_status[caller]}): {where}")
    assert not problems, "\n".join(problems)


def test_media_files_map_to_their_owner(world):
    problems = []
    for path, allowed in world["media"].items():
        url = reverse("media", kwargs={"path": path})
        for method in METHODS:
            for caller in CALLERS:
                status = call(world, caller, method, url)
                ok = method in ("GET", "HEAD") and caller in allowed
                if ok and status != 200:
                    problems.append(f"refused: {method} {path} as {caller}: {status}")
                if not ok and 200 <= status < 300:
                    problems.append(f"unexpected 2xx: {method} {path} as {caller}: {status}")
                if not ok and caller in OUTSIDERS and method == "GET" and status != 404:
                    problems.append(f"not a 404: {method} {path} as {caller}: {status}")
    assert not problems, "\n".join(problems)


def test_admin_is_for_staff_only(world):
    """Django's admin routes: nobody but staff gets a 2xx (its own permission checks do the rest)."""
    values = {"app_label": "labeling", "object_id": str(world["images"][0].pk), "content_type_id": "1",
              "url": "x"}
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
            for caller in PUBLIC - CREATORS:
                status = call(world, caller, method, url)
                if 200 <= status < 300:
                    problems.append(f"unexpected 2xx: {method} {url} as {caller}: {status}")
    assert seen > 10 and not problems, "\n".join(problems)
