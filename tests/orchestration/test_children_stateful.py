"""A Hypothesis state machine over a parent run and its sub-orchestration's child runs.

Moves: complete or fail a child's step, cancel the parent or a child, retry the parent's step,
skip the failed step inside a child, and sweep. Invariants: a parent's step always says what its
latest child says (running ↔ in_progress, completed ↔ completed with the child's outputs, error or
canceled ↔ error), and after a sweep no child outlives the step that started it.
(Commit hooks do not run inside the test's transaction, so every cancel of a child here goes
through the sweeper: the slow path is the one tested.)
"""
import pytest
from django.contrib.auth.models import User
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from orchestration import children, engine
from orchestration.models import OrchestrationRun, StepRun
from tests.engine_builders import orchestration, screen_flow, ui

ENDED = ("completed", "canceled")
STEP_FOR_CHILD = {"running": "in_progress", "completed": "completed", "error": "error", "canceled": "error"}


class ChildMachine(RuleBasedStateMachine):
    @initialize()
    def start(self):
        self.run = engine.start_run(PARENT[0])
        self.swept = False

    def _child_steps(self, status):
        return list(StepRun.objects.filter(run__parent_step_run__run=self.run, status=status,
                                           run__status__in=("running", "error")).order_by("id"))

    @rule(data=st.data())
    def complete_a_child_step(self, data):
        open_steps = self._child_steps("in_progress")
        if open_steps:
            engine.complete_step(data.draw(st.sampled_from(open_steps)).pk, {"ok": True})
        self.swept = False

    @rule(data=st.data())
    def fail_a_child_step(self, data):
        open_steps = self._child_steps("in_progress")
        if open_steps:
            engine.fail_step(data.draw(st.sampled_from(open_steps)).pk, "it broke")
        self.swept = False

    @rule()
    def cancel_the_parent(self):
        self.run.refresh_from_db()
        if self.run.status in ("running", "error"):
            engine.cancel_run(self.run.pk, reason="enough")
        self.swept = False

    @rule(data=st.data())
    def cancel_a_child(self, data):
        kids = list(OrchestrationRun.objects.filter(parent_step_run__run=self.run, status__in=("running", "error")))
        if kids:
            engine.cancel_run(data.draw(st.sampled_from(kids)).pk, reason="operator")
        self.swept = False

    @rule()
    def retry_the_parents_step(self):
        try:
            engine.retry_step(self.run.pk, "call")
        except engine.EngineError:
            pass  # not in error
        self.swept = False

    @rule(data=st.data())
    def skip_inside_a_child(self, data):
        failed = list(StepRun.objects.filter(run__parent_step_run__run=self.run, run__status="error",
                                             status="error"))
        if failed:
            step = data.draw(st.sampled_from(failed))
            engine.skip_step(step.run_id, step.step_name, {"ok": False})
        self.swept = False

    @rule()
    def sweep(self):
        children.sweep_orphaned_children()
        self.swept = True

    @invariant()
    def the_step_says_what_its_latest_child_says(self):
        if not hasattr(self, "run"):
            return
        self.run.refresh_from_db()
        step = StepRun.objects.filter(run=self.run, step_name="call").order_by("-id").first()
        latest = OrchestrationRun.objects.filter(parent_step_run=step).order_by("-id").first()
        if self.run.status == "canceled":
            # The parent stopped waiting (its step discontinued, or left in error): the sweeper
            # cancels the child (next invariant).
            assert step.status in ("discontinued", "error")
            return
        assert latest is not None
        assert step.status == STEP_FOR_CHILD[latest.status], (step.status, latest.status, latest.error)
        if step.status == "completed":
            assert step.outputs == latest.outputs
        SEEN.add(step.status)

    @invariant()
    def after_a_sweep_no_child_outlives_its_step(self):
        if not getattr(self, "swept", False):
            return
        for child in OrchestrationRun.objects.filter(parent_step_run__run=self.run).exclude(status__in=ENDED):
            step = child.parent_step_run
            latest = OrchestrationRun.objects.filter(parent_step_run=step).order_by("-id").first()
            assert step.status in ("in_progress", "error"), (child.pk, child.status, step.status)
            assert step.run.status in ("running", "error"), (child.pk, child.status, step.run.status)
            assert latest.pk == child.pk, f"child {child.pk} was replaced by {latest.pk} and still runs"


PARENT = []
SEEN = set()  # the parent step's statuses the invariant saw: the walk must reach each


@pytest.mark.django_db
def test_parent_and_child_runs_agree_whatever_happens_to_them():
    User.objects.create_user("alice")
    form = screen_flow("child_form")
    orchestration([{"name": "work", "steps": [ui("a", form.api_name), ui("b", form.api_name)]}],
                  api_name="sm_kid", outputs={"a": "has(steps.a.outputs.ok) ? steps.a.outputs.ok : false"})
    PARENT[:] = [orchestration([{"name": "one", "steps": [
        {"name": "call", "type": "orchestration", "orchestration": "sm_kid"}]}], api_name="sm_mum")]
    run_state_machine_as_test(
        ChildMachine,
        settings=settings(max_examples=30, stateful_step_count=12, deadline=None, derandomize=True,
                          suppress_health_check=list(HealthCheck)),
    )
    assert SEEN == {"in_progress", "completed", "error"}, SEEN
