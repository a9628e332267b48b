"""Multi-instance steps (DESIGN §10): ``for_each`` / ``assignees``, ``completion``, ``sequential``, ``remaining``.

A multi-instance step is stored as rows of its own kind:

- *the step*: its StepRun as for any step (``instance_index`` empty). The
  stage's rules see only this row: it is ``in_progress`` while instances run,
  and it completes, errs or is discontinued as a whole. Its outputs, once
  complete, are the list of its instances' outputs in element order.
- *its instances*: one StepRun per element (``instance_index`` 0, 1, …, the
  element in ``item``). Each is an ordinary step run from the worker's and
  the Work Guide's point of view: it is queued, claimed (or, with a flow
  that cannot write, run on receipt), retried and failed, or has its own
  work item, exactly as a single step would.

The rules, applied by the engine under the run's lock (each is called from
one marked hook in ``engine.py``):

1. The step starts: its list is evaluated; 0 elements complete it at once
   (outputs ``[]``); otherwise one instance row per element is written and
   the instances start (all at once, or only the first when
   ``sequential``). A ``completion`` that can never be met by the list given
   (``at_least`` more than its size) is an error of the step.
2. An instance completes: the step's completion rule is checked. The check
   happens under the run's lock and only while the step is open, so among
   instances finishing at the same moment exactly one meets it. When it is
   met the step completes and its open instances are discontinued (their
   work items canceled, and mailed as such), unless ``remaining: continue``:
   then they go on and what they give is recorded on their own rows only.
   When it is not met, a sequential step starts its next instance (while
   the run is paused, when it resumes: ``resume``); a step
   whose instances have all ended without meeting it (a ``condition`` that
   never held) completes anyway: nothing more can happen.
3. An instance fails (after its own retries): the step is in error too, so
   an operator's retry of the step retries its failed instances only (the
   completed ones keep their outputs, and those that completed while it was
   in error are counted then: ``_recount``), and a skip completes the step.
   A sub-orchestration instance's child put back to work puts the step back
   in progress (``step_resumed``). When the stage ends with the step in
   error (the run canceled, the stage's error path), its open instances are
   discontinued (``stage_closed``).
4. The step ends otherwise (discontinued with its stage, skipped, its exit
   condition, the run canceled): its open instances are discontinued.

Instance rows are not read with the run's other steps (``Transition.step_runs``),
nor for ``steps.X.instances`` unless an expression of the version reads it
(``Plan.instances_read``): a completion reads its own instance and the step's count (``instances_to_go``,
or for a condition rule the counts by status), so a step of 1,000 instances
does not read 1,000 rows per completion; and a worker's completion that
cannot meet a counted rule is one statement without the run lock
(``complete_counted``, at the end of this module).
"""
import math

from django.db import DatabaseError, connection
from django.db.models import Count
from django.utils import timezone

from flows.expressions import ExpressionError, UnstorableValue, evaluate, evaluate_condition, to_json

from . import children
from .models import OPEN_STEP_STATUSES, StepRun, StepStatus, StepType

# A for_each list longer than this is refused with the step's place: every element is a row.
MAX_INSTANCES = 10_000

ENDED = (StepStatus.COMPLETED, StepStatus.DISCONTINUED, StepStatus.CANCELED, StepStatus.ERROR)


def _engine():
    from . import engine

    return engine


# ---------------------------------------------------------------------------
# Finding instance rows
# ---------------------------------------------------------------------------

def is_instance(step_run):
    return step_run.instance_index is not None


def expands(step, step_run):
    """Whether starting ``step_run`` means starting instances (hook in ``_start_step``)."""
    return step.is_multi_instance and step_run.instance_index is None


def _cache(ctx):
    return ctx.instance_runs


def find(ctx, step_run_id):
    """An instance of this run by id (hook in ``_find_step_run``), or None."""
    cache = _cache(ctx)
    if step_run_id not in cache:
        found = StepRun.objects.filter(pk=step_run_id, run=ctx.run, instance_index__isnull=False).first()
        if found is None:
            return None
        cache[found.pk] = found
    return cache[step_run_id]


def instances_of(ctx, parent):
    """Every instance of ``parent`` (the step's own row), in element order, read once per transition."""
    cache = _cache(ctx)
    loaded = getattr(parent, "_instances_loaded", False)
    if not loaded:
        for row in StepRun.objects.filter(stage_run_id=parent.stage_run_id, step_name=parent.step_name,
                                          instance_index__isnull=False).order_by("instance_index"):
            cache.setdefault(row.pk, row)
        parent._instances_loaded = True
    rows = [r for r in cache.values()
            if r.stage_run_id == parent.stage_run_id and r.step_name == parent.step_name]
    return sorted(rows, key=lambda r: r.instance_index)


def parent_of(ctx, instance):
    for step_run in ctx.step_runs:
        if (step_run.stage_run_id == instance.stage_run_id and step_run.step_name == instance.step_name
                and step_run.instance_index is None):
            return step_run
    raise StepRun.DoesNotExist(f"no step row for instance {instance.pk}")


def _counts(ctx, parent):
    """How many instances of ``parent`` are in each status: one aggregate query (or memory when all are read)."""
    ctx.flush()  # rows this transition changed are written before they are counted
    if getattr(parent, "_instances_loaded", False):
        counts = {}
        for row in instances_of(ctx, parent):
            counts[row.status] = counts.get(row.status, 0) + 1
        return counts
    rows = (StepRun.objects.filter(stage_run_id=parent.stage_run_id, step_name=parent.step_name,
                                   instance_index__isnull=False)
            .values_list("status").annotate(n=Count("id")).order_by())
    return dict(rows)


# ---------------------------------------------------------------------------
# What expressions see
# ---------------------------------------------------------------------------

def scope_for(ctx, step_run):
    """The run's scope, plus ``item`` and ``index`` for an instance (hook in ``steps.prepare_step``)."""
    scope = ctx.scope()
    if step_run is not None and step_run.instance_index is not None:
        scope = {**scope, "item": step_run.item, "index": step_run.instance_index}
    return scope


def instance_maps(ctx, parent):
    """``steps.X.instances``: ``{index, item, status, outputs, completed_by}`` per instance, in element order."""
    return [
        {"index": r.instance_index, "item": r.item, "status": r.status,
         "outputs": r.outputs if r.status == StepStatus.COMPLETED else None, "completed_by": r.completed_by}
        for r in instances_of(ctx, parent)
    ]


def add_to_scope(ctx, steps, latest):
    """Give each multi-instance step in ``steps`` (the scope's map) its ``instances`` (hook in ``scope``)."""
    read = ctx.plan.instances_read  # only what an expression reads: the list reads every instance row
    for name, entry in steps.items():
        if name in read:
            entry["instances"] = instance_maps(ctx, latest[name])


def event_data(step_run):
    """What an event of an instance says about it (hooks on the engine's step events)."""
    if step_run.instance_index is None:
        return {}
    return {"instance": step_run.instance_index}


# ---------------------------------------------------------------------------
# Rule 1: the step starts
# ---------------------------------------------------------------------------

def start(ctx, stage_run, step_run, step):
    """Start a multi-instance step: write its instances and start them (or restart the failed ones)."""
    engine = _engine()
    place = ctx.place(step.stage, step.name)
    existing = instances_of(ctx, step_run)
    step_run.status = StepStatus.IN_PROGRESS
    if existing:
        # An operator's retry of the step: its failed instances start again, the others keep what they had.
        for instance in existing:
            if instance.status == StepStatus.ERROR:
                instance.status = StepStatus.WAITING
                instance.error = instance.traceback = ""
                instance.attempts = 0
                instance.ended_at = None
                instance.save(update_fields=["status", "error", "traceback", "attempts", "ended_at"])
        step_run.save(update_fields=["status"])
        if not _recount(ctx, step_run, step):
            _start_ready(ctx, stage_run, step_run, step)
        return
    key = "for_each" if step.for_each else "assignees"
    try:
        elements = evaluate(step.for_each or step.assignees, ctx.scope(), f"{place} › {key}")
        if not isinstance(elements, list):
            raise ExpressionError(f"{place} › {key}: {step.for_each or step.assignees!r} gave "
                                  f"{type(elements).__name__} {elements!r}; expected a list")
        elements = to_json(elements)
    except (ExpressionError, UnstorableValue) as exc:
        engine._step_error(ctx, step_run, str(exc))
        return
    if len(elements) > MAX_INSTANCES:
        engine._step_error(ctx, step_run, f"{place} › {key}: {len(elements):,} elements; a step runs at most "
                                          f"{MAX_INSTANCES:,} instances")
        return
    needed = step.completion.get("at_least") if isinstance(step.completion, dict) else None
    if elements and needed is not None and needed > len(elements):
        engine._step_error(ctx, step_run, f"{place} › completion.at_least: {needed} instances can never complete: "
                                          f"{key} gave {len(elements)}")
        return
    step_run.started_at = ctx.now
    step_run.instances_to_go = _needed(step, len(elements))
    step_run.save(update_fields=["status", "started_at", "instances_to_go"])
    ctx.event(engine.EventKind.STEP_STARTED, step.stage, step.name, instances=len(elements),
              sequential=step.sequential)
    if not elements:
        _complete(ctx, step_run, step, rule="no elements")
        return
    rows = StepRun.objects.bulk_create([
        StepRun(run=ctx.run, stage_run=stage_run, step_name=step.name, type=step.type, created_at=ctx.now,
                instance_index=index, item=element)
        for index, element in enumerate(elements)
    ])
    if any(r.pk is None for r in rows):  # backends without RETURNING on bulk insert
        rows = list(StepRun.objects.filter(stage_run=stage_run, step_name=step.name, instance_index__isnull=False))
    for row in rows:
        _cache(ctx)[row.pk] = row
    step_run._instances_loaded = True
    _start_ready(ctx, stage_run, step_run, step)


def _needed(step, total):
    """How many completions meet a counted rule (all, any, at_least, percent); None for a condition."""
    completion = step.completion or "all"
    if not total or isinstance(completion, dict) and "condition" in completion:
        return None
    if completion == "all":
        return total
    if completion == "any":
        return 1
    (kind, value), = completion.items()
    return value if kind == "at_least" else max(1, math.ceil(value * total / 100))


def _recount(ctx, parent, step):
    """The step is back in progress after an error. Instances that completed meanwhile were not counted
    (rule 2 counts only while it is open): its count starts again from what is done now. True when
    that meets the rule: the step has completed."""
    if parent.instances_to_go is None:
        return False
    rows = instances_of(ctx, parent)
    completed = sum(1 for r in rows if r.status == StepStatus.COMPLETED)
    parent.instances_to_go = _needed(step, len(rows)) - completed
    parent.save(update_fields=["instances_to_go"])
    if parent.instances_to_go > 0:
        return False
    _complete(ctx, parent, step, rule=met(ctx, step, parent, completed, len(rows)) or "counted",
              completed=completed, total=len(rows))
    return True


def _start_ready(ctx, stage_run, parent, step):
    """Start the waiting instances that may start: every one, or for a sequential step the next one.

    An instance run in-process may complete (and meet the rule) while this
    loop runs, so each round checks the step is still open; a sequential
    step's next instance is started here, not from inside the completion
    (which would nest one call per instance).
    """
    engine = _engine()
    starting = ctx.instances_starting
    starting.add(parent.pk)
    try:
        for instance in instances_of(ctx, parent):
            if parent.status != StepStatus.IN_PROGRESS or ctx.run.status != engine.RunStatus.RUNNING:
                return
            if instance.status != StepStatus.WAITING:
                if step.sequential and instance.status in OPEN_STEP_STATUSES:
                    return  # one at a time: this one is still going
                continue
            engine._start_step(ctx, stage_run, instance, step)
            if step.sequential and instance.status in OPEN_STEP_STATUSES:
                return
    finally:
        starting.discard(parent.pk)


# ---------------------------------------------------------------------------
# Rules 2–4: a step or an instance ends
# ---------------------------------------------------------------------------

def step_finished(ctx, step_run, status):
    """Hook at the end of ``_finish_step``: apply the rules for a multi-instance step or an instance."""
    if step_run.instance_index is None:
        step = ctx.plan.steps_by_name.get(step_run.step_name)
        if step is None or not step.is_multi_instance or getattr(step_run, "_met_rule", False):
            return
        # Rule 4: the step ended from outside (skipped, exit condition, its stage or run ended).
        _discontinue_open(ctx, step_run)
        return
    if status != StepStatus.COMPLETED:
        return
    parent = parent_of(ctx, step_run)
    if parent.status != StepStatus.IN_PROGRESS:
        return  # the rule was met before (remaining: continue): recorded on the instance only
    step = ctx.plan.step(parent.step_name)
    if parent.instances_to_go is not None:
        # A counted rule: the count the worker's statements (complete_counted) also keep.
        parent.instances_to_go -= 1
        parent.save(update_fields=["instances_to_go"])
        if parent.instances_to_go <= 0:
            total = len(instances_of(ctx, parent))
            completed = sum(1 for r in instances_of(ctx, parent) if r.status == StepStatus.COMPLETED)
            _complete(ctx, parent, step, rule=met(ctx, step, parent, completed, total) or "counted",
                      completed=completed, total=total)
        elif step.sequential and parent.pk not in ctx.instances_starting:
            _start_ready(ctx, ctx.stage_runs.get(parent.stage_run_id), parent, step)
        return
    counts = _counts(ctx, parent)
    total = sum(counts.values())
    completed = counts.get(StepStatus.COMPLETED, 0)
    try:
        rule = met(ctx, step, parent, completed, total)
    except ExpressionError as exc:
        _engine()._step_error(ctx, parent, str(exc))
        return
    if rule:
        _complete(ctx, parent, step, rule=rule, completed=completed, total=total)
        return
    still_open = sum(n for s, n in counts.items() if s in OPEN_STEP_STATUSES)
    if not still_open and not counts.get(StepStatus.ERROR):
        _complete(ctx, parent, step, rule="every instance ended", completed=completed, total=total)
        return
    if step.sequential and parent.pk not in ctx.instances_starting:
        stage_run = ctx.stage_runs.get(parent.stage_run_id)
        _start_ready(ctx, stage_run, parent, step)


def met(ctx, step, parent, completed, total):
    """The completion rule that holds with ``completed`` of ``total`` instances done, as text; "" when none."""
    completion = step.completion or "all"
    if completion == "all":
        return "all" if completed >= total else ""
    if completion == "any":
        return "any" if completed >= 1 else ""
    (kind, value), = completion.items()
    if kind == "at_least":
        return f"at_least {value}" if completed >= value else ""
    if kind == "percent":
        return f"percent {value}" if completed * 100 >= value * total else ""
    place = ctx.place(step.stage, step.name, "completion.condition")
    # Every instance's entry, from its row read in this transition: each completion is its own
    # transaction (a worker's statement may have changed any row since the last), so the list is not
    # kept from one to the next; a step of N instances reads N rows per completion (docs/definitions.md).
    scope = {**ctx.scope(), "instances": instance_maps(ctx, parent)}
    return "condition" if evaluate_condition(value, scope, place) else ""


def _complete(ctx, parent, step, rule, completed=0, total=0):
    """The rule is met: the step completes with its instances' outputs; the rest are discontinued or go on."""
    engine = _engine()
    rows = instances_of(ctx, parent) if total else []
    outputs = [r.outputs if r.status == StepStatus.COMPLETED else None for r in rows]
    parent._met_rule = True
    # Recorded as the step's exit condition: the completion rule is what ends it.
    ctx.event(engine.EventKind.STEP_EXIT_CONDITION_MET, step.stage, step.name, completion=rule, completed=completed, instances=total,
              remaining="continue" if step.remaining == "continue" else "discontinued")
    if step.remaining != "continue" or step.sequential:
        # A sequential step's later instances never start once the rule is met, even with
        # remaining: continue (refused at activation; a version activated before may have it).
        _discontinue_open(ctx, parent)
    engine._finish_step(ctx, parent, StepStatus.COMPLETED, outputs=outputs)


def _discontinue_open(ctx, parent):
    """Discontinue ``parent``'s open instances; their work items are canceled (and mailed as such)."""
    engine = _engine()
    for instance in instances_of(ctx, parent):
        if instance.status in OPEN_STEP_STATUSES:
            engine._finish_step(ctx, instance, StepStatus.DISCONTINUED, close_items="canceled")


def stage_closed(ctx, step_run, status):
    """Its stage ends (hook in ``_close_stage``) with this multi-instance step in error (rule 4): the
    instances still open are discontinued, and the child of a sub-orchestration instance in error stops
    (nothing will put it back to work for this stage now)."""
    step = ctx.plan.steps_by_name.get(step_run.step_name)
    if step_run.status != StepStatus.ERROR or step is None or not expands(step, step_run):
        return
    _discontinue_open(ctx, step_run)
    for instance in instances_of(ctx, step_run):
        if instance.type == StepType.ORCHESTRATION and instance.status == StepStatus.ERROR:
            children.cancel_children_later(instance, f"its parent's stage ended ({status})")


def discontinue_remaining(ctx):
    """The run is canceled: instances still going after their step completed (``remaining: continue``) stop too."""
    for parent in ctx.step_runs:
        step = ctx.plan.steps_by_name.get(parent.step_name)
        if step is not None and step.remaining == "continue" and parent.status == StepStatus.COMPLETED:
            _discontinue_open(ctx, parent)


def resume(ctx):
    """The run resumes after a pause (hook in ``waits.resume_run``): a sequential step whose instance
    ended meanwhile starts its next one, which ``_start_ready`` held back while the run was paused."""
    for parent in ctx.step_runs:
        step = ctx.plan.steps_by_name.get(parent.step_name)
        if step is not None and step.sequential and expands(step, parent) and parent.status == StepStatus.IN_PROGRESS:
            _start_ready(ctx, ctx.stage_runs.get(parent.stage_run_id), parent, step)


def step_resumed(ctx, step_run):
    """Hook in ``resume_step_of_child``: an instance whose child was put back to work puts its step,
    in error because of it (``step_failed``), back in progress."""
    if step_run.instance_index is None:
        return
    parent = parent_of(ctx, step_run)
    if parent.status != StepStatus.ERROR:
        return
    parent.status = StepStatus.IN_PROGRESS
    parent.error = ""
    parent.ended_at = None
    parent.save(update_fields=["status", "error", "ended_at"])
    _recount(ctx, parent, ctx.plan.step(parent.step_name))


def step_failed(ctx, step_run, error):
    """Hook in ``_step_error``: an instance that fails puts its step in error (rule 3)."""
    if step_run.instance_index is None:
        return
    parent = parent_of(ctx, step_run)
    if parent.status in (StepStatus.COMPLETED, StepStatus.DISCONTINUED, StepStatus.CANCELED):
        return  # a remaining instance after the rule was met: its error is its own
    parent.status = StepStatus.ERROR
    parent.error = f"instance {step_run.instance_index}: {error}"
    parent.ended_at = ctx.now
    parent.save(update_fields=["status", "error", "ended_at"])


# ---------------------------------------------------------------------------
# How the monitor and the API show a step's instances
# ---------------------------------------------------------------------------

def progress_text(step, rows):
    """``"3 of 5 approved"`` for a step whose instance rows are ``rows`` (interactive: approved, else completed)."""
    done = sum(1 for r in rows if r.status == StepStatus.COMPLETED)
    verb = "approved" if step.is_interactive else "completed"
    text = f"{done} of {len(rows)} {verb}"
    stopped = sum(1 for r in rows if r.status == StepStatus.DISCONTINUED)
    if stopped:
        text += f", {stopped} withdrawn"
    return text


def annotate_progress(plan, step_runs):
    """Set ``instance_progress`` on each multi-instance step's own row among ``step_runs`` (every row of a run)."""
    rows = {}
    for r in step_runs:
        if r.instance_index is not None:
            rows.setdefault((r.stage_run_id, r.step_name), []).append(r)
    for r in step_runs:
        step = plan.steps_by_name.get(r.step_name)
        r.instance_progress = ""
        if r.instance_index is None and step is not None and step.is_multi_instance and r.status != StepStatus.WAITING:
            r.instance_progress = progress_text(step, rows.get((r.stage_run_id, r.step_name), []))


# ---------------------------------------------------------------------------
# A worker's instance completion that cannot meet the rule: one statement
# ---------------------------------------------------------------------------

# Like a counted stage's completion (worker._COMPLETE_COUNTED_SQL): an instance
# of a step with a counted rule whose completion leaves the rule unmet changes
# nothing but the instance, the step's count and the journal, so it needs no
# run lock. Locks in the engine's order: the run's row first, in KEY SHARE
# mode (run_lock is read before the instance row is locked: target joins it),
# so the statement waits for a transition holding the run and never holds an
# instance that transition needs; then the instance, then the step's row,
# whose count goes down only while another completion is still needed
# (``instances_to_go > 1``, re-checked under that row's lock: of two racing
# for the last one, one sees 1 and stops). The completion that meets the rule
# is refused here and goes through ``complete_step`` under the lock, with the
# step's completion in the same transaction.
#
# One text for both ways a worker ran the instance. Claimed (``on_receipt``
# false): the instance is open (queued, or running under the claim). Run on
# receipt (``worker.run_on_receipt``): it must still be queued for the
# queueing its message was sent for (``queued_at``), its attempts go up by one
# and take the task's id, and its ``step_running`` event (at the time of
# receipt) is written before its ``step_completed``, as the claim would have.
# The first column says whether the instance was found open (for that
# queueing): a message that finds it not is stale, and nothing is written.
_COMPLETE_INSTANCE_SQL = """
WITH run_lock AS (
    SELECT r.id FROM orchestration_orchestrationrun AS r
      JOIN orchestration_steprun AS q ON q.run_id = r.id
     WHERE q.id = %(id)s
       FOR KEY SHARE OF r
), target AS (
    SELECT s.id, s.stage_run_id, s.step_name FROM orchestration_steprun AS s, run_lock
     WHERE s.id = %(id)s AND s.run_id = run_lock.id AND s.instance_index IS NOT NULL
       AND CASE WHEN %(on_receipt)s THEN s.status = 'queued' AND s.queued_at = %(queued_at)s
                ELSE s.status IN ('queued', 'running') END
       FOR UPDATE OF s
), counted AS (
    UPDATE orchestration_steprun AS p SET instances_to_go = p.instances_to_go - 1
      FROM target
     WHERE p.stage_run_id = target.stage_run_id AND p.step_name = target.step_name
       AND p.instance_index IS NULL AND p.status = 'in_progress' AND p.instances_to_go > 1
 RETURNING p.id
), done AS (
    UPDATE orchestration_steprun AS s
       SET status = 'completed', ended_at = %(now)s, lease_until = NULL, outputs = %(outputs)s::jsonb,
           attempts = s.attempts + CASE WHEN %(on_receipt)s THEN 1 ELSE 0 END,
           task_id = CASE WHEN %(on_receipt)s THEN %(task_id)s ELSE s.task_id END
      FROM counted, target
     WHERE s.id = target.id
 RETURNING s.run_id, s.step_name, s.instance_index, s.stage_run_id, s.attempts
), event AS (
    INSERT INTO orchestration_runevent (run_id, at, actor_id, kind, stage_name, step_name, data)
    SELECT done.run_id, %(received_at)s::timestamptz, NULL::integer, 'step_running', g.stage_name, done.step_name,
           jsonb_build_object('attempt', done.attempts, 'task_id', %(task_id)s::text, 'on_receipt', true,
                              'instance', done.instance_index)
      FROM done JOIN orchestration_stagerun AS g ON g.id = done.stage_run_id
     WHERE %(on_receipt)s
    UNION ALL
    SELECT done.run_id, %(now)s, NULL::integer, 'step_completed', g.stage_name, done.step_name,
           jsonb_build_object('outputs', %(outputs)s::jsonb, 'instance', done.instance_index)
      FROM done JOIN orchestration_stagerun AS g ON g.id = done.stage_run_id
)
SELECT (SELECT count(*) FROM target), (SELECT count(*) FROM done)
"""


def complete_from_worker(step_run, step, outputs, effects=None, receipt=None):
    """A worker's instance of ``step`` finished (hooks in ``worker.execute_claimed`` and
    ``worker.run_on_receipt``). True if it completed now.

    In one statement when that cannot meet the rule (``complete_counted``),
    else under the run's lock. Never in one statement for a sequential step:
    its next instance starts under the lock. Never through the counted-stage
    statement (``worker.complete_background_step``): that matches a step's
    own row only, so for an instance it would be a query for nothing.
    ``receipt`` (a ``worker.Receipt``): the instance ran on receipt, without
    a claim, and completes only while still queued for its message; a
    message the statement finds stale completes nothing and takes no lock
    (as a claim that finds the instance taken).
    """
    if not step.sequential:
        found = complete_counted(step_run, outputs, receipt=receipt)
        if found is not None:
            open_, completed = found
            if completed:
                return True
            if receipt is not None and not open_:
                return False
    return _engine().complete_step(step_run.pk, outputs, source="worker", run_id=step_run.run_id, effects=effects,
                                   receipt=receipt)


def complete_counted(step_run, outputs, receipt=None):
    """A worker's instance finished: complete it in one statement if that cannot meet its step's rule.

    Returns ``(open, completed)``: whether the instance was open (for the
    receipt's queueing, if any) and whether it completed here; None when the
    statement was not tried or failed (another database, a transaction
    already open, an error). Not completed means it must go through the
    engine: a rule this completion meets, a condition rule, a step no
    longer in progress, an instance no longer open.
    """
    if step_run.instance_index is None or connection.vendor != "postgresql" or connection.in_atomic_block:
        return None
    # Imported here: transition imports this module at its top (its scope hook), before it defines this.
    from .transition import to_json_text

    params = {"id": step_run.pk, "now": timezone.now(), "outputs": to_json_text(to_json(outputs or {})),
              "on_receipt": receipt is not None, "queued_at": None, "task_id": "", "received_at": None}
    if receipt is not None:
        params.update(queued_at=receipt.queued_at, task_id=receipt.task_id, received_at=receipt.at)
    try:
        with connection.cursor() as cursor:
            cursor.execute(_COMPLETE_INSTANCE_SQL, params)
            open_, completed = cursor.fetchone()
    except DatabaseError:
        return None
    return bool(open_), completed == 1
