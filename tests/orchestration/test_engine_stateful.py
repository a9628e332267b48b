"""A Hypothesis state machine over random orchestrations and completion orders.

Each example builds an orchestration (stages of parallel and ``after``
background steps, decisions that may loop back), starts a run and completes
queued steps in an order Hypothesis picks. Invariants checked after every
move: never two stages in progress; a step never starts before what it waits
for; each stage visit ends once; and at the end the run is completed or in
error, and replaying its events gives the stored statuses.

Wait steps (``orchestration/waits.py``) join in: a stage may hold a timer
wait or an event wait (with or without a timeout); moves also sweep the
timers at a later time, send the event (refused when nothing waits), and
pause or resume the run. Invariant: a timer fires once (one firing event
per fired timer, at most one fired timer per step run, and none fires for a
step that is no longer waiting or while the run is paused).
"""
import itertools
from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, run_state_machine_as_test

import flows
from orchestration import engine, waits
from orchestration.models import OrchestrationRun, RunEvent, StageRun, StepRun, Timer
from orchestration import worker
from orchestration.worker import claim, execute_claimed
from tests.engine_builders import active_flow, orchestration

COINS = []
_ids = itertools.count(1)


@flows.action("test_coin")
def _coin():
    return {"v": COINS.pop(0) if COINS else False}


def deliver(recorder, step_run_id, receipt=None):
    """One message for ``step_run_id`` reaches a worker: claim it and run it (nothing if it was taken),
    or, with a ``receipt`` (a pure flow on PostgreSQL), run it on receipt (``worker.run_on_receipt``)."""
    if receipt is not None:
        with engine.use_effects(recorder):
            return worker.run_on_receipt(step_run_id, receipt, f"t{step_run_id}")
    step_run = claim(step_run_id, f"t{step_run_id}")
    if step_run is not None:
        with engine.use_effects(recorder):
            return execute_claimed(step_run)
    return "skipped"


class Sent:
    def __init__(self):
        self.sent = []
        self.receipts = {}  # step run id -> the receipt of its latest message (None: claimed first)

    def send_step(self, step_run):
        self.sent.append(step_run.pk)
        self.receipts[step_run.pk] = worker.receipt_of(step_run)

    def open_work_item(self, *args):  # pragma: no cover - background steps only
        raise AssertionError("no interactive steps here")

    def close_work_items(self, *args):
        pass


@st.composite
def orchestrations(draw):
    n_stages = draw(st.integers(1, 4))
    path = []
    for s in range(n_stages):
        n_steps = draw(st.integers(0, 4))
        steps = []
        for i in range(n_steps):
            step = {"name": f"s{s}_{i}", "type": "background", "flow": "coin"}
            kind = draw(st.sampled_from(["background"] * 3 + ["timer", "event"]))
            if kind == "timer":
                step = {"name": f"s{s}_{i}", "type": "wait", "for": "1h"}
            elif kind == "event":
                step = {"name": f"s{s}_{i}", "type": "wait", "event": "e",
                        **({"timeout": "2h"} if draw(st.booleans()) else {})}
            if i and draw(st.booleans()):
                deps = draw(st.lists(st.integers(0, i - 1), min_size=1, max_size=i, unique=True))
                step["entry"] = {"after": [f"s{s}_{d}" for d in deps]}
            steps.append(step)
        path.append({"name": f"stage{s}", "steps": steps})
        if steps and draw(st.booleans()):
            back = draw(st.integers(0, s))
            probe = draw(st.sampled_from(steps))["name"]  # a wait's outputs have no v: the default is taken
            path.append({
                "type": "decision", "name": f"d{s}",
                "outcomes": [{"name": "again", "condition": f"steps.{probe}.outputs.v", "goto": f"stage{back}"}],
                "default": f"stage{s + 1}" if s + 1 < n_stages else "end",
            })
    return path


class EngineMachine(RuleBasedStateMachine):
    @initialize(path=orchestrations(), coins=st.lists(st.booleans(), max_size=30))
    def start(self, path, coins):
        COINS[:] = coins
        self.fx = Sent()
        self.orch = orchestration(path, api_name=f"hypo_{next(_ids)}", max_stage_visits=8)
        self.after = {
            step["name"]: set(step.get("entry", {}).get("after", []))
            for element in path for step in element.get("steps", [])
        }
        self.run = engine.start_run(self.orch, effects=self.fx)

    @precondition(lambda self: hasattr(self, "fx") and self.fx.sent)
    @rule(data=st.data())
    def complete_one(self, data):
        index = data.draw(st.integers(0, len(self.fx.sent) - 1))
        deliver(self.fx, self.fx.sent.pop(index))

    @precondition(lambda self: hasattr(self, "fx") and self.fx.sent)
    @rule(data=st.data())
    def duplicate_delivery(self, data):
        """A message delivered twice: the second finds the step claimed or done."""
        step_run_id = data.draw(st.sampled_from(self.fx.sent))
        status = StepRun.objects.get(pk=step_run_id).status
        if status == "completed":
            assert claim(step_run_id, "dup") is None

    @rule()
    def record_saved(self):
        """Anything may happen between completions: the record is saved, conditions are re-checked."""
        if hasattr(self, "run"):
            with engine.use_effects(self.fx):
                engine.record_changed(self.run.pk)

    @rule(hours=st.integers(0, 3))
    def sweep_timers(self, hours):
        """The sweeper runs some hours from now: timers due by then fire (not those of a paused run)."""
        if hasattr(self, "run"):
            paused = OrchestrationRun.objects.get(pk=self.run.pk).status == "paused"
            before = Timer.objects.filter(run=self.run, state="fired").count()
            with engine.use_effects(self.fx):
                waits.fire_due_timers(now=timezone.now() + timedelta(hours=hours, minutes=1))
            if paused:
                assert Timer.objects.filter(run=self.run, state="fired").count() == before

    @rule()
    def send_event(self):
        if hasattr(self, "run"):
            with engine.use_effects(self.fx):
                try:
                    waits.send_event(self.run.pk, "e", {"got": True})
                except waits.NothingWaits:
                    pass

    @rule()
    def pause_or_resume(self):
        if hasattr(self, "run"):
            status = OrchestrationRun.objects.get(pk=self.run.pk).status
            with engine.use_effects(self.fx):
                if status == "running":
                    waits.pause_run(self.run.pk)
                elif status == "paused":
                    waits.resume_run(self.run.pk)

    @invariant()
    def a_timer_fires_once(self):
        if not hasattr(self, "run"):
            return
        fired = list(Timer.objects.filter(run=self.run, state="fired").values_list("step_run_id", flat=True))
        assert len(fired) == len(set(fired))
        firings = RunEvent.objects.filter(run=self.run, kind__in=["timer_fired", "wait_timed_out"]).count()
        assert firings == len(fired)
        assert not StepRun.objects.filter(pk__in=fired, status="in_progress").exists()
        assert not Timer.objects.filter(run=self.run, state="pending").exclude(step_run__status="in_progress").exists()

    @invariant()
    def one_stage_at_a_time(self):
        if hasattr(self, "run"):
            assert StageRun.objects.filter(run=self.run, status="in_progress").count() <= 1

    @invariant()
    def steps_start_after_what_they_wait_for(self):
        if not hasattr(self, "run"):
            return
        for stage_run in StageRun.objects.filter(run=self.run):
            by_name = {s.step_name: s for s in stage_run.step_runs.all()}
            for name, step_run in by_name.items():
                if step_run.status in ("queued", "running", "completed"):
                    for dep in self.after.get(name, ()):
                        assert by_name[dep].status == "completed", (name, dep)

    @invariant()
    def each_stage_visit_ends_once(self):
        if not hasattr(self, "run"):
            return
        ends = RunEvent.objects.filter(run=self.run, kind__in=["stage_completed", "stage_discontinued"])
        seen = set()
        for stage, visit in ends.values_list("stage_name", "data__visit"):
            assert (stage, visit) not in seen
            seen.add((stage, visit))

    def teardown(self):
        if not hasattr(self, "run"):
            return
        # Drain whatever is left, in order, then check the end state.
        with engine.use_effects(self.fx):
            for days in range(1, 101):  # each pass ends at least one step, or the run
                if OrchestrationRun.objects.get(pk=self.run.pk).status == "paused":
                    waits.resume_run(self.run.pk)
                while self.fx.sent:
                    step_run = claim(self.fx.sent.pop(0), "drain")
                    if step_run is not None:
                        execute_claimed(step_run)
                if OrchestrationRun.objects.get(pk=self.run.pk).status != "running":
                    break
                # A day later each pass: a timer fired "tomorrow" may start a wait due an hour after that.
                fired = waits.fire_due_timers(now=timezone.now() + timedelta(days=days))
                try:
                    waits.send_event(self.run.pk, "e")
                except waits.NothingWaits:
                    if not fired and not self.fx.sent:
                        break
        run = OrchestrationRun.objects.get(pk=self.run.pk)
        assert run.status in ("completed", "error"), run.status
        if run.status == "error":
            assert "max_stage_visits" in run.error
        assert replay(run) == stored(run)


STATUS_BY_EVENT = {
    "step_queued": "queued", "step_running": "running", "step_completed": "completed",
    "step_discontinued": "discontinued", "step_error": "error", "step_in_progress": "in_progress",
    "wait_started": "in_progress",
}


def replay(run):
    """Step statuses and the run status rebuilt from the event log alone."""
    visit, steps, status = {}, {}, None
    for kind, stage, step, data in RunEvent.objects.filter(run=run).order_by("id").values_list(
        "kind", "stage_name", "step_name", "data"
    ):
        if kind == "stage_started":
            visit[stage] = data["visit"]
        elif kind in STATUS_BY_EVENT:
            steps[(stage, visit[stage], step)] = STATUS_BY_EVENT[kind]
        elif kind.startswith("run_"):
            status = {"run_started": "running", "run_completed": "completed", "run_error": "error",
                      "run_canceled": "canceled", "run_paused": "paused", "run_resumed": "running"}.get(kind, status)
    return status, steps


def stored(run):
    steps = {
        (s.stage_run.stage_name, s.stage_run.visit, s.step_name): s.status
        for s in StepRun.objects.filter(run=run).select_related("stage_run")
        if s.status != "waiting"
    }
    return run.status, steps


@pytest.mark.django_db
def test_engine_invariants_hold_for_random_orchestrations():
    active_flow(api_name="coin", type="autolaunched", outputs=[{"name": "v", "type": "boolean"}],
                elements=[{"type": "action", "action": "test_coin", "inputs": {}}])
    run_state_machine_as_test(
        EngineMachine,
        settings=settings(max_examples=40, stateful_step_count=20, deadline=None, derandomize=True,
                          suppress_health_check=list(HealthCheck)),
    )


# ---------------------------------------------------------------------------
# Multi-instance steps (orchestration/instances.py)
# ---------------------------------------------------------------------------

def _rule_holds(completion, completed, total):
    if completion == "all":
        return completed >= total
    if completion == "any":
        return completed >= 1
    (kind, value), = completion.items()
    return completed >= value if kind == "at_least" else completed * 100 >= value * total


@st.composite
def multi_instance_steps(draw):
    n = draw(st.integers(0, 6))
    choices = ["all", "any"] + ([{"at_least": draw(st.integers(1, n))}] if n else []) + [
        {"percent": draw(st.sampled_from([1, 34, 50, 100]))}]
    completion = draw(st.sampled_from(choices))
    # "pure" cannot write: on PostgreSQL its instances run on receipt (worker.receipt_of), "coin" is claimed.
    step = {"name": "each", "type": "background", "flow": draw(st.sampled_from(["coin", "pure"])),
            "for_each": str(list(range(n))),
            "completion": completion, "sequential": draw(st.booleans())}
    if completion != "all" and not step["sequential"] and draw(st.booleans()):  # the validator refuses both
        step["remaining"] = "continue"
    return step


class InstancesMachine(RuleBasedStateMachine):
    """Instances complete, are delivered twice and late, in any order. Invariants: the completion rule
    is met exactly once, never missed, and a discontinued instance never completes later."""

    @initialize(step=multi_instance_steps())
    def start(self, step):
        COINS[:] = []
        self.fx = Sent()
        self.step = step
        self.orch = orchestration([{"name": "fan", "steps": [step]},
                                   {"name": "after", "steps": [{"name": "last", "type": "background",
                                                                "flow": "coin"}]}],
                                  api_name=f"hypo_mi_{next(_ids)}")
        self.run = engine.start_run(self.orch, effects=self.fx)
        self.discontinued = set()
        self.done = []
        self.delivered = []  # (step run id, receipt) of every message delivered, for duplicates

    def _deliver(self, step_run_id, receipt):
        self.delivered.append((step_run_id, receipt))
        return deliver(self.fx, step_run_id, receipt)

    @precondition(lambda self: hasattr(self, "fx") and self.fx.sent)
    @rule(data=st.data())
    def complete_one(self, data):
        step_run_id = self.fx.sent.pop(data.draw(st.integers(0, len(self.fx.sent) - 1)))
        self._deliver(step_run_id, self.fx.receipts.get(step_run_id))

    @precondition(lambda self: hasattr(self, "delivered") and self.delivered)
    @rule(data=st.data())
    def duplicate_delivery(self, data):
        """A message delivered again (the broker's redelivery, the sweeper's resend): it completes nothing."""
        step_run_id, receipt = data.draw(st.sampled_from(self.delivered))
        before = StepRun.objects.get(pk=step_run_id)
        assert deliver(self.fx, step_run_id, receipt) == "skipped"
        after = StepRun.objects.get(pk=step_run_id)
        assert (after.status, after.attempts) == (before.status, before.attempts)

    @rule()
    def record_saved(self):
        """Conditions are re-checked between completions: nothing about the step changes."""
        if hasattr(self, "run"):
            with engine.use_effects(self.fx):
                engine.record_changed(self.run.pk)

    @precondition(lambda self: hasattr(self, "discontinued") and self.discontinued)
    @rule(data=st.data())
    def late_completion_of_a_discontinued_instance(self, data):
        """A worker that had a discontinued instance reports it done: ignored."""
        step_run_id = data.draw(st.sampled_from(sorted(self.discontinued)))
        assert worker.complete_background_step(step_run_id, {"v": True}, run_id=self.run.pk, effects=self.fx) is False

    def _rows(self):
        return list(StepRun.objects.filter(run=self.run, step_name="each", instance_index__isnull=False))

    @invariant()
    def discontinued_instances_never_complete_later(self):
        if not hasattr(self, "run"):
            return
        rows = self._rows()
        for row in rows:
            if row.pk in self.discontinued:
                assert row.status == "discontinued", (row.instance_index, row.status)
            elif row.status == "discontinued":
                self.discontinued.add(row.pk)

    @invariant()
    def completion_is_met_exactly_once_and_never_missed(self):
        if not hasattr(self, "run"):
            return
        met = RunEvent.objects.filter(run=self.run, step_name="each", kind="step_exit_condition_met").count()
        step = StepRun.objects.get(run=self.run, step_name="each", instance_index__isnull=True)
        rows = self._rows()
        completed = sum(1 for r in rows if r.status == "completed")
        assert met <= 1
        assert RunEvent.objects.filter(run=self.run, step_name="each", kind="step_completed",
                                       data__instance__isnull=True).count() <= 1
        if step.status == "completed":
            assert met == 1
            assert len(step.outputs) == len(rows)
        else:
            assert step.status == "in_progress"
            assert not _rule_holds(self.step["completion"], completed, len(rows)), (self.step, completed)
        if self.step.get("sequential") and step.status == "in_progress":
            assert sum(1 for r in rows if r.status in ("queued", "running")) <= 1

    def teardown(self):
        if not hasattr(self, "run"):
            return
        while self.fx.sent:
            step_run_id = self.fx.sent.pop(0)
            deliver(self.fx, step_run_id, self.fx.receipts.get(step_run_id))
        run = OrchestrationRun.objects.get(pk=self.run.pk)
        assert run.status == "completed", (run.status, run.error)


@pytest.mark.django_db(transaction=True)  # no test transaction: on PostgreSQL a worker's one-statement completions run
def test_multi_instance_invariants_hold_for_random_completion_orders():
    active_flow(api_name="coin", type="autolaunched", outputs=[{"name": "v", "type": "boolean"}],
                elements=[{"type": "action", "action": "test_coin", "inputs": {}}])
    active_flow(api_name="pure", type="autolaunched", outputs=[{"name": "v", "type": "boolean"}],
                elements=[{"type": "assign", "set": {"v": "true"}}])
    run_state_machine_as_test(
        InstancesMachine,
        settings=settings(max_examples=30, stateful_step_count=12, deadline=None, derandomize=True,
                          suppress_health_check=list(HealthCheck)),
    )
