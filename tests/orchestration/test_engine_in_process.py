"""``BATON_STEP_EXECUTION=in_process``: background flows run inside the transition that starts them."""
import pytest
from django.contrib.auth.models import User

from demo.models import Employee, EquipmentRequest
from orchestration import engine
from orchestration.models import RunEvent, StageRun, StepRun
from tests.engine_builders import bg, noop_flow, orchestration, screen_flow, ui
from workguide.models import WorkItem

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def in_process(settings):
    settings.BATON_STEP_EXECUTION = "in_process"


@pytest.fixture
def nothing_sent():
    """Fails the test if anything is published: in-process mode has no worker to receive it."""
    from unittest import mock

    with mock.patch("orchestration.worker.send_step_message") as send:
        yield send
    assert send.call_count == 0


def kinds(run):
    return list(RunEvent.objects.filter(run=run).order_by("id").values_list("kind", "step_name"))


def test_a_run_of_background_stages_completes_in_its_start_with_outputs_mapped(nothing_sent, django_capture_on_commit_callbacks):
    noop_flow("double", inputs=[{"name": "n", "type": "number", "required": True}],
              outputs={"twice": ("number", "n * 2.0")})
    orch = orchestration([
        {"name": "one", "steps": [bg("a", "double", inputs={"n": "inputs.start"}),
                                  bg("b", "double", inputs={"n": "10.0"})]},
        {"name": "two", "steps": [bg("c", "double", inputs={"n": "steps.a.outputs.twice + steps.b.outputs.twice"})]},
    ], inputs=[{"name": "start", "type": "number", "required": True}])
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        run = engine.start_run(orch, inputs={"start": 3})
    assert callbacks == []  # nothing left for after commit: no message
    run.refresh_from_db()
    assert run.status == "completed"
    steps = {s.step_name: s for s in StepRun.objects.filter(run=run)}
    assert {n: s.status for n, s in steps.items()} == {"a": "completed", "b": "completed", "c": "completed"}
    assert steps["c"].inputs == {"n": 26} and steps["c"].outputs == {"twice": 52}
    assert all(s.attempts == 1 and s.started_at and s.ended_at and s.flow_id for s in steps.values())
    assert [s.status for s in StageRun.objects.filter(run=run).order_by("id")] == ["completed", "completed"]
    events = kinds(run)
    assert events[:4] == [("run_started", ""), ("stage_started", ""), ("step_running", "a"), ("step_completed", "a")]
    assert events[-1] == ("run_completed", "")
    running = RunEvent.objects.filter(run=run, kind="step_running").first()
    assert running.data == {"attempt": 1, "in_process": True}


def test_twelve_steps_cost_a_handful_of_queries(nothing_sent, django_assert_max_num_queries):
    noop_flow("nothing")
    orch = orchestration([{"name": f"s{i}", "steps": [bg(f"s{i}x{j}", "nothing") for j in range(4)]} for i in range(3)])
    engine.start_run(orch)  # warm the plan and flow caches
    # run, 3 × (stage insert, steps insert, stage close), active flows, the steps' one
    # UPDATE, the events, the run's last write: about one statement per step.
    with django_assert_max_num_queries(14):
        run = engine.start_run(orch)
    assert StepRun.objects.filter(run=run, status="completed").count() == 12


def test_a_failing_flow_is_retried_at_once_then_errors_the_run(nothing_sent):
    noop_flow("boom", elements=[{"type": "assign", "set": {"x": "1 / 0"}}])
    orch = orchestration([{"name": "one", "steps": [bg("explode", "boom", retries=2)]}])
    run = engine.start_run(orch)
    run.refresh_from_db()
    step = StepRun.objects.get(run=run)
    assert step.status == "error" and step.attempts == 3 and "division" in step.error and step.traceback
    assert step.flow_id and step.started_at
    assert run.status == "error" and "explode" in run.error
    assert [k for k, _ in kinds(run)].count("step_retry_scheduled") == 2
    # The operator's retry runs it again, in process, and it fails again the same way.
    engine.retry_step(run.pk, "explode")
    step.refresh_from_db()
    assert step.status == "error" and step.attempts == 3
    engine.skip_step(run.pk, "explode", {"x": 1})
    run.refresh_from_db()
    assert run.status == "completed"


def test_a_failed_attempt_leaves_none_of_its_writes(nothing_sent):
    employee = Employee.objects.create(first_name="Ann", last_name="A", email="ann@example.com")
    noop_flow("writes_then_fails", inputs=[{"name": "employee_id", "type": "number", "required": True}], elements=[
        {"type": "create_record", "model": "demo.equipmentrequest",
         "values": {"employee": "employee_id", "item": '"laptop"'}, "into": "request"},
        {"type": "assign", "set": {"x": "1 / 0"}},
    ])
    orch = orchestration([{"name": "one", "steps": [
        bg("order", "writes_then_fails", inputs={"employee_id": "inputs.employee_id"}, retries=1)]}],
        inputs=[{"name": "employee_id", "type": "number", "required": True}])
    run = engine.start_run(orch, inputs={"employee_id": employee.pk})
    assert StepRun.objects.get(run=run).status == "error"
    # Two attempts each created a request before failing; the savepoints undid both,
    # and the run's own rows (the step in error, its events) were kept.
    assert not EquipmentRequest.objects.exists()
    assert RunEvent.objects.filter(run=run, kind="step_error").exists()


def test_a_flow_that_writes_commits_with_the_transition(nothing_sent):
    employee = Employee.objects.create(first_name="Ann", last_name="A", email="ann@example.com")
    noop_flow("orders", inputs=[{"name": "employee_id", "type": "number", "required": True}], elements=[
        {"type": "create_record", "model": "demo.equipmentrequest",
         "values": {"employee": "employee_id", "item": '"laptop"'}, "into": "request"},
    ])
    orch = orchestration([{"name": "one", "steps": [bg("order", "orders", inputs={"employee_id": "record.id"})]}])
    run = engine.start_run(orch, record=employee)
    run.refresh_from_db()
    assert run.status == "completed"
    assert EquipmentRequest.objects.get().employee == employee


def test_interactive_steps_still_wait_and_the_next_background_stage_runs_on_completion(nothing_sent):
    User.objects.create_user("alice")
    screen_flow("approve")
    noop_flow("after", outputs={"done": ("boolean", "true")})
    orch = orchestration([
        {"name": "ask", "steps": [ui("approve", "approve")]},
        {"name": "then", "steps": [bg("finish", "after")]},
    ])
    run = engine.start_run(orch)
    run.refresh_from_db()
    assert run.status == "running" and run.current_stage == "ask"
    item = WorkItem.objects.get(step_run__run=run)
    engine.complete_step(item.step_run_id, {"ok": True})
    run.refresh_from_db()
    assert run.status == "completed"
    assert StepRun.objects.get(run=run, step_name="finish").outputs == {"done": True}
