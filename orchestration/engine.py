"""The run engine: every rule of a run, in one module, top to bottom.

Nothing here talks to Celery, HTTP or mail. The engine changes database
state and asks ``effects`` (see ``orchestration/effects.py``) for everything
else: send a background step, open or close work items. The default effects
(the ``BATON_EFFECTS`` setting) defer sends until the transaction commits.

Around it: ``orchestration/transition.py`` holds the transition object (the
run's state read once, the writes batched) and ``lock_run``;
``orchestration/worker.py`` a background step's life between its start
here and its completion here (claim, run, retry, leases, the counted
completion), in both execution modes; ``orchestration/exceptions.py`` the
exceptions, re-exported here.

Transaction and lock model
--------------------------
Each public function below is one *transition*: it runs in one database
transaction that first locks the run's row (``SELECT ... FOR UPDATE``). Two
steps of the same run that finish at the same instant therefore queue up on
that lock; the second sees the state the first left, so a stage is advanced
exactly once. A completion that arrives for a step that is no longer open
(a duplicate delivery, a late worker, a second click) changes nothing and is
recorded as an ``ignored`` event.

The rules (DESIGN §4)
---------------------
1. Stages run one at a time in path order; only steps inside a stage run in
   parallel.
2. When a stage starts, a StepRun is created for each of its steps as
   ``waiting``. Steps whose entry is ``stage_start`` start at once; ``after``
   steps start when every step they name has completed; ``condition`` and
   ``evaluation_flow`` steps start when their condition holds. Conditions are
   checked again after every change in the stage and when the run's record
   is saved.
3. An interactive step opens one work item and is ``in_progress`` until the
   work item is finished (or its exit condition holds). A background step is
   ``queued`` and sent to Celery after commit.
4. A stage completes when every started step has completed and no waiting
   step can still start, or, with an exit condition, when that condition
   holds. Whatever is still open then is ``discontinued`` (work items
   canceled). A waiting ``after`` step can still start while what it waits
   for can still complete; a waiting condition step can start while another
   step of the stage is open (something may still change); once the stage is
   idle, a last check is made and steps whose condition is false are
   discontinued.
5. After a stage, the path goes to its ``next`` or the following element. A
   decision takes the first outcome whose condition holds, else its default.
   ``end`` (or the end of the path) completes the run. Entering stages more
   than ``max_stage_visits`` times in one run is an error (a runaway loop).
6. A step that fails puts its stage and the run in ``error``; transitions of
   a run in error only record state until an operator retries or skips the
   step, or cancels the run.
7. A run keeps the orchestration version it started on.
8. Every transition is recorded as RunEvents (written in one batch).

Round trips
-----------
A background step costs one or two statements on a worker (a pure step's
completion by compare-and-set, else a claim and a completion) plus its share
of the stage's transition; ``docs/performance.md`` has the figures. To keep
it there a transition reads the run's state once (the run row, locked; its
step runs joined with their stage visits) and works in memory from then on:
the current stage, visit numbers and the flows to run come from what was
read, unchanged rows are not written back, and steps started together are
written together. Each place says why it is safe.
"""
import logging

from django.db import transaction

from flows.expressions import ExpressionError, evaluate, evaluate_condition, to_json
from flows.runtime import evaluate_flow

# worker imports this module too (it reports outcomes through complete_step
# and fail_step), and so does children (a child run tells its parent's step);
# only their functions are used here, at call time.
from . import children, instances, journal, worker
from .exceptions import EngineError, StepFailure
from .models import (
    END, OPEN_STEP_STATUSES, EventKind, OrchestrationRun, RunStatus, StageRun, StageStatus, StepRun, StepStatus,
    StepType,
)
from .plan import Plan
from .records import model_label
from .steps import prepare_step
from .transition import Transition, default_effects, insert_stage_visit, lock_run
# Public here as before: the exceptions, and the seam that chooses the effects.
from .transition import use_effects  # noqa: F401

log = logging.getLogger(__name__)

ACTIVE_STEP_STATUSES = (StepStatus.QUEUED, StepStatus.RUNNING, StepStatus.IN_PROGRESS)


def _waits():
    # Wait steps, events, timers and pause (DESIGN §10) live in orchestration/waits.py, which builds on
    # this module: imported when a wait step needs it, so neither module's loading needs the other.
    from . import waits

    return waits


# ---------------------------------------------------------------------------
# Public transitions
# ---------------------------------------------------------------------------

def start_run(orchestration, *, record=None, record_prior=None, inputs=None, user=None, effects=None, parent=None):
    """Create a run of ``orchestration`` (a version) and enter its first element.

    ``parent`` is ``(step_run, depth)`` for a sub-orchestration's child run (``children.start_child``).
    """
    plan = Plan.load(orchestration)
    # No savepoint when a caller's transaction is already open (a pending
    # start, a launch inside a request): nothing here catches a failure to
    # carry on, so the caller's transaction rolls back as a whole anyway.
    with transaction.atomic(savepoint=False):
        run = OrchestrationRun.objects.create(
            orchestration_id=plan.orchestration_id,
            record_model=model_label(record) if record is not None else "",
            record_pk=str(record.pk) if record is not None else "",
            record_prior=to_json(record_prior) if record_prior is not None else None,
            inputs=to_json(inputs or {}),
            started_by=user if getattr(user, "pk", None) else None,
            parent_step_run=parent[0] if parent else None,
            depth=parent[1] if parent else 0,
        )
        ctx = Transition(run=run, plan=plan, effects=effects or default_effects(), actor=user)
        # The parent's transition reads how its child's first transition ended (children.py rule 3).
        ctx.started_by_parent = parent is not None
        if record is not None:
            ctx._record, ctx._record_loaded = record, True
        ctx._step_runs, ctx._stage_runs = [], {}  # a new run has none: nothing to read
        ctx.event(EventKind.RUN_STARTED, version=plan.version, record=f"{run.record_model}:{run.record_pk}" if record else "",
                  inputs=run.inputs)
        _enter(ctx, plan.first)
        _save_run(ctx)
    return run


def _run_of(step_run_id, run_id):
    # A worker knows the run from its claim and passes it: that saves a query
    # and its own commit (it ran outside the transition's transaction).
    if run_id is None:
        run_id = StepRun.objects.filter(pk=step_run_id).values_list("run_id", flat=True).first()
    if run_id is None:
        raise StepRun.DoesNotExist(f"no step run {step_run_id}")
    return run_id


def complete_step(step_run_id, outputs=None, *, actor=None, effects=None, source="flow", run_id=None,
                  receipt=None):
    """The step's flow finished with ``outputs``. Returns True if it completed now.

    Returns False, recording an ``ignored`` event, if the step was no longer
    open (a duplicate or late completion). ``run_id``, when the caller knows
    it, must be the step run's run. ``receipt`` (a ``worker.Receipt``): a pure
    step a worker ran on receipt, without a claim; it completes only while
    still queued for the message that ran it, and its attempt and
    ``step_running`` event are written here.
    """
    run_id = _run_of(step_run_id, run_id)
    with transaction.atomic():
        ctx = lock_run(run_id, effects, actor)
        step_run = _find_step_run(ctx, step_run_id)
        if step_run.status not in OPEN_STEP_STATUSES or step_run.status == StepStatus.WAITING or (
                receipt is not None and not receipt.holds_for(step_run)):
            ctx.event(EventKind.COMPLETION_IGNORED, _stage_name(ctx, step_run), step_run.step_name,
                      status=step_run.status, source=source)
            ctx.flush()
            return False
        also = ()
        if receipt is not None:
            step_run.attempts += 1
            step_run.task_id = receipt.task_id
            ctx.events.append(journal.new_event(
                EventKind.STEP_RUNNING, run=ctx.run, at=receipt.at, stage=_stage_name(ctx, step_run),
                step=step_run.step_name, attempt=step_run.attempts, task_id=receipt.task_id, on_receipt=True,
                **instances.event_data(step_run)))
            also = ("attempts", "task_id")
        _finish_step(ctx, step_run, StepStatus.COMPLETED, outputs=outputs or {}, close_items="completed",
                     also=also)
        _progress(ctx)
        _save_run(ctx)
    return True


def fail_step(step_run_id, error, traceback="", *, effects=None, run_id=None):
    """The step's flow failed for good (retries used up)."""
    run_id = _run_of(step_run_id, run_id)
    with transaction.atomic():
        ctx = lock_run(run_id, effects, None)
        step_run = _find_step_run(ctx, step_run_id)
        if step_run.status not in ACTIVE_STEP_STATUSES:
            ctx.event(EventKind.FAILURE_IGNORED, _stage_name(ctx, step_run), step_run.step_name, status=step_run.status,
                      error=error)
            ctx.flush()
            return False
        _step_error(ctx, step_run, error, traceback)
        _save_run(ctx)
    return True


def resume_step_of_child(step_run_id, child_run_id, *, effects=None):
    """A child run in error was put back to work (its failed step retried inside it): its
    parent's step, in error because of it, waits for the child again and the parent resumes."""
    run_id = _run_of(step_run_id, None)
    with transaction.atomic():
        ctx = lock_run(run_id, effects, None)
        step_run = _find_step_run(ctx, step_run_id)
        stage_run = ctx.stage_runs.get(step_run.stage_run_id)
        if step_run.status != StepStatus.ERROR or stage_run is None or stage_run.status != StageStatus.ERROR:
            return False
        step_run.status = StepStatus.IN_PROGRESS
        step_run.error = step_run.traceback = ""
        step_run.ended_at = None
        step_run.save(update_fields=["status", "error", "traceback", "ended_at"])
        instances.step_resumed(ctx, step_run)  # hook: an instance's step, in error because of it, goes on too
        _resume(ctx, stage_run)
        ctx.event(EventKind.STEP_RETRIED, stage_run.stage_name, step_run.step_name, child_run=child_run_id)
        _save_run(ctx)
    return True


def record_changed(run_id, *, effects=None):
    """The run's record was saved: check pending conditions again."""
    with transaction.atomic():
        ctx = lock_run(run_id, effects, None)
        if ctx.run.status != RunStatus.RUNNING:
            return
        _progress(ctx)
        _save_run(ctx)


def cancel_run(run_id, *, user=None, reason="", effects=None):
    with transaction.atomic():
        ctx = lock_run(run_id, effects, user)
        if ctx.run.status in (RunStatus.COMPLETED, RunStatus.CANCELED):
            raise EngineError(f"run {run_id} is {ctx.run.status} and cannot be canceled")
        for stage_run in StageRun.objects.filter(run=ctx.run, status__in=[StageStatus.IN_PROGRESS, StageStatus.ERROR]):
            _close_stage(ctx, stage_run, StageStatus.DISCONTINUED)
        instances.discontinue_remaining(ctx)  # hook: instances going on after their step (remaining: continue)
        ctx.run.status = RunStatus.CANCELED
        ctx.run.ended_at = ctx.now
        ctx.event(EventKind.RUN_CANCELED, reason=reason)
        _save_run(ctx)


def retry_step(run_id, step_name, *, user=None, effects=None):
    """Start again a step in error (inputs resolved afresh); the run resumes."""
    with transaction.atomic():
        ctx = lock_run(run_id, effects, user)
        stage_run, step_run = _errored_step(ctx, step_name)
        step_run.status = StepStatus.WAITING
        step_run.error = step_run.traceback = ""
        step_run.attempts = 0
        step_run.save(update_fields=["status", "error", "traceback", "attempts"])
        _resume(ctx, stage_run)
        ctx.event(EventKind.STEP_RETRIED, stage_run.stage_name, step_name)
        _start_step(ctx, stage_run, step_run, ctx.plan.step(step_name))
        _progress(ctx)
        _save_run(ctx)


def skip_step(run_id, step_name, outputs=None, *, user=None, effects=None):
    """Complete a step in error (or still open) with the given outputs; the run resumes."""
    with transaction.atomic():
        ctx = lock_run(run_id, effects, user)
        try:
            stage_run, step_run = _errored_step(ctx, step_name)
        except EngineError:
            stage_run = _current_stage_run(ctx)
            step_run = next(
                (s for s in ctx.step_runs_of(stage_run) if s.step_name == step_name and s.status in OPEN_STEP_STATUSES),
                None,
            ) if stage_run else None
            if step_run is None:
                raise
        _resume(ctx, stage_run)
        ctx.event(EventKind.STEP_SKIPPED, stage_run.stage_name, step_name, outputs=outputs or {})
        _finish_step(ctx, step_run, StepStatus.COMPLETED, outputs=outputs or {}, close_items="canceled")
        _progress(ctx)
        _save_run(ctx)


# ---------------------------------------------------------------------------
# Walking the path
# ---------------------------------------------------------------------------

def _enter(ctx, name):
    """Go to element ``name`` and on through decisions and finished stages."""
    # Decisions taken since the last stage. Nothing changes between two
    # decisions, so passing more decisions than the plan has means they go
    # round for ever (activation refuses such a cycle; this guards versions
    # that were never validated). The run errs instead of looping.
    decisions_taken = []
    while True:
        if ctx.run.status != RunStatus.RUNNING:
            return
        if name == END:
            if ctx.plan.outputs and not _evaluate_run_outputs(ctx):
                return
            ctx.run.status = RunStatus.COMPLETED
            ctx.run.ended_at = ctx.now
            ctx.run.current_stage = ""
            ctx.event(EventKind.RUN_COMPLETED)
            return
        element = ctx.plan.by_name.get(name)
        if element is None:
            _run_error(ctx, f"{ctx.place()}: the path names {name!r}, which is not an element of this version")
            return
        if element.is_decision:
            decisions_taken.append(element.name)
            if len(decisions_taken) > len(ctx.plan.elements):
                _run_error(ctx, f"{ctx.place(element.name)}: decisions go round without entering a stage "
                                f"({' → '.join(decisions_taken[:len(ctx.plan.elements) + 1])}); the run stops here")
                return
            try:
                name = _decide(ctx, element)
            except Exception as exc:  # an expression or evaluation flow failed
                _run_error(ctx, f"decision {element.name}: {exc}")
                return
            continue
        if ctx.run.stage_visits >= ctx.plan.max_stage_visits:
            _run_error(ctx, f"{ctx.place(element.name)}: the run entered stages more than "
                            f"{ctx.plan.max_stage_visits} times (max_stage_visits); a loop does not end")
            return
        decisions_taken = []
        stage_run = _open_stage(ctx, element)
        following = _progress_stage(ctx, stage_run, element)
        if following is None:
            return  # the stage waits for steps
        name = following


def _decide(ctx, element):
    scope = ctx.scope()
    for outcome in element.outcomes:
        if outcome.condition and _holds(ctx, outcome.condition, scope, ctx.place(element.name, f"outcome {outcome.name}")):
            ctx.event(EventKind.DECISION_TAKEN, element.name, outcome=outcome.name, goto=outcome.goto)
            return outcome.goto
    goto = element.default_goto or END
    ctx.event(EventKind.DECISION_TAKEN, element.name, outcome="default", goto=goto)
    return goto


def _open_stage(ctx, element):
    if element.steps:
        # Every earlier visit of a stage with steps was read with its step runs.
        visit = 1 + sum(1 for sr in ctx.stage_runs.values() if sr.stage_name == element.name)
    else:
        visit = StageRun.objects.filter(run=ctx.run, stage_name=element.name).count() + 1
    stage_run, step_runs = insert_stage_visit(
        ctx.run, element.name, element.position, visit, ctx.now,
        len(element.steps) if worker.counts_completions(element, ctx.runs_steps_in_process) else None,
        [(s.name, s.type) for s in element.steps], closing=ctx.take_closing(),
    )
    ctx.add_stage_run(stage_run)
    ctx.run.stage_visits += 1
    ctx.run.current_stage = element.name
    ctx.add_step_runs(step_runs)
    ctx.event(EventKind.STAGE_STARTED, element.name, visit=visit)
    return stage_run


def _current_stage_run(ctx):
    return ctx.stage_run_in(StageStatus.IN_PROGRESS)


def _progress(ctx):
    """Something changed: move the current stage on, and the path after it."""
    if ctx.run.status != RunStatus.RUNNING:
        return
    stage_run = _current_stage_run(ctx)
    if stage_run is None:
        return
    element = ctx.plan.element(stage_run.stage_name)
    following = _progress_stage(ctx, stage_run, element)
    if following is not None:
        _enter(ctx, following)


def _progress_stage(ctx, stage_run, element):
    """Start what can start, apply exit conditions. Returns where to go next, or None to wait."""
    while True:
        changed = False
        scope = ctx.scope()
        step_runs = {s.step_name: s for s in ctx.step_runs_of(stage_run)}
        any_open = any(s.status in ACTIVE_STEP_STATUSES for s in step_runs.values())

        # Step exit conditions: an open step whose exit condition holds completes now.
        for step in element.steps:
            step_run = step_runs[step.name]
            if step.exit_condition and step_run.status in ACTIVE_STEP_STATUSES:
                try:
                    done = _holds(ctx, step.exit_condition, scope, ctx.place(element.name, step.name, "exit"))
                except Exception as exc:
                    _step_error(ctx, step_run, str(exc))
                    return None
                if done:
                    ctx.event(EventKind.STEP_EXIT_CONDITION_MET, element.name, step.name)
                    _finish_step(ctx, step_run, StepStatus.COMPLETED, outputs=step_run.outputs, close_items="canceled")
                    changed = True
        if changed:
            continue

        # Entry: start every waiting step whose entry is satisfied.
        for step in element.steps:
            step_run = step_runs[step.name]
            if step_run.status != StepStatus.WAITING:
                continue
            try:
                ready = _entry_ready(ctx, step, step_runs, scope, element)
            except Exception as exc:
                _step_error(ctx, step_run, str(exc))
                return None
            if ready:
                _start_step(ctx, stage_run, step_run, step)
                if ctx.run.status != RunStatus.RUNNING or stage_run.status != StageStatus.IN_PROGRESS:
                    return None  # stopped in error, or left by the stage's error path
                changed = True
        if changed:
            continue

        # Stage exit.
        if element.exit_condition:
            try:
                done = _holds(ctx, element.exit_condition, scope, ctx.place(element.name, "exit"))
            except Exception as exc:
                _stage_error(ctx, stage_run, str(exc))
                return None
            if done:
                ctx.event(EventKind.STAGE_EXIT_CONDITION_MET, element.name)
                return _complete_stage(ctx, stage_run, element)
            return None
        if any_open:
            return None
        # Idle: every step that could start has started (the loop above), so
        # whatever still waits never will.
        return _complete_stage(ctx, stage_run, element)


def _entry_ready(ctx, step, step_runs, scope, element):
    if step.entry == "stage_start":
        return True
    if step.entry == "after":
        return all(step_runs[name].status == StepStatus.COMPLETED for name in step.after if name in step_runs)
    if step.entry_condition:
        return _holds(ctx, step.entry_condition, scope, ctx.place(element.name, step.name, "entry"))
    return True


def _complete_stage(ctx, stage_run, element):
    _close_stage(ctx, stage_run, StageStatus.COMPLETED)
    return ctx.plan.following(element)


def _close_stage(ctx, stage_run, status, **about):
    """End a stage: whatever is still open is discontinued, its work items canceled."""
    for step_run in ctx.step_runs_of(stage_run):
        if step_run.status in OPEN_STEP_STATUSES:
            _finish_step(ctx, step_run, StepStatus.DISCONTINUED, close_items="canceled")
        elif step_run.type == StepType.ORCHESTRATION and step_run.status == StepStatus.ERROR:
            # Its child (in error) could still be put back to work inside: nothing waits for it now.
            children.cancel_children_later(step_run, f"its parent's stage ended ({status})")
        instances.stage_closed(ctx, step_run, status)  # hook: a multi-instance step in error stops its instances
    stage_run.status = status
    stage_run.ended_at = ctx.now
    ctx.close_later(stage_run, ["status", "ended_at", *ctx.close_count(stage_run)])  # with the next visit's insert
    ctx.event(EventKind(f"stage_{status}"), stage_run.stage_name, visit=stage_run.visit, **about)


# ---------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------

def _start_step(ctx, stage_run, step_run, step):
    if step.is_wait:  # hook: wait steps start in orchestration/waits.py
        return _waits().start_wait(ctx, stage_run, step_run, step)
    if instances.expands(step, step_run):  # hook: a multi-instance step starts its instances
        instances.start(ctx, stage_run, step_run, step)
        return
    try:
        prepared = prepare_step(ctx, step, step_run)
    except (StepFailure, ExpressionError) as exc:
        _step_error(ctx, step_run, str(exc))
        return
    step_run.inputs = prepared.inputs
    step_run.flow_id = prepared.flow_id
    step_run.started_at = ctx.now
    step_run.excluded_users = prepared.excluded_users
    if step.is_child_orchestration:
        _start_child(ctx, stage_run, step_run, step)
    elif step.is_interactive:
        try:
            ctx.effects.open_work_item(ctx, step_run, step, prepared)
        except StepFailure as exc:
            _step_error(ctx, step_run, str(exc))
            return
        step_run.status = StepStatus.IN_PROGRESS
        step_run.save(update_fields=["inputs", "flow", "started_at", "status", "excluded_users"])
        ctx.event(EventKind.STEP_STARTED, stage_run.stage_name, step.name, assignee=prepared.assignee,
                  **instances.event_data(step_run))
    elif ctx.runs_steps_in_process:
        # The flow runs now, inside this transition (orchestration/worker.py);
        # its outcome is written with the rest of the transition.
        outcome = worker.run_in_transition(ctx, step_run, step)
        if outcome.failed:
            step_run.save(update_fields=["inputs", "flow", "started_at", "attempts"])
            _step_error(ctx, step_run, outcome.error, outcome.traceback)
        else:
            _finish_step(ctx, step_run, StepStatus.COMPLETED, outputs=outcome.outputs,
                         also=["inputs", "flow", "started_at", "attempts"])
    else:
        step_run.status = StepStatus.QUEUED
        step_run.queued_at = ctx.now
        step_run.lease_until = worker.queued_lease(ctx.now)
        step_run.timeout_seconds = step.timeout_seconds
        step_run.run = ctx.run  # the message of a step run on receipt names the run's record (worker.receipt_of)
        # Written with the stage's other starting steps at the end of the
        # transition; the message itself leaves after commit.
        ctx.save_later(step_run, ["inputs", "flow", "started_at", "status", "queued_at", "lease_until", "timeout_seconds"])
        ctx.event(EventKind.STEP_QUEUED, stage_run.stage_name, step.name, **instances.event_data(step_run))
        ctx.effects.send_step(step_run)


def _start_child(ctx, stage_run, step_run, step):
    """Start a sub-orchestration step's child run; it waits for the child (children.py)."""
    step_run.status = StepStatus.IN_PROGRESS
    step_run.save(update_fields=["inputs", "flow", "started_at", "status"])
    try:
        child = children.start_child(ctx, step, step_run, step_run.inputs)
    except children.ChildStartFailed as exc:
        _step_error(ctx, step_run, str(exc))
        return
    ctx.event(EventKind.STEP_STARTED, stage_run.stage_name, step.name, child_run=child.pk)
    # A retry starts a new child: the one it replaces stops (after commit: children.py rule 4).
    children.cancel_children_later(step_run, "replaced by a retry of its parent's step", keep=child.pk)
    outcome = children.outcome_for_parent(child)
    if outcome is None:
        return  # the child waits for work: it tells this step when it ends
    status, outputs, error = outcome
    if status == StepStatus.COMPLETED:
        _finish_step(ctx, step_run, StepStatus.COMPLETED, outputs=outputs)
    else:
        _step_error(ctx, step_run, error)


def _evaluate_run_outputs(ctx):
    """The orchestration's declared ``outputs``, evaluated as the run completes. False on an error."""
    scope = ctx.scope()
    outputs = {}
    for name, expression in ctx.plan.outputs.items():
        place = ctx.place(f"outputs.{name}")
        try:
            outputs[name] = to_json(evaluate(expression, scope, place))
        except Exception as exc:  # an expression that fails stops the run where it stands, named
            _run_error(ctx, f"{place}: {exc}")
            return False
    ctx.run.outputs = outputs
    return True


def _finish_step(ctx, step_run, status, outputs=None, close_items=None, also=()):
    step_run.status = status
    step_run.ended_at = ctx.now
    step_run.lease_until = None
    fields = ["status", "ended_at", "lease_until", *also]
    if close_items == "completed" and step_run.type == "interactive" and getattr(ctx.actor, "pk", None):
        step_run.completed_by = ctx.actor.get_username()  # steps.X.completed_by
        fields.append("completed_by")
    if outputs is not None:
        step_run.outputs = to_json(outputs)
        fields.append("outputs")
    # Written when the transition ends, with its other writes (one statement
    # on PostgreSQL; steps that end alike share one UPDATE). Nothing in the
    # transition reads a step's row back before then.
    ctx.save_later(step_run, fields)
    if step_run.type == "wait":  # hook: an ended wait step's timers never fire (orchestration/waits.py)
        _waits().step_closed(ctx, step_run)
    if close_items and step_run.type == "interactive":
        ctx.effects.close_work_items(ctx, [step_run], "completed" if close_items == "completed" else "canceled")
    if step_run.type == StepType.ORCHESTRATION:
        # Completed by its child: nothing left to stop. Skipped, discontinued, canceled: its child stops.
        children.cancel_children_later(step_run, f"its parent's step ended ({status})")
    ctx.event(EventKind(f"step_{status}"), _stage_name(ctx, step_run), step_run.step_name,
              **({"outputs": step_run.outputs} if status == StepStatus.COMPLETED else {}),
              **instances.event_data(step_run))
    instances.step_finished(ctx, step_run, status)  # hook: completion rule of a multi-instance step


def _step_error(ctx, step_run, error, traceback=""):
    step_run.status = StepStatus.ERROR
    step_run.error = error
    step_run.traceback = traceback
    step_run.ended_at = ctx.now
    step_run.lease_until = None
    step_run.save(update_fields=["status", "error", "traceback", "ended_at", "lease_until"])
    ctx.event(EventKind.STEP_ERROR, _stage_name(ctx, step_run), step_run.step_name, error=error,
              **instances.event_data(step_run))
    instances.step_failed(ctx, step_run, error)  # hook: an instance's error is its step's
    stage_run = ctx.stage_runs.get(step_run.stage_run_id) or StageRun.objects.get(pk=step_run.stage_run_id)
    _stage_error(ctx, stage_run, f"step {step_run.step_name}: {error}")


def _stage_error(ctx, stage_run, error):
    element = ctx.plan.by_name.get(stage_run.stage_name)
    if element is not None and element.on_error_goto and ctx.run.status == RunStatus.RUNNING \
            and stage_run.status == StageStatus.IN_PROGRESS:
        # The stage's error path (DESIGN §10): the failed step stays in error, the
        # stage is discontinued with what was still open in it, and the run goes on
        # at the target (steps.X.error readable there). Not `error`: nothing in it
        # can be retried, and a stage in error is one the run stopped at.
        _close_stage(ctx, stage_run, StageStatus.DISCONTINUED, error=error, goto=element.on_error_goto)
        _enter(ctx, element.on_error_goto)
        return
    if stage_run.status != StageStatus.ERROR:
        stage_run.status = StageStatus.ERROR
        stage_run.save(update_fields=["status"])
        ctx.event(EventKind.STAGE_ERROR, stage_run.stage_name, error=error)
    _run_error(ctx, error)


def _run_error(ctx, error):
    if ctx.run.status in (RunStatus.RUNNING, RunStatus.PAUSED):  # a failure while paused is an error too
        ctx.run.status = RunStatus.ERROR
        ctx.run.error = error
        ctx.event(EventKind.RUN_ERROR, error=error)


def _errored_step(ctx, step_name):
    if ctx.run.status in (RunStatus.COMPLETED, RunStatus.CANCELED):
        raise EngineError(f"run {ctx.run.pk} is {ctx.run.status}")
    if ctx.run.status != RunStatus.ERROR:
        # A stage left by its error path is in error too, but the run went on: nothing to retry there.
        raise EngineError(f"run {ctx.run.pk} has no stage in error")
    stage_run = ctx.stage_run_in(StageStatus.ERROR)
    if stage_run is None:
        raise EngineError(f"run {ctx.run.pk} has no stage in error")
    for step_run in ctx.step_runs_of(stage_run):
        if step_run.step_name == step_name and step_run.status == StepStatus.ERROR:
            return stage_run, step_run
    raise EngineError(f"step {step_name!r} of run {ctx.run.pk} is not in error")


def _resume(ctx, stage_run):
    """Put an errored stage and run back to work (after retry/skip)."""
    if stage_run.status == StageStatus.ERROR:
        stage_run.status = StageStatus.IN_PROGRESS
        stage_run.save(update_fields=["status"])
    if ctx.run.status == RunStatus.ERROR:
        ctx.run.status = RunStatus.RUNNING
        ctx.run.error = ""
        ctx.event(EventKind.RUN_RESUMED)


def _find_step_run(ctx, step_run_id):
    for step_run in ctx.step_runs:
        if step_run.pk == step_run_id:
            return step_run
    found = instances.find(ctx, step_run_id)  # hook: an instance of a multi-instance step
    if found is not None:
        return found
    raise StepRun.DoesNotExist(f"no step run {step_run_id} in run {ctx.run.pk}")


def _stage_name(ctx, step_run):
    return ctx.plan.step(step_run.step_name).stage if step_run.step_name in ctx.plan.steps_by_name else ""


def _holds(ctx, condition, scope, place):
    """Whether a condition (expression or evaluation flow) holds."""
    if condition.expression:
        return evaluate_condition(condition.expression, scope, place)
    inputs = {name: evaluate(expr, scope, f"{place} › inputs.{name}") for name, expr in condition.flow_inputs.items()}
    return bool(evaluate_flow(condition.flow, inputs))


def _save_run(ctx):
    # Most completions change only the step (its siblings are still open):
    # the run's row is written only when one of its own fields changed.
    was = ctx._saved_run[0]
    fields = ()
    if ctx._run_fields() != ctx._saved_run:
        fields = ["status", "ended_at", "current_stage", "stage_visits", "error"]
        if ctx.run.status == RunStatus.COMPLETED and ctx.plan.outputs:
            fields.append("outputs")
        ctx._saved_run = ctx._run_fields()
    ctx.flush(run_fields=fields)  # with the transition's other writes: one statement (transition.write_rows)
    if ctx.run.parent_step_run_id is not None and ctx.run.status != was:
        children.tell_parent(ctx, was)
