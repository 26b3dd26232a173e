"""Schemathesis fuzzes every operation of /api/schema/ through the WSGI app: no request may cause a 5xx.

The project slug and image id in paths are pointed at a real project and image, so that the generated
bodies and query strings reach the views instead of stopping at a 404. The run is bounded
(examples per operation below) to about a minute on two cores. Every operation in the schema is fuzzed,
the other apps' too: a 5xx anywhere is a bug, and the test id names the operation.
"""
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error

from config.wsgi import application



def served_schema():
    """The schema /api/schema/ serves, built in-process: serving it needs a signed-in caller, and no
    database (hence no user) exists while tests are collected."""
    import json

    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    raw = json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))
    loaded = schemathesis.openapi.from_dict(raw)
    loaded.app, loaded.location = application, "/api/schema/"
    return loaded


schema = served_schema()

EXAMPLES_PER_OPERATION = 10


@pytest.fixture
def wsgi_keeps_the_test_connection():
    """The WSGI handler closes database connections after each request, which would close the test's own
    transaction; Django's test client disconnects the same receivers for the same reason."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def fuzz_target(project, manager, rater, image_bytes, wsgi_keeps_the_test_connection):
    """A project with three images, a manager's token, and a pair leased so that lease-taking endpoints have one.
    (Built once per operation, so it is kept small: the run's time is mostly this setup.)"""
    from labeling.services.imports import store_image
    from labeling.services.pair_serving import next_pair

    images = [store_image(project, f"{k}.png", image_bytes(seed=k, size=(16, 16)), tags=["t"])[0] for k in range(3)]
    next_pair(project, manager)
    token, _ = Token.objects.get_or_create(user=manager)
    return {"headers": {"Authorization": f"Token {token.key}"}, "slug": project.slug, "image_id": images[0].pk}


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_operation_answers_with_a_server_error(case, fuzz_target):
    path_parameters = case.path_parameters or {}
    if "slug" in path_parameters:
        case.path_parameters["slug"] = fuzz_target["slug"]
    if "image_id" in path_parameters:
        case.path_parameters["image_id"] = fuzz_target["image_id"]
    case.call_and_validate(headers=fuzz_target["headers"], checks=[not_a_server_error])
