"""Schemathesis against the project's own OpenAPI schema, in-process through the WSGI app.

For every operation, a bounded, derandomized number of generated requests is
sent twice over: once with whatever the schema allows for the path
parameters (mostly objects that do not exist) and once pinned to real
objects (a run, a work item, an orchestration, a step), so the success paths
are exercised too. It runs as a normal user (the work item's assignee) and as
staff (a superuser). Every response must be no 5xx and must conform to the
schema: documented status code, content type and body.
"""
import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import (
    content_type_conformance, not_a_server_error, response_schema_conformance, status_code_conformance,
)

from orchestration import engine
from orchestration.models import Orchestration, StepRun
from tests.api_support import *  # noqa: F401,F403
from tests.api_support import launch_approval
from tests.engine_builders import bg, noop_flow, orchestration
from workguide.models import WorkItem

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

RANDOM_EXAMPLES = 25
PINNED_EXAMPLES = 12
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(autouse=True)
def keep_the_test_connection():
    """Requests go through the WSGI handler, whose request signals close "old" connections.

    Inside the test's transaction PostgreSQL's connection has autocommit off,
    which reads as unusable, so the first request would close it under the
    test (SQLite's in-memory database ignores the close). Django's own test
    client disconnects the same handler for the same reason.
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def world(approval, users):
    """Real objects for pinned path parameters: an open work item of alice's and a run in error."""
    launch_approval(users.launcher)
    noop_flow("st_calc", outputs={"total": ("number", "1")})
    orchestration([{"name": "compute", "steps": [bg("calc", "st_calc")]}], api_name="st_calc_orch")
    failing = engine.start_run(Orchestration.objects.get(api_name="st_calc_orch"))
    engine.fail_step(StepRun.objects.get(run=failing, step_name="calc").pk, "boom")
    item = WorkItem.objects.get(step_run__step_name="review")
    return {"item": item, "run": item.run, "failing": failing}


def pinned(operation, world):
    """Path parameters naming real objects, for operations that take any."""
    path = operation.path
    params = {}
    if "{api_name}" in path:
        params["api_name"] = "approval"
    if path.startswith("/api/runs/{id}"):
        params["id"] = world["failing"].pk if "{step_name}" in path else world["run"].pk
    if path.startswith("/api/work-items/{id}"):
        params["id"] = world["item"].pk
    if "{step_name}" in path:
        params["step_name"] = "calc"
    return params


def exercise(operation, headers, path_parameters, max_examples, failures, seen):
    strategy = operation.as_strategy(path_parameters=path_parameters or None)

    @given(case=strategy)
    @hypothesis_settings(
        max_examples=max_examples, derandomize=True, deadline=None, database=None,
        phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
    )
    def run(case):
        response = case.call(headers=headers)
        seen.setdefault(operation.label, set()).add(response.status_code)
        case.validate_response(response, checks=CHECKS)

    try:
        run()
    except Exception as exc:  # collect every operation's failure, then report them all
        failures.append(f"{operation.label} {path_parameters or ''}:\n{exc}")


@pytest.mark.parametrize("role", ["user", "staff"])
def test_every_operation_conforms_and_never_fails(world, users, role):
    from rest_framework.authtoken.models import Token

    from config.wsgi import application

    user = users.alice if role == "user" else users.admin
    if role == "staff":
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    token, _ = Token.objects.get_or_create(user=user)
    headers = {"Authorization": f"Token {token.key}"}
    schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 16
    failures, seen = [], {}
    for operation in operations:
        exercise(operation, headers, None, RANDOM_EXAMPLES, failures, seen)
        params = pinned(operation, world)
        if params:
            exercise(operation, headers, params, PINNED_EXAMPLES, failures, seen)
    assert not failures, "\n\n".join(failures)
    # The generated requests reached the success paths, not only the error ones.
    succeeded = sorted(label for label, codes in seen.items() if any(200 <= c < 300 for c in codes))
    expected = 12 if role == "staff" else 6
    assert len(succeeded) >= expected, seen
