"""Wait steps, events, timers, pause/resume and withdrawing a step (orchestration/waits.py, DESIGN §10)."""
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.utils import timezone

import orchestration
from orchestration import engine, waits
from orchestration.permissions import can_pause_run
from orchestration.models import KeptEvent, RunEvent, StepRun, Timer
from orchestration.worker import claim, execute_claimed
from tests.engine_builders import bg, drain, noop_flow, orchestration as make_orch, screen_flow, statuses, ui
from workguide.models import WorkItem

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(db):
    return User.objects.create_user("alice", password="pw")


def kinds(run):
    return list(RunEvent.objects.filter(run=run).order_by("id").values_list("kind", flat=True))


def wait(name, **extra):
    return {"name": name, "type": "wait", **extra}


def later(**kw):
    return timezone.now() + timedelta(**kw)


def one_stage_then_bg(*steps):
    noop_flow("after_flow", outputs={"done": ("boolean", "true")})
    return make_orch([{"name": "waiting", "steps": list(steps)},
                      {"name": "next", "steps": [bg("go", "after_flow")]}])


# -- for / until -------------------------------------------------------------

def test_a_wait_for_writes_a_timer_and_the_sweeper_fires_it_once(fx):
    orch = one_stage_then_bg(wait("nap", **{"for": "2h"}))
    run = engine.start_run(orch, effects=fx)
    assert statuses(run) == {"nap": "in_progress"}
    timer = Timer.objects.get(run=run)
    assert timer.state == "pending" and timer.purpose == "wait"
    assert abs((timer.due_at - timezone.now()) - timedelta(hours=2)) < timedelta(minutes=1)

    assert waits.fire_due_timers(now=later(hours=1)) == 0  # not yet
    assert statuses(run)["nap"] == "in_progress"
    assert waits.fire_due_timers(now=later(hours=2, minutes=1)) == 1
    assert statuses(run) == {"nap": "completed", "go": "queued"}
    assert waits.fire_due_timers(now=later(hours=3)) == 0  # once
    timer.refresh_from_db()
    assert timer.state == "fired"
    assert kinds(run).count("timer_fired") == 1


def test_firing_the_same_timer_twice_fires_it_once(fx):
    run = engine.start_run(one_stage_then_bg(wait("nap", **{"for": "1s"})), effects=fx)
    timer = Timer.objects.get(run=run)
    Timer.objects.filter(pk=timer.pk).update(due_at=timezone.now() - timedelta(seconds=1))
    assert waits.fire_timer(timer.pk, run.pk) == 1
    assert waits.fire_timer(timer.pk, run.pk) == 0
    assert kinds(run).count("timer_fired") == 1


def test_a_wait_until_in_the_past_completes_at_once(fx):
    run = engine.start_run(one_stage_then_bg(wait("till", until="now - duration('1h')")), effects=fx)
    assert statuses(run) == {"till": "completed", "go": "queued"}
    assert not Timer.objects.filter(run=run).exists()


def test_a_wait_until_an_input_date(fx):
    orch = one_stage_then_bg(wait("till", until="inputs.when"))
    when = (timezone.now() + timedelta(days=3)).replace(microsecond=0)
    run = engine.start_run(orch, inputs={"when": when.isoformat()}, effects=fx)
    assert Timer.objects.get(run=run).due_at == when


def test_a_wait_until_that_is_not_a_date_is_an_error_naming_the_place(fx):
    run = engine.start_run(one_stage_then_bg(wait("till", until="'soon'")), effects=fx)
    step_run = StepRun.objects.get(run=run, step_name="till")
    assert step_run.status == "error"
    assert "waiting › till › until" in step_run.error and "'soon'" in step_run.error
    run.refresh_from_db()
    assert run.status == "error"


# -- events ------------------------------------------------------------------

def test_an_event_completes_its_wait_with_the_data_as_outputs(fx, alice):
    run = engine.start_run(one_stage_then_bg(wait("sign", event="signed")), effects=fx)
    assert statuses(run) == {"sign": "in_progress"}
    returned = orchestration.send_event(run, "signed", data={"by": "Grace"}, user=alice)
    assert returned.pk == run.pk
    sign = StepRun.objects.get(run=run, step_name="sign")
    assert sign.status == "completed" and sign.outputs == {"by": "Grace"}
    received = RunEvent.objects.get(run=run, kind="event_received")
    assert received.data == {"name": "signed", "data": {"by": "Grace"}, "source": "python"}
    assert received.actor == alice and received.step_name == "sign"
    assert statuses(run)["go"] == "queued"


def _queries_of(call):
    """The SQL statements ``call`` sends, without the savepoints of the test's transaction."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        call()
    return [q["sql"] for q in captured.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE", "BEGIN"))]


def test_delivering_an_event_to_the_next_step_costs_at_most_ten_queries(fx):
    """The event -> next step path (issue 16's latency figure): its query count may not grow unnoticed
    (an upper bound: the engine's own savings may lower it).

    Lock the run; read its steps; the wait completes; the stage completes; the next one opens with
    its step (insert, then queued); the active flows; the run; the events in one INSERT. An event
    wait without a timeout has no timer, so no timer UPDATE is sent.
    """
    orch = one_stage_then_bg(wait("sign", event="signed"))
    engine.start_run(orch, effects=fx)
    orchestration.send_event(engine.start_run(orch, effects=fx), "signed")  # warms the plan cache
    run = engine.start_run(orch, effects=fx)
    fx.sent.clear()
    queries = _queries_of(lambda: orchestration.send_event(run, "signed", data={"by": "Grace"}))
    assert len(queries) <= 10, "\n".join(queries)
    assert not any("orchestration_timer" in q for q in queries)
    assert fx.sent == [StepRun.objects.get(run=run, step_name="go").pk]
    assert statuses(run) == {"sign": "completed", "go": "queued"}


def test_an_event_wait_with_a_timeout_still_cancels_its_timer(fx):
    run = engine.start_run(one_stage_then_bg(wait("sign", event="signed", timeout="2d")), effects=fx)
    queries = _queries_of(lambda: orchestration.send_event(run, "signed"))
    assert sum("orchestration_timer" in q for q in queries) == 1
    assert Timer.objects.get(run=run).state == "canceled"


def test_an_event_nothing_waits_for_is_refused_and_changes_nothing(fx):
    run = engine.start_run(one_stage_then_bg(wait("sign", event="signed")), effects=fx)
    before = kinds(run)
    with pytest.raises(waits.NothingWaits, match=r"run \d+: no step waits for event 'other'"):
        orchestration.send_event(run, "other")
    assert kinds(run) == before
    assert not KeptEvent.objects.exists()


def test_a_kept_event_completes_the_next_wait_for_it_at_once(fx):
    noop_flow("f")
    orch = make_orch([{"name": "first", "steps": [bg("work", "f")]},
                      {"name": "second", "steps": [wait("sign", event="signed")]}])
    run = engine.start_run(orch, effects=fx)
    orchestration.send_event(run, "signed", data={"n": 1}, keep=True)
    assert KeptEvent.objects.get(run=run).taken_at is None
    assert "event_kept" in kinds(run)
    drain(fx)
    run.refresh_from_db()
    assert run.status == "completed"
    assert StepRun.objects.get(run=run, step_name="sign").outputs == {"n": 1}
    kept = KeptEvent.objects.get(run=run)
    assert kept.taken_at is not None and kept.taken_by.step_name == "sign"


def test_an_event_timeout_completes_with_timed_out_by_default(fx):
    run = engine.start_run(one_stage_then_bg(wait("sign", event="signed", timeout="1d")), effects=fx)
    timer = Timer.objects.get(run=run)
    assert timer.purpose == "timeout"
    assert waits.fire_due_timers(now=later(days=1, minutes=1)) == 1
    sign = StepRun.objects.get(run=run, step_name="sign")
    assert sign.status == "completed" and sign.outputs == {"timed_out": True}
    assert "wait_timed_out" in kinds(run)
    with pytest.raises(waits.NothingWaits):  # the late event finds nothing waiting
        orchestration.send_event(run, "signed")


def test_an_event_timeout_with_on_timeout_error_puts_the_step_in_error(fx):
    run = engine.start_run(one_stage_then_bg(wait("sign", event="signed", timeout="1h", on_timeout="error")),
                           effects=fx)
    waits.fire_due_timers(now=later(hours=2))
    sign = StepRun.objects.get(run=run, step_name="sign")
    assert sign.status == "error" and "no event 'signed' came within 1h" in sign.error
    run.refresh_from_db()
    assert run.status == "error"


def test_an_event_before_the_timeout_cancels_the_timer(fx):
    run = engine.start_run(one_stage_then_bg(wait("sign", event="signed", timeout="1h")), effects=fx)
    orchestration.send_event(run, "signed")
    assert Timer.objects.get(run=run).state == "canceled"
    assert waits.fire_due_timers(now=later(hours=2)) == 0


def test_send_event_for_a_record_reaches_every_waiting_run(fx, alice):
    orch = one_stage_then_bg(wait("sign", event="signed"))
    one = engine.start_run(orch, record=alice, effects=fx)
    two = engine.start_run(orch, record=alice, effects=fx)
    other = engine.start_run(orch, effects=fx)
    runs = orchestration.send_event_for(alice, "signed", data={"ok": True})
    assert sorted(r.pk for r in runs) == [one.pk, two.pk]
    assert statuses(other)["sign"] == "in_progress"
    with pytest.raises(waits.NothingWaits, match="auth.user"):
        orchestration.send_event_for(alice, "signed")


def test_event_data_must_be_a_map(fx):
    run = engine.start_run(one_stage_then_bg(wait("sign", event="signed")), effects=fx)
    with pytest.raises(waits.BadEventData, match="data: give a map"):
        orchestration.send_event(run, "signed", data=[1, 2])
    assert statuses(run)["sign"] == "in_progress"


def test_the_webhook_token_delivers_to_its_step_only(fx):
    run = engine.start_run(one_stage_then_bg(wait("sign", event="signed")), effects=fx)
    sign = StepRun.objects.get(run=run, step_name="sign")
    token = waits.webhook_token(sign.pk, "signed")
    with pytest.raises(waits.NothingWaits, match="not valid"):
        waits.send_webhook_event(token[:-2] + "xx", {})
    waits.send_webhook_event(token, {"a": 1})
    sign.refresh_from_db()
    assert sign.outputs == {"a": 1}
    assert RunEvent.objects.get(run=run, kind="event_received").data["source"] == "webhook"
    with pytest.raises(waits.NothingWaits, match="no longer waits"):
        waits.send_webhook_event(token, {})


# -- pause / resume ------------------------------------------------------------

def test_a_paused_run_starts_nothing_until_resumed(fx, alice):
    noop_flow("f")
    orch = make_orch([{"name": "one", "steps": [bg("a", "f")]}, {"name": "two", "steps": [bg("b", "f")]}])
    run = engine.start_run(orch, effects=fx)
    waits.pause_run(run.pk, user=alice, reason="audit")
    run.refresh_from_db()
    assert run.status == "paused"
    drain(fx)  # what was queued runs and is recorded
    assert statuses(run) == {"a": "completed"}
    run.refresh_from_db()
    assert run.status == "paused"
    waits.resume_run(run.pk, user=alice, reason="audit done")
    assert statuses(run) == {"a": "completed", "b": "queued"}
    paused = RunEvent.objects.get(run=run, kind="run_paused")
    resumed = RunEvent.objects.filter(run=run, kind="run_resumed").get()
    assert (paused.actor, paused.data) == (alice, {"reason": "audit"})
    assert resumed.data == {"reason": "audit done", "was": "paused"}


def test_pause_and_resume_refuse_the_wrong_state(fx):
    noop_flow("f")
    run = engine.start_run(make_orch([{"name": "one", "steps": [bg("a", "f")]}]), effects=fx)
    with pytest.raises(engine.EngineError, match="only a paused run can be resumed"):
        waits.resume_run(run.pk)
    waits.pause_run(run.pk)
    with pytest.raises(engine.EngineError, match="is paused; only a running run can be paused"):
        waits.pause_run(run.pk)


def test_timers_of_a_paused_run_wait_for_the_resume(fx):
    run = engine.start_run(one_stage_then_bg(wait("nap", **{"for": "1s"})), effects=fx)
    Timer.objects.filter(run=run).update(due_at=timezone.now() - timedelta(seconds=5))
    waits.pause_run(run.pk)
    assert waits.fire_due_timers() == 0
    assert statuses(run)["nap"] == "in_progress"
    waits.resume_run(run.pk)
    assert statuses(run) == {"nap": "completed", "go": "queued"}
    assert Timer.objects.get(run=run).state == "fired"


def test_an_open_work_item_of_a_paused_run_cannot_be_finished(fx, alice):
    from workguide import services

    screen_flow("approve")
    run = engine.start_run(make_orch([{"name": "one", "steps": [ui("ok", "approve")]}]), effects=fx)
    item = WorkItem.objects.get(step_run__run=run)
    waits.pause_run(run.pk, user=alice)
    with pytest.raises(services.WorkItemClosed, match="the run is paused"):
        services.complete_work_item(item, alice, {"ok": True})
    item.refresh_from_db()
    assert item.status == "open"
    waits.resume_run(run.pk, user=alice)
    services.complete_work_item(item, alice, {"ok": True})
    run.refresh_from_db()
    assert run.status == "completed"


def test_a_step_failing_while_paused_puts_the_run_in_error(fx):
    noop_flow("boom", elements=[{"type": "assign", "set": {"x": "1 / 0"}}])
    run = engine.start_run(make_orch([{"name": "one", "steps": [bg("a", "boom", retries=0)]}]), effects=fx)
    waits.pause_run(run.pk)
    drain(fx)
    run.refresh_from_db()
    assert run.status == "error"


def test_may_pause_own_runs_with_pause_own_runs(fx):
    from django.contrib.auth.models import Permission

    noop_flow("f")
    bob = User.objects.create_user("bob")
    carol = User.objects.create_user("carol")
    for user in (bob, carol):
        user.user_permissions.add(Permission.objects.get(codename="pause_own_runs"))
    run = engine.start_run(make_orch([{"name": "one", "steps": [bg("a", "f")]}]), user=bob, effects=fx)
    bob, carol = User.objects.get(pk=bob.pk), User.objects.get(pk=carol.pk)
    assert can_pause_run(bob, run) and not can_pause_run(carol, run)


# -- withdrawing one step ----------------------------------------------------------

def test_a_withdrawn_step_is_canceled_and_its_after_steps_never_start(fx, alice):
    noop_flow("f")
    orch = make_orch([
        {"name": "one", "steps": [bg("a", "f"), bg("b", "f"), bg("needs_a", "f", entry={"after": ["a"]})]},
        {"name": "two", "steps": [bg("c", "f")]},
    ])
    run = engine.start_run(orch, effects=fx)
    waits.cancel_step(run.pk, "a", user=alice, reason="not needed")
    assert statuses(run)["a"] == "canceled"
    event = RunEvent.objects.get(run=run, kind="step_canceled")
    assert (event.actor, event.data) == (alice, {"reason": "not needed"})
    drain(fx)
    assert statuses(run) == {"a": "canceled", "b": "completed", "needs_a": "discontinued", "c": "completed"}
    run.refresh_from_db()
    assert run.status == "completed"


def test_withdrawing_a_wait_step_cancels_its_timer(fx):
    run = engine.start_run(one_stage_then_bg(wait("nap", **{"for": "1h"})), effects=fx)
    waits.cancel_step(run.pk, "nap")
    assert Timer.objects.get(run=run).state == "canceled"
    assert statuses(run) == {"nap": "canceled", "go": "queued"}


def test_withdrawing_a_step_that_is_not_open_or_does_not_exist(fx):
    noop_flow("f")
    run = engine.start_run(make_orch([{"name": "one", "steps": [bg("a", "f"), bg("b", "f")]}]), effects=fx)
    step_run = claim(fx.sent.pop(0), "t")
    execute_claimed(step_run)
    with pytest.raises(engine.EngineError, match="step 'a' of run .* is completed; only an open step"):
        waits.cancel_step(run.pk, "a")
    with pytest.raises(LookupError, match="no step named 'zzz'"):
        waits.cancel_step(run.pk, "zzz")


def test_orchestration_sweep_command_fires_due_timers(fx, capsys):
    run = engine.start_run(one_stage_then_bg(wait("nap", **{"for": "1s"})), effects=fx)
    Timer.objects.filter(run=run).update(due_at=timezone.now() - timedelta(seconds=1))
    call_command("orchestration_sweep")
    assert "fired 1 timer(s)" in capsys.readouterr().out
    assert statuses(run)["nap"] == "completed"


# -- diagram and dry run --------------------------------------------------------------

def signing_orch():
    noop_flow("sim_after")
    return make_orch([
        {"name": "sign", "steps": [wait("sign", event="signed", timeout="14d", on_timeout="error"),
                                   wait("nap", **{"for": "1h"})]},
        {"name": "file", "steps": [bg("file", "sim_after", entry={"condition": "steps.sign.outputs.ok == true"})]},
    ])


def test_the_diagram_draws_waits_as_hourglasses():
    from orchestration.diagram import render_diagram
    from orchestration.plan import Plan

    svg = render_diagram(Plan.load(signing_orch().pk))
    assert svg.count('class="icon hourglass"') == 2
    assert 'data-step-type="wait"' in svg
    assert "event signed, timeout 14d" in svg and "for 1h" in svg


def test_the_dry_run_chooses_the_event_or_the_timer():
    from orchestration.simulate import simulate

    orch = signing_orch()
    arrived = simulate(orch, outputs={"sign": {"ok": True}})
    assert arrived.result == "completed", arrived.text()
    assert "event signed arrives with the outputs given" in arrived.text()
    assert "its timer fires" in arrived.text()
    timed_out = simulate(orch, timeouts=["sign"])
    assert timed_out.result == "error"
    assert "no event 'signed' came within 14d (on_timeout: error)" in timed_out.text()


def test_simulate_orchestration_takes_timeout(capsys):
    orch = signing_orch()
    orch.refresh_from_db()
    call_command("simulate_orchestration", orch.api_name, "--outputs", 'sign={"ok": true}')
    assert "event signed arrives" in capsys.readouterr().out


def test_the_demo_contract_signature_runs_to_its_end(fx):
    from demo.management.commands.load_demo import DEFINITIONS_DIR
    from orchestration.definition_files import import_document

    import_document((DEFINITIONS_DIR / "contract_signature.yaml").read_text(), activate=True)
    run = orchestration.launch("contract_signature")
    assert statuses(run) == {"signed": "in_progress"}
    orchestration.send_event(run, "signed", data={"signed_by": "Maya"})
    assert statuses(run)["pause"] == "in_progress"
    assert waits.fire_due_timers(now=later(minutes=2)) == 1
    drain(fx)
    run.refresh_from_db()
    assert run.status == "completed", run.error
    assert StepRun.objects.get(run=run, step_name="file_contract").outputs == {"filed": True}
