"""Sub-orchestration steps, stage error paths and run outputs (DESIGN §10; orchestration/children.py)."""
import pytest
from django.contrib.auth.models import User

from orchestration import children, engine
from orchestration.models import OrchestrationRun, RunEvent, StageRun, StepRun
from tests.engine_builders import bg, noop_flow, orchestration, screen_flow, ui
from workguide.models import WorkItem

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def in_process(settings):
    settings.BATON_STEP_EXECUTION = "in_process"


@pytest.fixture
def alice(db):
    return User.objects.create_user("alice", password="pw")


def sub(name, api_name, **extra):
    return {"name": name, "type": "orchestration", "orchestration": api_name, **extra}


def step_of(run, name):
    return StepRun.objects.filter(run=run, step_name=name).order_by("-id").first()


def child_of(run, name):
    return OrchestrationRun.objects.filter(parent_step_run=step_of(run, name)).order_by("-id").first()


def _a_parent_waiting_on_its_child(kid, mum):
    """A run of ``mum`` whose sub-orchestration step ``call`` waits on a child run of ``kid`` (one work item)."""
    screen_flow(f"{kid}_form")
    orchestration([{"name": "ask", "steps": [ui("confirm", f"{kid}_form")]}], api_name=kid)
    run = engine.start_run(orchestration([{"name": "one", "steps": [sub("call", kid)]}], api_name=mum))
    return run, child_of(run, "call")


@pytest.fixture
def adder():
    noop_flow("add", inputs=[{"name": "n", "type": "number", "required": True}],
              outputs={"total": ("number", "n + 1.0")})


def test_a_child_of_background_steps_completes_its_step_with_its_outputs(adder):
    orchestration([{"name": "work", "steps": [bg("a", "add", inputs={"n": "inputs.n"})]}], api_name="kid",
                  inputs=[{"name": "n", "type": "number", "required": True}],
                  outputs={"total": "steps.a.outputs.total"})
    parent = orchestration([
        {"name": "one", "steps": [sub("call", "kid", inputs={"n": "inputs.start"})]},
        {"name": "two", "steps": [bg("use", "add", inputs={"n": "steps.call.outputs.total"})]},
    ], api_name="mum", inputs=[{"name": "start", "type": "number", "required": True}])
    run = engine.start_run(parent, inputs={"start": 1})
    run.refresh_from_db()
    assert run.status == "completed"
    call = step_of(run, "call")
    assert call.status == "completed" and call.outputs == {"total": 2}
    child = child_of(run, "call")
    assert child.status == "completed" and child.depth == 1 and child.outputs == {"total": 2}
    assert child.orchestration.api_name == "kid" and child.inputs == {"n": 1}
    assert children.parent_of(child) == {"run": run.pk, "step": "call"}
    assert step_of(run, "use").outputs == {"total": 3}
    started = RunEvent.objects.get(run=run, kind="step_started", step_name="call")
    assert started.data == {"child_run": child.pk}


def test_a_child_that_waits_for_a_person_completes_the_step_when_it_ends(adder, alice):
    screen_flow("ok_form")
    orchestration([{"name": "ask", "steps": [ui("confirm", "ok_form")]}], api_name="kid_ui",
                  outputs={"said": "steps.confirm.outputs.ok"})
    parent = orchestration([
        {"name": "one", "steps": [sub("call", "kid_ui")]},
        {"name": "two", "steps": [bg("after", "add", inputs={"n": "steps.call.outputs.said ? 10.0 : 20.0"})]},
    ], api_name="mum_ui")
    run = engine.start_run(parent)
    assert step_of(run, "call").status == "in_progress"
    child = child_of(run, "call")
    assert child.status == "running"
    WorkItem.objects.get(run=child).complete(alice, {"ok": True})
    run.refresh_from_db()
    child.refresh_from_db()
    assert child.status == "completed"
    assert run.status == "completed", run.error
    assert step_of(run, "call").outputs == {"said": True}
    assert step_of(run, "after").outputs == {"total": 11}


def failing_kid():
    noop_flow("boom", elements=[{"type": "assign", "set": {"x": "1 / 0"}}])
    return orchestration([{"name": "work", "steps": [bg("explode", "boom", retries=0)]}], api_name="kid_bad")


def test_an_error_in_the_child_is_an_error_of_the_step(adder):
    failing_kid()
    parent = orchestration([{"name": "one", "steps": [sub("call", "kid_bad")]}], api_name="mum_bad")
    run = engine.start_run(parent)
    run.refresh_from_db()
    call = step_of(run, "call")
    child = child_of(run, "call")
    assert child.status == "error"
    assert call.status == "error" and f"sub-orchestration run {child.pk} is in error" in call.error
    assert "division" in call.error
    assert run.status == "error"


def test_retrying_the_step_starts_a_new_child_and_cancels_the_failed_one(adder, django_capture_on_commit_callbacks):
    failing_kid()
    parent = orchestration([{"name": "one", "steps": [sub("call", "kid_bad")]}], api_name="mum_retry")
    run = engine.start_run(parent)
    first = child_of(run, "call")
    with django_capture_on_commit_callbacks(execute=True):
        engine.retry_step(run.pk, "call")
    second = child_of(run, "call")
    assert second.pk != first.pk and second.status == "error"
    first.refresh_from_db()
    assert first.status == "canceled"
    assert RunEvent.objects.get(run=first, kind="run_canceled").data["reason"].startswith("replaced by a retry")
    call = step_of(run, "call")
    assert call.status == "error" and f"run {second.pk}" in call.error


def test_retrying_inside_the_child_resumes_its_parent(adder, settings):
    noop_flow("flaky", inputs=[{"name": "go", "type": "boolean"}],
              elements=[{"type": "assign", "set": {"x": "record.name == 'never' ? 1 : 1 / 0"}}])
    kid = orchestration([{"name": "work", "steps": [bg("try", "flaky", retries=0)]}], api_name="kid_flaky")
    parent = orchestration([{"name": "one", "steps": [sub("call", "kid_flaky")]}], api_name="mum_flaky")
    run = engine.start_run(parent)
    child = child_of(run, "call")
    assert child.status == "error" and step_of(run, "call").status == "error"
    # The operator fixes things and skips the failed step inside the child: it completes,
    # its parent's step with it, and the parent goes on.
    engine.skip_step(child.pk, "try", {})
    child.refresh_from_db()
    run.refresh_from_db()
    assert child.status == "completed"
    assert step_of(run, "call").status == "completed"
    assert run.status == "completed", run.error
    assert kid.pk  # the child pinned its version


def test_canceling_the_parent_cancels_the_child_and_an_operator_canceling_the_child_errs_the_step(
        adder, alice, django_capture_on_commit_callbacks):
    run, child = _a_parent_waiting_on_its_child("kid_wait", "mum_cancel")
    with django_capture_on_commit_callbacks(execute=True):
        engine.cancel_run(run.pk, reason="no longer needed")
    child.refresh_from_db()
    assert child.status == "canceled"
    assert WorkItem.objects.get(run=child).status == "canceled"
    assert step_of(run, "call").status == "discontinued"

    other = engine.start_run(run.orchestration)
    its_child = child_of(other, "call")
    engine.cancel_run(its_child.pk, reason="wrong customer")
    other.refresh_from_db()
    call = step_of(other, "call")
    assert call.status == "error" and f"sub-orchestration run {its_child.pk} was canceled" in call.error
    assert other.status == "error"


def test_recursion_stops_at_the_depth_limit_with_a_clear_error(adder, settings):
    settings.BATON_MAX_CHILD_DEPTH = 2
    orch = orchestration([{"name": "again", "steps": [
        sub("deeper", "rec", inputs={"n": "int(inputs.n) - 1"}, entry={"condition": "int(inputs.n) > 0"}),
    ]}], api_name="rec", inputs=[{"name": "n", "type": "number", "required": True}])
    run = engine.start_run(orch, inputs={"n": 5})
    grandchild = OrchestrationRun.objects.get(depth=2)
    step = step_of(grandchild, "deeper")
    assert step.status == "error"
    assert "nest runs 3 deep (BATON_MAX_CHILD_DEPTH is 2)" in step.error
    run.refresh_from_db()
    assert run.status == "error"
    shallow = engine.start_run(orch, inputs={"n": 1})
    shallow.refresh_from_db()
    assert shallow.status == "completed"


def test_canceling_a_run_that_took_an_error_path_leaves_the_stage_it_left_alone(adder, alice):
    """The stage an error path left is closed for good: a later cancel does not close it a second time."""
    noop_flow("boom3", elements=[{"type": "assign", "set": {"x": "1 / 0"}}])
    screen_flow("fix_form")
    orch = orchestration([
        {"name": "risky", "on_error": {"goto": "repair"}, "steps": [bg("explode", "boom3", retries=0)]},
        {"name": "repair", "steps": [ui("fix", "fix_form")]},
    ], api_name="path_then_cancel")
    run = engine.start_run(orch)
    assert step_of(run, "fix").status == "in_progress"
    engine.cancel_run(run.pk, reason="no longer needed")
    closings = list(RunEvent.objects.filter(run=run, stage_name="risky", kind__startswith="stage_")
                    .exclude(kind="stage_started").values_list("kind", flat=True))
    assert closings == ["stage_discontinued"]
    assert StageRun.objects.get(run=run, stage_name="risky").status == "discontinued"
    assert step_of(run, "explode").status == "error"


def test_a_stage_error_path_goes_on_with_the_error_readable(adder):
    noop_flow("boom2", elements=[{"type": "assign", "set": {"x": "1 / 0"}}])
    noop_flow("note", inputs=[{"name": "why", "type": "text"}], outputs={"said": ("text", "why")})
    orch = orchestration([
        {"name": "risky", "on_error": {"goto": "repair"}, "steps": [
            bg("explode", "boom2", retries=1), bg("slow", "add", inputs={"n": "1.0"}, entry={"after": ["explode"]}),
        ]},
        {"name": "fine", "next": "end", "steps": [bg("never", "add", inputs={"n": "1.0"})]},
        {"name": "repair", "steps": [bg("tell", "note", inputs={
            "why": 'steps.explode.error.element + ": " + steps.explode.error.message'})]},
    ], api_name="with_path")
    run = engine.start_run(orch)
    run.refresh_from_db()
    assert run.status == "completed", run.error
    stages = dict(StageRun.objects.filter(run=run).values_list("stage_name", "status"))
    assert stages == {"risky": "discontinued", "repair": "completed"}  # DESIGN §10: "discontinues the stage"
    assert step_of(run, "explode").status == "error"
    assert step_of(run, "slow").status == "discontinued"
    said = step_of(run, "tell").outputs["said"]
    assert said.startswith("with_path › risky › explode: ") and "division" in said
    event = RunEvent.objects.get(run=run, kind="stage_discontinued", stage_name="risky")
    assert event.data["goto"] == "repair" and "explode" in event.data["error"]
    with pytest.raises(engine.EngineError):
        engine.retry_step(run.pk, "explode")  # the run went on: nothing to retry


def test_outputs_that_fail_stop_the_run_with_their_place(adder):
    orch = orchestration([{"name": "s", "steps": [bg("a", "add", inputs={"n": "1.0"})]}], api_name="bad_out",
                         outputs={"ratio": "steps.a.outputs.total / 0"})
    run = engine.start_run(orch)
    run.refresh_from_db()
    assert run.status == "error" and run.error.startswith("bad_out › outputs.ratio:")


def test_the_sweeper_cancels_a_child_whose_cancel_was_lost(adder, alice):
    run, child = _a_parent_waiting_on_its_child("kid_orphan", "mum_orphan")
    engine.cancel_run(run.pk)  # its on-commit cancel of the child never runs here (the test's transaction)
    child.refresh_from_db()
    assert child.status == "running"
    assert children.sweep_orphaned_children() == 1
    child.refresh_from_db()
    assert child.status == "canceled"
    assert children.sweep_orphaned_children() == 0


# -- what people see: the API, the monitor, the dry run ------------------------------------------------

def test_the_api_and_the_monitor_link_parent_and_child(adder, alice, client):
    from django.contrib.auth.models import Permission

    from tests.api_support import token_client

    screen_flow("ok_form4")
    orchestration([{"name": "ask", "steps": [ui("confirm", "ok_form4")]}], api_name="kid_seen",
                  outputs={"said": "has(steps.confirm.outputs.ok) ? steps.confirm.outputs.ok : false"})
    parent = orchestration([{"name": "one", "steps": [sub("call", "kid_seen")]}], api_name="mum_seen")
    run = engine.start_run(parent)
    child = child_of(run, "call")
    viewer = User.objects.create_user("viewer")
    viewer.user_permissions.add(Permission.objects.get(codename="view_runs"))
    api = token_client(viewer)
    body = api.get(f"/api/runs/{run.pk}/").json()
    step = body["stages"][0]["steps"][0]
    assert step["type"] == "orchestration" and step["child_runs"] == [child.pk] and step["flow"] is None
    assert body["parent"] is None
    child_body = api.get(f"/api/runs/{child.pk}/").json()
    assert child_body["parent"] == {"run": run.pk, "step": "call"}
    listed = {r["id"]: r for r in api.get("/api/runs/").json()["results"]}
    assert listed[child.pk]["parent"] == {"run": run.pk, "step": "call"}
    path = api.get("/api/orchestrations/mum_seen/").json()["path"]
    assert path[0]["steps"][0]["orchestration"] == "kid_seen" and path[0]["steps"][0]["type"] == "orchestration"

    client.force_login(viewer)
    page = client.get(f"/monitor/runs/{run.pk}/").content.decode()
    assert f'data-child-run="{child.pk}"' in page
    child_page = client.get(f"/monitor/runs/{child.pk}/").content.decode()
    assert f'data-parent-run="{run.pk}"' in child_page and "step call" in child_page
    WorkItem.objects.get(run=child).complete(alice, {"ok": True})
    assert api.get(f"/api/runs/{run.pk}/").json()["status"] == "completed"
    assert api.get(f"/api/runs/{child.pk}/").json()["outputs"] == {"said": True}


def test_the_dry_run_walks_an_error_path_and_a_sub_orchestration_step(adder):
    from orchestration.simulate import parse_errors, simulate

    orchestration([{"name": "work", "steps": [bg("a", "add", inputs={"n": "1.0"})]}], api_name="kid_sim",
                  outputs={"total": "steps.a.outputs.total"})
    orch = orchestration([
        {"name": "risky", "on_error": {"goto": "repair"}, "steps": [sub("call", "kid_sim"), bg(
            "charge", "add", inputs={"n": "steps.call.outputs.total"}, entry={"after": ["call"]})]},
        {"name": "fine", "next": "end", "steps": [bg("ok", "add", inputs={"n": "1.0"})]},
        {"name": "repair", "steps": [bg("tell", "add", inputs={"n": "double(size(steps.charge.error.message))"})]},
    ], api_name="sim_paths")
    happy = simulate(orch, outputs={"call": {"total": 2}})
    assert happy.result == "completed" and happy.path == ["risky", "fine", "end"]
    sad = simulate(orch, outputs={"call": {"total": 2}}, errors=parse_errors(["charge=card declined"]))
    assert sad.result == "completed", sad.message
    assert sad.path == ["risky", "repair", "end"]
    assert "error path goes to repair" in sad.text()
    stopped = simulate(orch, errors={"tell": "no"}, outputs={"call": {"total": 2}})
    assert stopped.result == "completed"  # tell never runs on the happy path
    failing_without_path = simulate(orch, errors={"ok": "down"}, outputs={"call": {"total": 2}})
    assert failing_without_path.result == "error" and "step ok fails (down)" in failing_without_path.message


def test_the_diagram_draws_a_sub_orchestration_step_and_an_error_path(adder):
    from orchestration.diagram import render_diagram
    from orchestration.plan import Plan

    orchestration([{"name": "work", "steps": [bg("a", "add", inputs={"n": "1.0"})]}], api_name="kid_drawn")
    orch = orchestration([
        {"name": "risky", "on_error": {"goto": "repair"}, "steps": [sub("call", "kid_drawn")]},
        {"name": "fine", "next": "end", "steps": [bg("ok", "add", inputs={"n": "1.0"})]},
        {"name": "repair", "steps": [bg("mend", "add", inputs={"n": "1.0"})]},
    ], api_name="drawn")
    svg = str(render_diagram(Plan.load(orch)))
    assert 'data-step="call" data-step-type="orchestration"' in svg
    assert "runs kid_drawn" in svg
    assert 'data-from="risky" data-to="repair"' in svg and "on error" in svg


def test_canceling_a_parent_whose_step_is_in_error_cancels_the_failed_child(adder, django_capture_on_commit_callbacks):
    # Found by the state machine: the child in error was left running for ever once the operator
    # fixed it inside, because the canceled parent's step was "error", not open.
    failing_kid()
    parent = orchestration([{"name": "one", "steps": [sub("call", "kid_bad")]}], api_name="mum_err_cancel")
    run = engine.start_run(parent)
    child = child_of(run, "call")
    assert child.status == "error"
    with django_capture_on_commit_callbacks(execute=True):
        engine.cancel_run(run.pk, reason="stop")
    child.refresh_from_db()
    assert child.status == "canceled"
    assert children.sweep_orphaned_children() == 0


def test_pausing_the_parent_pauses_its_child_and_resuming_resumes_it(adder, alice, django_capture_on_commit_callbacks):
    from orchestration import waits

    run, child = _a_parent_waiting_on_its_child("kid_pause", "mum_pause")
    with django_capture_on_commit_callbacks(execute=True):
        waits.pause_run(run.pk, user=alice, reason="waiting for budget")
    child.refresh_from_db()
    assert child.status == "paused"
    paused = RunEvent.objects.get(run=child, kind="run_paused")
    assert paused.data["reason"] == f"its parent run {run.pk} was paused: waiting for budget"
    with django_capture_on_commit_callbacks(execute=True):
        waits.resume_run(run.pk, user=alice)
    child.refresh_from_db()
    assert child.status == "running"
    assert step_of(run, "call").status == "in_progress"


def test_resuming_the_parent_leaves_a_child_paused_on_its_own_paused(adder, alice, django_capture_on_commit_callbacks):
    """Resume undoes what the parent's pause did: a child an operator paused before stays paused."""
    from orchestration import waits

    run, child = _a_parent_waiting_on_its_child("kid_own_pause", "mum_own_pause")
    with django_capture_on_commit_callbacks(execute=True):
        waits.pause_run(child.pk, user=alice, reason="checking the vendor")  # the child alone
        waits.pause_run(run.pk, user=alice, reason="budget freeze")
        waits.resume_run(run.pk, user=alice)
    run.refresh_from_db()
    child.refresh_from_db()
    assert run.status == "running"
    assert child.status == "paused"
    assert RunEvent.objects.filter(run=child, kind="run_paused").count() == 1  # the parent's pause found it paused
    assert not RunEvent.objects.filter(run=child, kind="run_resumed").exists()


def test_a_child_paused_by_its_parent_before_by_parent_run_existed_is_resumed_with_it(
        adder, alice, django_capture_on_commit_callbacks):
    """Pauses written by an earlier version name the parent only in their reason: the resume still finds them."""
    from orchestration import waits

    run, child = _a_parent_waiting_on_its_child("kid_old_pause", "mum_old_pause")
    with django_capture_on_commit_callbacks(execute=True):
        waits.pause_run(run.pk, user=alice, reason="audit")
    event = RunEvent.objects.get(run=child, kind="run_paused")
    data = {k: v for k, v in event.data.items() if k != "by_parent_run"}  # as an earlier version wrote it
    RunEvent.objects.filter(pk=event.pk).update(data=data)
    with django_capture_on_commit_callbacks(execute=True):
        waits.resume_run(run.pk, user=alice)
    child.refresh_from_db()
    assert child.status == "running"


def test_listing_and_reading_runs_with_children_reads_no_query_per_child(adder, django_assert_max_num_queries):
    """The API's parent/child links come with the runs (review: one query per listed child run)."""
    from rest_framework.test import APIClient

    orchestration([{"name": "work", "steps": [bg("a", "add", inputs={"n": "1"})]}], api_name="kid_many")
    parent = orchestration([{"name": "one", "steps": [sub(f"call{i}", "kid_many") for i in range(6)]}],
                           api_name="mum_many")
    run = engine.start_run(parent)
    assert OrchestrationRun.objects.filter(parent_step_run__run=run).count() == 6
    client = APIClient()
    client.force_authenticate(User.objects.create_superuser("root", password="pw"))
    with django_assert_max_num_queries(3):  # count, runs with their parents' steps; was 2 + one per child
        listed = client.get("/api/runs/").json()["results"]
    assert len(listed) == 7
    assert {r["parent"]["step"] for r in listed if r["parent"]} == {f"call{i}" for i in range(6)}
    with django_assert_max_num_queries(7):  # was 6 + one per sub-orchestration step
        detail = client.get(f"/api/runs/{run.pk}/").json()
    steps = [s for stage in detail["stages"] for s in stage["steps"]]
    assert sorted(len(s["child_runs"]) for s in steps) == [1] * 6


@pytest.mark.django_db
def test_the_migration_makes_stages_left_by_their_error_path_discontinued():
    """Migration 0017: a stage in `error` stays so only where its run stopped (run in error, no later stage)."""
    import importlib

    from django.apps import apps

    migration = importlib.import_module("orchestration.migrations.0017_error_path_stages_discontinued")
    noop_flow("mig_noop")
    orch = orchestration([{"name": "s", "steps": [bg("x", "mig_noop")]}], api_name="mig_paths")

    def run_with(status, *stages):
        run = OrchestrationRun.objects.create(orchestration=orch, status=status)
        return [StageRun.objects.create(run=run, stage_name=name, position=i, status=state)
                for i, (name, state) in enumerate(stages)]

    went_on = run_with("running", ("risky", "error"), ("repair", "in_progress"))
    stopped = run_with("error", ("risky", "error"))
    to_end = run_with("completed", ("risky", "error"))
    both = run_with("error", ("risky", "error"), ("later", "error"))
    migration.forwards(apps, None)

    def status(stage_run):
        return StageRun.objects.get(pk=stage_run.pk).status

    assert [status(s) for s in went_on] == ["discontinued", "in_progress"]
    assert [status(s) for s in stopped] == ["error"]
    assert [status(s) for s in to_end] == ["discontinued"]
    assert [status(s) for s in both] == ["discontinued", "error"]
