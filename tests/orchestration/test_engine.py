"""The engine's rules (DESIGN §4), with background steps run in-process."""
import pytest
from django.contrib.auth.models import Group, User

from orchestration import engine
from orchestration.models import OrchestrationRun, RunEvent, StageRun, StepRun
from orchestration.worker import claim, execute_claimed
from tests.engine_builders import bg, drain, noop_flow, orchestration, screen_flow, statuses, ui
from workguide.models import WorkItem

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(db):
    return User.objects.create_user("alice", password="pw")


def start(orch, fx, **kw):
    return engine.start_run(orch, effects=fx, **kw)


def test_stages_run_in_order_and_parallel_steps_start_together(fx):
    noop_flow("a", outputs={"x": ("number", "1")})
    orch = orchestration([
        {"name": "one", "steps": [bg("s1", "a"), bg("s2", "a")]},
        {"name": "two", "steps": [bg("s3", "a")]},
    ])
    run = start(orch, fx)
    assert statuses(run) == {"s1": "queued", "s2": "queued"}
    assert len(fx.sent) == 2
    first = fx.sent.pop(0)
    execute_claimed(claim(first, "t1"))
    assert StageRun.objects.get(run=run, stage_name="one").status == "in_progress"
    drain(fx)
    run.refresh_from_db()
    assert run.status == "completed"
    assert [s.stage_name for s in StageRun.objects.filter(run=run).order_by("id")] == ["one", "two"]
    assert StepRun.objects.get(run=run, step_name="s3").outputs == {"x": 1}


def test_after_steps_wait_for_what_they_name(fx):
    noop_flow("a")
    orch = orchestration([{"name": "one", "steps": [
        bg("first", "a"), bg("second", "a"), bg("last", "a", entry={"after": ["first", "second"]}),
    ]}])
    run = start(orch, fx)
    assert statuses(run)["last"] == "waiting"
    execute_claimed(claim(fx.sent.pop(0), "t"))
    assert statuses(run)["last"] == "waiting"
    execute_claimed(claim(fx.sent.pop(0), "t2"))
    assert statuses(run)["last"] == "queued"
    drain(fx)
    run.refresh_from_db()
    assert run.status == "completed"


def test_condition_steps_and_discontinue_when_condition_never_holds(fx):
    noop_flow("a", outputs={"go": ("boolean", "false")})
    noop_flow("b")
    orch = orchestration([{"name": "one", "steps": [
        bg("check", "a"),
        bg("maybe", "b", entry={"condition": "steps.check.outputs.go"}),
        bg("surely", "b", entry={"condition": "!steps.check.outputs.go"}),
    ]}])
    run = start(orch, fx)
    assert statuses(run) == {"check": "queued", "maybe": "waiting", "surely": "waiting"}
    drain(fx)
    run.refresh_from_db()
    assert run.status == "completed"
    assert statuses(run) == {"check": "completed", "maybe": "discontinued", "surely": "completed"}


def test_decision_takes_first_true_outcome_else_default(fx):
    noop_flow("score", outputs={"n": ("number", "inputs_n")}, inputs=[{"name": "inputs_n", "type": "number"}])
    noop_flow("a")
    path = [
        {"name": "measure", "steps": [bg("m", "score", inputs={"inputs_n": "inputs.n"})]},
        {"type": "decision", "name": "big", "outcomes": [
            {"name": "huge", "condition": "steps.m.outputs.n > 100", "goto": "huge"},
            {"name": "large", "condition": "steps.m.outputs.n > 10", "goto": "large"},
        ], "default": "small"},
        {"name": "huge", "steps": [bg("h", "a")], "next": "end"},
        {"name": "large", "steps": [bg("l", "a")], "next": "end"},
        {"name": "small", "steps": [bg("s", "a")]},
    ]
    orch = orchestration(path, inputs=[{"name": "n", "type": "number", "required": True}])
    results = {}
    for n in (500, 50, 5):
        run = start(orch, fx, inputs={"n": n})
        drain(fx)
        run.refresh_from_db()
        assert run.status == "completed"
        results[n] = [s.stage_name for s in StageRun.objects.filter(run=run).order_by("id")]
    assert results == {500: ["measure", "huge"], 50: ["measure", "large"], 5: ["measure", "small"]}


def test_rework_loop_and_max_stage_visits_guard(fx):
    noop_flow("a")
    path = [
        {"name": "work", "steps": [bg("w", "a")]},
        {"type": "decision", "name": "again", "outcomes": [{"name": "loop", "condition": "true", "goto": "work"}],
         "default": "end"},
    ]
    orch = orchestration(path, max_stage_visits=3)
    run = start(orch, fx)
    drain(fx)
    run.refresh_from_db()
    assert run.status == "error"
    assert "max_stage_visits" in run.error
    assert StageRun.objects.filter(run=run, stage_name="work").count() == 3
    visits = list(StageRun.objects.filter(run=run).order_by("id").values_list("visit", flat=True))
    assert visits == [1, 2, 3]


def test_stage_exit_condition_discontinues_open_steps_and_cancels_items(fx, alice):
    screen_flow("ask")
    noop_flow("a", outputs={"done": ("boolean", "true")})
    orch = orchestration([
        {"name": "one", "exit": {"condition": "has(steps.quick) && steps.quick.outputs.done"}, "steps": [
            bg("quick", "a"), ui("slow", "ask"),
        ]},
        {"name": "two", "steps": [bg("after", "a")]},
    ])
    run = start(orch, fx)
    item = WorkItem.objects.get(run=run)
    assert item.status == "open"
    drain(fx)
    run.refresh_from_db()
    assert run.status == "completed"
    assert statuses(run)["slow"] == "discontinued"
    item.refresh_from_db()
    assert item.status == "canceled"


def test_interactive_step_completes_through_its_work_item(fx, alice):
    screen_flow("approve", fields=[{"name": "approved", "type": "boolean", "label": "Approved"},
                                   {"name": "note", "type": "text", "label": "Note", "required": True}])
    noop_flow("a", outputs={"echo": ("text", "note")}, inputs=[{"name": "note", "type": "text"}])
    orch = orchestration([
        {"name": "review", "steps": [ui("decide", "approve")]},
        {"name": "after", "steps": [bg("use", "a", inputs={"note": "steps.decide.outputs.note"})]},
    ])
    run = start(orch, fx)
    item = WorkItem.objects.get(run=run)
    assert item.assignee_user == alice
    with pytest.raises(Exception) as bad:
        item.complete(alice, {"approved": True})
    assert "note" in str(bad.value)
    assert statuses(run) == {"decide": "in_progress"}
    item.complete(alice, {"approved": True, "note": "fine"})
    drain(fx)
    run.refresh_from_db()
    assert run.status == "completed"
    assert StepRun.objects.get(run=run, step_name="use").outputs == {"echo": "fine"}


def test_duplicate_completion_is_a_recorded_no_op(fx):
    noop_flow("a")
    orch = orchestration([{"name": "one", "steps": [bg("s", "a")]}, {"name": "two", "steps": [bg("t", "a")]}])
    run = start(orch, fx)
    step_run = StepRun.objects.get(run=run, step_name="s")
    assert engine.complete_step(step_run.pk, {}, effects=fx) is True
    assert engine.complete_step(step_run.pk, {}, effects=fx) is False
    assert StageRun.objects.filter(run=run, stage_name="two").count() == 1
    assert RunEvent.objects.filter(run=run, kind="completion_ignored").count() == 1


def test_duplicate_message_runs_the_flow_once(fx):
    noop_flow("a")
    orch = orchestration([{"name": "one", "steps": [bg("s", "a")]}])
    run = start(orch, fx)
    step_run_id = fx.sent[0]
    assert claim(step_run_id, "first") is not None
    assert claim(step_run_id, "second") is None


def test_failing_step_retries_then_errors_run_and_operator_can_retry_or_skip(fx, settings):
    noop_flow("boom", elements=[{"type": "assign", "set": {"x": "1 / 0"}}])
    noop_flow("a")
    orch = orchestration([
        {"name": "one", "steps": [bg("explode", "boom", retries=1)]},
        {"name": "two", "steps": [bg("fine", "a")]},
    ])
    run = start(orch, fx)
    sent_retries = []
    from unittest import mock

    with mock.patch("orchestration.worker.send_step_message", side_effect=lambda i, countdown=None: sent_retries.append(i)):
        execute_claimed(claim(fx.sent.pop(0), "t1"))
    step = StepRun.objects.get(run=run, step_name="explode")
    assert step.status == "queued" and "division" in step.error
    execute_claimed(claim(step.pk, "t2"))
    run.refresh_from_db()
    step.refresh_from_db()
    assert step.status == "error" and step.attempts == 2
    assert run.status == "error" and "explode" in run.error
    assert StageRun.objects.get(run=run, stage_name="one").status == "error"

    engine.retry_step(run.pk, "explode", effects=fx)
    run.refresh_from_db()
    assert run.status == "running"
    assert StepRun.objects.get(run=run, step_name="explode").status == "queued"
    fx.sent.clear()
    engine.fail_step(step.pk, "still broken")
    run.refresh_from_db()
    assert run.status == "error"

    engine.skip_step(run.pk, "explode", {"x": 0}, effects=fx)
    drain(fx)
    run.refresh_from_db()
    assert run.status == "completed"
    kinds = set(RunEvent.objects.filter(run=run).values_list("kind", flat=True))
    assert {"step_retry_scheduled", "step_error", "step_retried", "step_skipped", "run_completed"} <= kinds


def test_cancel_discontinues_open_steps_and_cancels_work_items(fx, alice):
    screen_flow("ask")
    orch = orchestration([{"name": "one", "steps": [ui("u", "ask")]}])
    run = start(orch, fx)
    engine.cancel_run(run.pk, reason="test", effects=fx)
    run.refresh_from_db()
    assert run.status == "canceled"
    assert statuses(run) == {"u": "discontinued"}
    assert WorkItem.objects.get(run=run).status == "canceled"
    with pytest.raises(engine.EngineError):
        engine.cancel_run(run.pk, effects=fx)


def test_bad_input_mapping_errors_the_step_with_its_place(fx):
    noop_flow("a", inputs=[{"name": "n", "type": "number", "required": True}])
    orch = orchestration([{"name": "one", "steps": [bg("s", "a", inputs={"n": "inputs.missing"})]}], api_name="mapping")
    run = start(orch, fx)
    run.refresh_from_db()
    step = StepRun.objects.get(run=run)
    assert run.status == "error" and step.status == "error"
    assert "mapping › one › s › inputs.n" in step.error


def test_unknown_assignee_errors_the_step(fx):
    screen_flow("ask")
    orch = orchestration([{"name": "one", "steps": [ui("u", "ask", assignee={"group": "nobody"})]}])
    run = start(orch, fx)
    run.refresh_from_db()
    assert run.status == "error" and "no group 'nobody'" in run.error


def test_group_and_expression_assignees(fx, alice):
    Group.objects.create(name="reviewers")
    screen_flow("ask")
    orch = orchestration(
        [{"name": "one", "steps": [ui("g", "ask", assignee={"group": "reviewers"}),
                                   ui("e", "ask", assignee={"expr": '"user:" + inputs.who'})]}],
        inputs=[{"name": "who", "type": "text"}],
    )
    run = start(orch, fx, inputs={"who": "alice"})
    items = {i.step_run.step_name: i for i in WorkItem.objects.filter(run=run)}
    assert items["g"].assignee_group.name == "reviewers"
    assert items["e"].assignee_user == alice


def test_run_pins_its_version(fx):
    from orchestration.models import Orchestration

    noop_flow("a")
    orch = orchestration([{"name": "one", "steps": [bg("s", "a")]}], api_name="pinned")
    run = start(orch, fx)
    Orchestration.objects.filter(pk=orch.pk).update(status="obsolete")
    orchestration([{"name": "other", "steps": [bg("z", "a")]}], api_name="pinned")
    drain(fx)
    run.refresh_from_db()
    assert run.status == "completed" and run.orchestration_id == orch.pk
    assert list(StageRun.objects.filter(run=run).values_list("stage_name", flat=True)) == ["one"]


def test_empty_path_and_empty_stage_complete_at_once(fx):
    orch = orchestration([{"name": "nothing", "steps": []}])
    run = start(orch, fx)
    run.refresh_from_db()
    assert run.status == "completed"


def test_events_record_every_transition_in_order(fx):
    noop_flow("a")
    orch = orchestration([{"name": "one", "steps": [bg("s", "a")]}])
    run = start(orch, fx)
    drain(fx)
    kinds = list(RunEvent.objects.filter(run=run).order_by("id").values_list("kind", flat=True))
    assert kinds == ["run_started", "stage_started", "step_queued", "step_running", "step_completed",
                     "stage_completed", "run_completed"]
    assert OrchestrationRun.objects.get(pk=run.pk).status == "completed"


def test_evaluation_flows_drive_entry_and_decisions(fx):
    from tests.engine_builders import active_flow

    active_flow(api_name="big_enough", type="evaluation",
                inputs=[{"name": "n", "type": "number", "required": True}],
                outputs=[{"name": "condition_met", "type": "boolean"}],
                elements=[{"type": "assign", "set": {"condition_met": "n > 10.0"}}])
    noop_flow("a")
    orch = orchestration(
        [
            {"name": "one", "steps": [
                bg("always", "a"),
                bg("gated", "a", entry={"evaluation_flow": "big_enough", "inputs": {"n": "inputs.n"}}),
            ]},
            {"type": "decision", "name": "route", "outcomes": [
                {"name": "big", "evaluation_flow": "big_enough", "inputs": {"n": "inputs.n"}, "goto": "big"}],
             "default": "end"},
            {"name": "big", "steps": [bg("b", "a")]},
        ],
        inputs=[{"name": "n", "type": "number", "required": True}],
    )
    small = start(orch, fx, inputs={"n": 1})
    drain(fx)
    large = start(orch, fx, inputs={"n": 50})
    drain(fx)
    assert statuses(small) == {"always": "completed", "gated": "discontinued"}
    assert statuses(large) == {"always": "completed", "gated": "completed", "b": "completed"}


def test_step_exit_condition_completes_an_open_step_early(fx, alice):
    screen_flow("ask")
    noop_flow("a", outputs={"ready": ("boolean", "true")})
    orch = orchestration([{"name": "one", "steps": [
        bg("prep", "a"),
        ui("wait", "ask", exit={"condition": "has(steps.prep) && steps.prep.outputs.ready"}),
    ]}])
    run = start(orch, fx)
    item = WorkItem.objects.get(run=run)
    drain(fx)
    run.refresh_from_db()
    item.refresh_from_db()
    assert run.status == "completed"
    assert statuses(run) == {"prep": "completed", "wait": "completed"}
    assert item.status == "canceled"
    assert RunEvent.objects.filter(run=run, kind="step_exit_condition_met", step_name="wait").exists()


def test_a_condition_that_fails_at_run_time_errors_with_its_place(fx):
    noop_flow("a")
    orch = orchestration([{"name": "one", "steps": [bg("s", "a", entry={"condition": "1 / 0 == 1"})]}],
                         api_name="bad_condition")
    run = start(orch, fx)
    run.refresh_from_db()
    assert run.status == "error"
    assert "bad_condition › one › s › entry" in run.error and "division" in run.error


def test_sweeper_resends_steps_past_their_lease(fx, django_capture_on_commit_callbacks):
    from datetime import timedelta
    from unittest import mock

    from django.utils import timezone

    from orchestration.worker import sweep_stuck_steps

    noop_flow("a")
    orch = orchestration([{"name": "one", "steps": [bg("s", "a"), bg("t", "a")]}])
    run = start(orch, fx)
    lost, running = StepRun.objects.filter(run=run).order_by("step_name")
    claim(running.pk, "w1")  # claimed, then its worker vanished
    sent = []
    later = timezone.now() + timedelta(hours=1)
    with mock.patch("orchestration.worker.send_step_message", side_effect=lambda i, countdown=None: sent.append(i)), \
            django_capture_on_commit_callbacks(execute=True):
        assert sweep_stuck_steps(now=timezone.now()) == 0  # nothing is past its lease yet
        assert sweep_stuck_steps(now=later) == 2
    assert sorted(sent) == sorted([lost.pk, running.pk])
    assert set(StepRun.objects.filter(run=run).values_list("status", flat=True)) == {"queued"}
    assert RunEvent.objects.filter(run=run, kind="step_resent").count() == 2


def test_a_failed_publish_ends_the_queued_lease_so_the_next_sweep_resends(fx, django_capture_on_commit_callbacks):
    from unittest import mock

    from django.utils import timezone

    from orchestration.worker import send_step_message

    noop_flow("a")
    orch = orchestration([{"name": "one", "steps": [bg("s", "a")]}])
    run = start(orch, fx)
    step = StepRun.objects.get(run=run)
    assert step.lease_until > timezone.now()  # published: the long queued lease
    with mock.patch("orchestration.tasks.run_step.apply_async", side_effect=ConnectionError("broker away")):
        assert send_step_message(step.pk) is None
    step.refresh_from_db()
    assert step.lease_until <= timezone.now()
    from orchestration.worker import sweep_stuck_steps

    with mock.patch("orchestration.worker.send_step_message") as resend, django_capture_on_commit_callbacks(execute=True):
        assert sweep_stuck_steps() == 1
    resend.assert_called_once_with(step.pk)


def test_decisions_that_go_round_without_a_stage_error_the_run(fx):
    """Issue 12, point 2: a version that was never validated (built active here) cannot hang the process."""
    noop_flow("a")
    path = [
        {"type": "decision", "name": "ping", "outcomes": [{"name": "on", "condition": "true", "goto": "pong"}],
         "default": "work"},
        {"type": "decision", "name": "pong", "outcomes": [{"name": "back", "condition": "true", "goto": "ping"}],
         "default": "work"},
        {"name": "work", "steps": [bg("w", "a")]},
    ]
    orch = orchestration(path)
    run = start(orch, fx)
    run.refresh_from_db()
    assert run.status == "error"
    assert run.error.startswith(f"{orch.api_name} › ")
    assert "decisions go round without entering a stage (ping → pong → ping → pong)" in run.error
    assert not StageRun.objects.filter(run=run).exists()
    kinds = list(RunEvent.objects.filter(run=run).values_list("kind", flat=True))
    assert kinds.count("decision_taken") == 3 and kinds[-1] == "run_error"
