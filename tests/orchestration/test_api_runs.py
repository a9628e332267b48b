"""REST API: runs (list with filters, detail, cancel, retry and skip a step)."""
import pytest

from orchestration import engine
from orchestration.models import OrchestrationRun, StepRun
from tests.api_support import *  # noqa: F401,F403
from tests.api_support import as_user, launch_approval, token_client
from tests.engine_builders import bg, noop_flow, orchestration
from workguide.models import WorkItem

pytestmark = pytest.mark.django_db


@pytest.fixture
def failing(users):
    """An orchestration with one background step, left in error."""
    noop_flow("api_calc", outputs={"total": ("number", "1")})
    orchestration([{"name": "compute", "steps": [bg("calc", "api_calc")]},
                   {"name": "after", "steps": [bg("calc2", "api_calc")]}], api_name="calc")
    run = engine.start_run(OrchestrationRun._meta.get_field("orchestration").related_model.objects.get(
        api_name="calc"))
    step = StepRun.objects.get(run=run, step_name="calc")
    assert step.status == "queued"
    engine.fail_step(step.pk, "the service said no")
    run.refresh_from_db()
    assert run.status == "error"
    return run


# -- list -----------------------------------------------------------------------------

def test_list_for_viewers_with_filters(approval, failing, users):
    running = launch_approval(users.alice)
    client = token_client(users.viewer)
    body = client.get("/api/runs/").json()
    assert body["count"] == 2 and set(body) == {"count", "next", "previous", "results"}
    assert [r["id"] for r in body["results"]] == [running.pk, failing.pk]  # newest first
    assert [r["id"] for r in client.get("/api/runs/", {"status": "error"}).json()["results"]] == [failing.pk]
    assert [r["id"] for r in client.get("/api/runs/", {"orchestration": "approval"}).json()["results"]] == [running.pk]
    assert client.get("/api/runs/", {"orchestration": "x" * 10_000}).json()["count"] == 0
    first = body["results"][0]
    assert first["status"] == "running" and first["orchestration"] == "approval" and first["record"] is None


def test_staff_and_operators_see_runs_others_do_not(approval, users):
    launch_approval()
    for user in (users.staff, users.admin, users.operator):
        assert token_client(user).get("/api/runs/").status_code == 200
    for user in (users.bob, users.alice, users.launcher, users.manager):
        response = token_client(user).get("/api/runs/")
        assert response.status_code == 403 and response.json()["code"] == "permission_denied"


def test_list_rejects_an_unknown_status(users):
    response = token_client(users.viewer).get("/api/runs/", {"status": "sleeping"})
    assert response.status_code == 400 and "status" in response.json()["errors"]


def test_list_pages_beyond_the_end_are_404(users):
    response = token_client(users.viewer).get("/api/runs/", {"page": 99})
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_list_query_count_is_bounded(approval, users, django_assert_max_num_queries):
    for _ in range(40):
        launch_approval(users.alice)
    client = token_client(users.viewer)
    with django_assert_max_num_queries(8):
        response = client.get("/api/runs/", {"page_size": 100})
    assert response.json()["count"] == 40


def test_detail_query_count_does_not_grow_with_the_run(approval, users, django_assert_max_num_queries):
    run = launch_approval(users.alice)
    client = token_client(users.viewer)
    with django_assert_max_num_queries(12):
        assert client.get(f"/api/runs/{run.pk}/").status_code == 200


# -- detail ---------------------------------------------------------------------------

def test_detail_has_stages_steps_and_events(failing, users):
    body = token_client(users.viewer).get(f"/api/runs/{failing.pk}/").json()
    assert body["id"] == failing.pk and body["status"] == "error"
    assert "the service said no" in body["error"]
    stage = body["stages"][0]
    assert stage["name"] == "compute" and stage["status"] == "error" and stage["visit"] == 1
    step = stage["steps"][0]
    assert step["name"] == "calc" and step["type"] == "background" and step["status"] == "error"
    assert step["error"] == "the service said no"
    assert step["flow"] == {"api_name": "api_calc", "version": 1}
    assert {"run_started", "step_queued", "step_error", "run_error"} <= {e["kind"] for e in body["events"]}


def test_detail_not_found_and_forbidden(failing, users):
    assert token_client(users.viewer).get("/api/runs/999999/").status_code == 404
    assert token_client(users.viewer).get("/api/runs/99999999999999999999999999/").status_code == 404
    assert token_client(users.viewer).get("/api/runs/abc/").status_code == 404
    assert token_client(users.bob).get(f"/api/runs/{failing.pk}/").status_code == 403


# -- cancel ---------------------------------------------------------------------------

def test_cancel_discontinues_everything_open(approval, users):
    run = launch_approval(users.alice)
    response = token_client(users.operator).post(f"/api/runs/{run.pk}/cancel/", {"reason": "duplicate"},
                                                 format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "canceled"
    assert body["stages"][0]["status"] == "discontinued"
    assert WorkItem.objects.get(run=run).status == "canceled"
    cancel_event = [e for e in body["events"] if e["kind"] == "run_canceled"][0]
    assert cancel_event["actor"] == "operator" and cancel_event["data"] == {"reason": "duplicate"}
    again = token_client(users.operator).post(f"/api/runs/{run.pk}/cancel/", {}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "conflict"
    assert "canceled" in again.json()["detail"]


def test_cancel_needs_the_operate_permission(approval, users):
    run = launch_approval(users.alice)
    for user in (users.viewer, users.staff, users.bob):
        response = token_client(user).post(f"/api/runs/{run.pk}/cancel/", {}, format="json")
        assert response.status_code == 403, user
    assert token_client(users.admin).post(f"/api/runs/{run.pk}/cancel/", {}, format="json").status_code == 200


def test_cancel_validation_and_not_found(approval, users):
    run = launch_approval(users.alice)
    client = token_client(users.operator)
    bad = client.post(f"/api/runs/{run.pk}/cancel/", {"reason": ["a", "list"]}, format="json")
    assert bad.status_code == 400 and "reason" in bad.json()["errors"]
    assert client.post("/api/runs/424242/cancel/", {}, format="json").status_code == 404
    run.refresh_from_db()
    assert run.status == "running"


def test_cancel_with_session_needs_csrf(approval, users):
    run = launch_approval(users.alice)
    response = as_user(users.operator, csrf=True).post(f"/api/runs/{run.pk}/cancel/", {}, format="json")
    assert response.status_code == 403
    run.refresh_from_db()
    assert run.status == "running"
    assert as_user(users.operator).post(f"/api/runs/{run.pk}/cancel/", {}, format="json").status_code == 200


# -- retry and skip ------------------------------------------------------------------

def test_retry_puts_the_step_back_to_work(failing, users):
    response = token_client(users.operator).post(f"/api/runs/{failing.pk}/steps/calc/retry/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "running" and body["error"] == ""
    assert body["stages"][0]["steps"][0]["status"] == "queued"
    again = token_client(users.operator).post(f"/api/runs/{failing.pk}/steps/calc/retry/")
    assert again.status_code == 409 and "in error" in again.json()["detail"]


def test_retry_errors(failing, users):
    client = token_client(users.operator)
    assert client.post(f"/api/runs/{failing.pk}/steps/nope/retry/").status_code == 404
    assert client.post("/api/runs/777777/steps/calc/retry/").status_code == 404
    assert token_client(users.viewer).post(f"/api/runs/{failing.pk}/steps/calc/retry/").status_code == 403
    failing.refresh_from_db()
    assert failing.status == "error"


def test_skip_completes_the_step_with_outputs_and_the_run_goes_on(failing, users):
    response = token_client(users.operator).post(
        f"/api/runs/{failing.pk}/steps/calc/skip/", {"outputs": {"total": "5"}}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "running"
    step = body["stages"][0]["steps"][0]
    assert step["status"] == "completed" and step["outputs"] == {"total": 5.0}
    assert body["stages"][1]["name"] == "after"


def test_skip_validates_outputs(failing, users):
    client = token_client(users.operator)
    wrong_type = client.post(f"/api/runs/{failing.pk}/steps/calc/skip/", {"outputs": {"total": "many"}}, format="json")
    assert wrong_type.status_code == 400 and "outputs.total" in wrong_type.json()["errors"]
    not_a_map = client.post(f"/api/runs/{failing.pk}/steps/calc/skip/", {"outputs": [1]}, format="json")
    assert not_a_map.status_code == 400 and "outputs" in not_a_map.json()["errors"]
    failing.refresh_from_db()
    assert failing.status == "error"
    assert client.post(f"/api/runs/{failing.pk}/steps/ghost/skip/", {}, format="json").status_code == 404
    assert token_client(users.viewer).post(f"/api/runs/{failing.pk}/steps/calc/skip/", {},
                                           format="json").status_code == 403


def test_skip_an_open_interactive_step_cancels_its_work_item(approval, users):
    run = launch_approval(users.alice)
    response = token_client(users.operator).post(f"/api/runs/{run.pk}/steps/review/skip/",
                                                 {"outputs": {"decision": "approve"}}, format="json")
    assert response.status_code == 200, response.content
    assert WorkItem.objects.get(step_run__step_name="review").status == "canceled"
    assert response.json()["current_stage"] == "confirm"
    done = token_client(users.operator).post(f"/api/runs/{run.pk}/steps/review/skip/", {}, format="json")
    assert done.status_code == 409


def test_skip_refuses_an_output_the_flow_does_not_declare_as_the_monitor_does(failing, users):
    """One rule for skip outputs (starts.clean_skip_outputs): the API refused no unknown name before, the monitor did."""
    client = token_client(users.operator)
    response = client.post(f"/api/runs/{failing.pk}/steps/calc/skip/", {"outputs": {"nope": 1}}, format="json")
    assert response.status_code == 400 and "outputs.nope" in response.json()["errors"]
    failing.refresh_from_db()
    assert failing.status == "error"
