"""A background step's life: claim → run → retry → complete, in both execution modes.

The engine decides *that* a background step starts (``engine._start_step``)
and what its end means for the run (``engine.complete_step``,
``engine.fail_step``). Everything in between lives here, once:

* **On a worker** (``BATON_STEP_EXECUTION=worker``, the default). The step is
  ``queued`` with a queued lease and its message (only the StepRun id) is
  published after commit (``send_step_message``). The Celery task
  (``tasks.run_step``) claims it by a compare-and-set update (``claim``:
  ``queued`` → ``running``, attempts + 1, the running lease); a duplicate
  message finds it claimed and does nothing. The flow runs outside any lock
  (``execute_claimed``); a failure is retried after ``retry_delay``
  (``schedule_retry``: back to ``queued``, the message sent again with a
  countdown) or reported to the engine for good; outputs go to
  ``complete_background_step``. On PostgreSQL a step whose flow cannot
  write skips the claim: its message carries a receipt (``receipt_of``) and
  the worker runs it at once and completes it by compare-and-set from
  ``queued`` (``run_on_receipt``; see "On receipt" below).
* **In process** (``BATON_STEP_EXECUTION=in_process``). The engine calls
  ``run_in_transition`` inside the transition that starts the step: a local
  claim (``running``, attempts + 1, its event), then the same attempt and the
  same retry policy with no backoff, and the engine writes the outcome with
  the rest of the transition.

One lease rule (``queued_lease``, ``running_lease``): a queued step waits at
most ``BATON_QUEUED_LEASE`` seconds (after its retry delay) for a worker; a
running one at most its timeout (copied on the row when it was queued, so no
claim reads the definition for it) plus ``BATON_LEASE_MARGIN``. The sweeper
(``sweep_stuck_steps``) re-sends whatever is queued or running past its
lease. Delivery is therefore at least once: a flow with side effects outside
Baton's database should be idempotent.

Lock order, everywhere here as in the engine: the run's row before the
step's. A change to a step outside an engine transition writes an event,
whose foreign key takes the run in KEY SHARE mode; taken after the step's
row, that waited for a transition holding the run while the transition
waited for the step (a deadlock), so it is taken first (``hold_run_for_event``
and the ``run_lock`` parts of the SQL below).
"""
import functools
import logging
import traceback
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import DatabaseError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from flows.compiled import FlowSpec
from flows.expressions import to_json
from flows.runtime import run_flow

# engine and tasks import this module too: the engine for in-process steps
# and the leases, the tasks to run a claimed step. Only their functions are
# used here, at call time, so either module may be imported first.
from . import engine, instances, journal, tasks
from .conf import baton_settings
from .models import EventKind, OrchestrationRun, StepRun, StepStatus
from .plan import Plan
from .transition import to_json_text

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------
# The lease rule and the retry policy
# ---------------------------------------------------------------------------

def queued_lease(now, delay=0):
    """Until when a queued step (sent, or to be sent in ``delay`` seconds) waits before the sweeper re-sends it."""
    return now + timedelta(seconds=delay + baton_settings.BATON_QUEUED_LEASE)


def running_lease(now, timeout_seconds):
    """Until when a claimed step may run before the sweeper takes it back: its timeout plus the margin.

    ``_CLAIM_SQL`` computes the same in its statement (``make_interval``).
    """
    return now + timedelta(seconds=timeout_seconds + baton_settings.BATON_LEASE_MARGIN)


def retry_delay(step_run, step, *, in_process=False):
    """Seconds before the next attempt of ``step_run``, whose latest attempt failed; None when none is left.

    A step is tried ``retries + 1`` times. On a worker the attempts are
    spaced by exponential backoff (2, 4, 8... seconds with the default base,
    at most 5 minutes); in process they follow at once, since nothing would
    wake the run up later.
    """
    if step_run.attempts > step.retries:
        return None
    if in_process:
        return 0
    return min(baton_settings.BATON_RETRY_BACKOFF ** max(step_run.attempts, 1), 300)


def counts_completions(element, in_process):
    """Whether a new visit of ``element`` keeps ``StageRun.open_steps`` (a counted stage).

    Decided once, when the visit opens, from the stage's shape
    (``ElementPlan.counts_down`` in plan.py) and where its completions come
    from: workers on PostgreSQL, where ``complete_background_step`` is one
    statement. In-process steps end inside the transition that starts them,
    so there is nothing to count. Everything later reads the stored column:
    a NULL ``open_steps`` means "not counted".
    """
    return element.counts_down and connection.vendor == "postgresql" and not in_process


# ---------------------------------------------------------------------------
# One attempt (both modes)
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Attempt:
    """What one run of a step's flow gave: its outputs, or the error."""

    outputs: dict | None = None
    error: str = ""
    traceback: str = ""

    @property
    def failed(self):
        return self.outputs is None


def attempt(flow, step_run, record, *, savepoint=False):
    """Run the claimed step's flow once with its inputs; never raises for the flow's own failure.

    ``savepoint``: run the flow in a savepoint, so that a failed attempt
    inside an open transaction (in process) leaves nothing behind.
    """
    try:
        if savepoint:
            with transaction.atomic():
                outputs = run_flow(flow, step_run.inputs, record=record)
        else:
            outputs = run_flow(flow, step_run.inputs, record=record)
    except Exception as exc:  # the flow failed: the caller retries or gives up
        return Attempt(error=str(exc) or exc.__class__.__name__, traceback=traceback.format_exc())
    return Attempt(outputs=outputs)


# ---------------------------------------------------------------------------
# In process: a local claim, then the same attempts
# ---------------------------------------------------------------------------

def run_in_transition(ctx, step_run, step):
    """Run a background step's flow now, inside the engine's transition ``ctx``. Returns the last ``Attempt``.

    What a worker does after its claim, without the message and the two
    transactions: each attempt is a local claim (``running``, attempts + 1,
    the ``step_running`` event) and a run of the flow; a failure is retried
    at once while ``retry_delay`` allows. A flow that can write
    (``FlowSpec.may_write``) runs in a savepoint, so a failed attempt leaves
    nothing behind; a flow that only computes needs none. The run's row
    stays locked while the flow runs: this mode is for short flows (and
    tests, and small installations without a worker); long ones belong on a
    worker. The engine writes the outcome with the rest of the transition.
    """
    flow = FlowSpec.load(step_run.flow_id)
    step_run.status = StepStatus.RUNNING
    while True:
        step_run.attempts += 1
        ctx.event(EventKind.STEP_RUNNING, step.stage, step.name, attempt=step_run.attempts, in_process=True)
        outcome = attempt(flow, step_run, ctx.record, savepoint=flow.may_write)
        if not outcome.failed:
            if flow.may_write:
                ctx.forget_record()  # the flow may have changed the run's record: read it again
            return outcome
        delay = retry_delay(step_run, step, in_process=True)
        if delay is None:
            return outcome
        ctx.event(EventKind.STEP_RETRY_SCHEDULED, step.stage, step.name, attempt=step_run.attempts,
                  error=outcome.error, in_seconds=delay)


# ---------------------------------------------------------------------------
# On a worker: send, claim, run, retry, complete
# ---------------------------------------------------------------------------

def send_step_message(step_run_id, countdown=None, receipt=None):
    """Publish the Celery message for a queued step. A broker outage is logged, not raised:
    the step stays queued in the database and the sweeper sends it again.

    ``receipt`` (``receipt_of``): what the worker needs to run a pure step
    on receipt, sent in the message; without it the worker claims first.

    A message that was published sits in the broker's queue, maybe behind a
    long backlog, so its step keeps the long queued lease and the sweeper
    leaves it alone. A message that could *not* be published is known to be
    missing: its lease ends now, so the very next sweep re-sends it.
    """
    try:
        options = {"countdown": countdown} if countdown else {}
        args = (step_run_id,) if receipt is None else (step_run_id, receipt)
        # The message's argsrepr/kwargsrepr headers (shown by monitoring tools) are given, not made:
        # Celery's saferepr of a receipt took 240-370 µs per message, of an id 20-40 µs, of the empty
        # kwargs 10-50 µs (measured at a load average of 9-10 on two cores; docs/performance.md).
        result = tasks.run_step.apply_async(args, argsrepr=f"({step_run_id},)", kwargsrepr="{}", **options)
        return result.id
    except Exception as exc:  # kombu raises OperationalError and friends when the broker is away
        log.warning("could not send step %s to the broker (%s); the sweeper will resend it", step_run_id, exc)
        _expire_lease(step_run_id)
        return None


def _expire_lease(step_run_id):
    try:
        StepRun.objects.filter(pk=step_run_id, status=StepStatus.QUEUED).update(lease_until=timezone.now())
    except Exception:  # the database may be away too; the lease then simply runs its course
        log.exception("could not mark step %s for an early resend", step_run_id)


def claim(step_run_id, task_id="", redelivered=False):
    """Compare-and-set ``queued`` → ``running``. Returns the StepRun, or None if someone else has it.

    On PostgreSQL the usual case, a queued step, is one statement
    (``_claim_queued``); a redelivered message that may take its own running
    step back, and other databases, take ``_claim_locked``. Both set the
    running lease from the timeout copied on the row (``running_lease``).
    """
    if connection.vendor == "postgresql":
        step_run = _claim_queued(step_run_id, task_id)
        if step_run is not None or not (task_id and redelivered):
            return step_run
    return _claim_locked(step_run_id, task_id, redelivered)


# One round trip and one commit (autocommit): the conditional update, the
# ``step_running`` event and the run's fields the worker needs. The lease is
# ``running_lease`` written in SQL, from the step's timeout copied on the row
# when it was queued. Data-modifying CTEs are PostgreSQL's; the event is
# written only if the update matched (it reads the update's RETURNING).
#
# Locks follow the engine's order, the run's row before the step's: the
# update joins ``run_lock``, which holds the run in KEY SHARE mode (the mode
# the event's foreign key needs anyway; it waits for a transition holding
# the run and for no other claim). Taken by the event at the end, after the
# step's row, it deadlocked with ``cancel_run``, which holds the run and
# then updates the steps.
_CLAIM_SQL = """
WITH run_lock AS (
    SELECT r.id FROM orchestration_orchestrationrun AS r
      JOIN orchestration_steprun AS q ON q.run_id = r.id
     WHERE q.id = %(id)s
       FOR KEY SHARE OF r
), claimed AS (
    UPDATE orchestration_steprun AS s
       SET status = 'running', task_id = %(task_id)s, attempts = s.attempts + 1,
           lease_until = %(now)s + make_interval(secs => s.timeout_seconds + %(margin)s)
      FROM run_lock
     WHERE s.id = %(id)s AND s.run_id = run_lock.id AND s.status = 'queued'
 RETURNING {returning}
), event AS (
    INSERT INTO orchestration_runevent (run_id, at, actor_id, kind, stage_name, step_name, data)
    SELECT c.run_id, %(now)s, NULL, %(kind)s, st.stage_name, c.step_name,
           jsonb_strip_nulls(jsonb_build_object('attempt', c.attempts, 'task_id', %(task_id)s::text,
                                                'redelivered', false, 'instance', c.instance_index))
      FROM claimed AS c JOIN orchestration_stagerun AS st ON st.id = c.stage_run_id
)
SELECT {claimed}, r.orchestration_id AS run_orchestration_id, r.record_model AS run_record_model,
       r.record_pk AS run_record_pk
  FROM claimed AS c JOIN orchestration_orchestrationrun AS r ON r.id = c.run_id
"""


@functools.cache
def _claim_sql():
    """``_CLAIM_SQL`` naming the step's columns, from the model.

    Not ``s.*``: PostgreSQL prepares the statements a connection repeats
    (``config/database.py``), and a prepared ``*`` that a migration widened
    fails with "cached plan must not change result type" until its
    connection closes.
    """
    columns = [connection.ops.quote_name(f.column) for f in StepRun._meta.concrete_fields]
    return _CLAIM_SQL.format(returning=", ".join(f"s.{c}" for c in columns),
                             claimed=", ".join(f"c.{c}" for c in columns))


def _claim_queued(step_run_id, task_id):
    params = {"id": step_run_id, "task_id": task_id or "", "now": timezone.now(),
              "margin": baton_settings.BATON_LEASE_MARGIN, "kind": EventKind.STEP_RUNNING.value}
    # A plain cursor, not ``StepRun.objects.raw``: a RawQuerySet runs its SQL
    # again to learn the columns, and this SQL changes rows.
    with connection.cursor() as cursor:
        cursor.execute(_claim_sql(), params)
        row = cursor.fetchone()
        if row is None:
            return None
        names = [column.name for column in cursor.description]
    values = dict(zip(names, row))
    fields = StepRun._meta.concrete_fields
    step_run = StepRun.from_db("default", [f.attname for f in fields], [_from_db(f, values[f.attname]) for f in fields])
    # The run as far as the worker needs it (its definition and record);
    # anything else is read if asked for.
    step_run.run = OrchestrationRun.from_db(
        "default", ["id", "orchestration_id", "record_model", "record_pk"],
        [step_run.run_id, values["run_orchestration_id"], values["run_record_model"], values["run_record_pk"]],
    )
    return step_run


def _from_db(field, value):
    """A column's value as the ORM would give it (JSON text parsed, and so on)."""
    if hasattr(field, "from_db_value"):
        return field.from_db_value(value, None, connection)
    return value


def _claim_locked(step_run_id, task_id="", redelivered=False):
    """Compare-and-set ``queued`` → ``running`` under the step's row lock; the portable claim.

    A message redelivered by the broker after its worker died (``redelivered``
    in its delivery info) finds the step ``running`` under its own task id
    and takes it back. A second copy of the same message that was merely
    published again is not redelivered: it finds the step claimed and does
    nothing, so the flow runs once.

    Three statements: the step is read with its run and locked (its row
    only), then updated under the condition that it is still claimable, then
    the ``step_running`` event is written. The lock makes the values read
    (the attempts count, the status) the ones the update changes.
    """
    now = timezone.now()
    with transaction.atomic():
        hold_run_of_step(step_run_id)
        step_run = (
            StepRun.objects.select_for_update(of=("self",)).select_related("run").filter(pk=step_run_id).first()
        )
        if step_run is None:
            return None
        was = step_run.status
        takes_back = bool(task_id and redelivered and was == StepStatus.RUNNING and step_run.task_id == task_id)
        if not (was == StepStatus.QUEUED or takes_back):
            return None
        lease_until = running_lease(now, step_run.timeout_seconds)
        condition = Q(status=StepStatus.QUEUED)
        if task_id and redelivered:
            condition |= Q(status=StepStatus.RUNNING, task_id=task_id)
        claimed = StepRun.objects.filter(condition, pk=step_run_id).update(
            status=StepStatus.RUNNING, task_id=task_id or "", attempts=F("attempts") + 1, lease_until=lease_until,
        )
        if not claimed:
            return None
        step_run.status, step_run.task_id, step_run.lease_until = StepStatus.RUNNING, task_id or "", lease_until
        step_run.attempts += 1
        journal.record(EventKind.STEP_RUNNING, run_id=step_run.run_id, at=now, stage=_stage_name(step_run),
                       step=step_run.step_name, attempt=step_run.attempts, task_id=task_id,
                       redelivered=was == StepStatus.RUNNING, **instances.event_data(step_run))
    return step_run


def execute_claimed(step_run):
    """Run the claimed step's flow and report the outcome: ``completed``, ``retrying`` or ``error``."""
    step = Plan.load(step_run.run.orchestration_id).step(step_run.step_name)
    outcome = attempt(step_run.flow_id, step_run, step_run.run.get_record())
    if not outcome.failed:
        if instances.is_instance(step_run):  # hook: an instance completes by its step's rule (instances.py)
            instances.complete_from_worker(step_run, step, outcome.outputs)
        else:
            complete_background_step(step_run.pk, outcome.outputs, run_id=step_run.run_id)
        return "completed"
    delay = retry_delay(step_run, step)
    if delay is not None:
        schedule_retry(step_run, outcome.error, outcome.traceback, delay)
        return "retrying"
    log.warning("step %s (%s) failed after %s attempts: %s", step_run.pk, step.name, step_run.attempts, outcome.error)
    engine.fail_step(step_run.pk, outcome.error, outcome.traceback, run_id=step_run.run_id)
    return "error"


# ---------------------------------------------------------------------------
# On receipt: a pure step runs without a claim
# ---------------------------------------------------------------------------
#
# The claim exists so that a flow's effects happen once however often its
# message is delivered. A flow that cannot write (``FlowSpec.may_write``
# false: only ``assign``, ``decision``, ``get_records``) has no effects to
# guard: running it twice changes nothing but the CPU spent. Such a step's
# message carries what the worker needs (``receipt_of``), the worker runs the
# flow as soon as it receives it, and the completion is the compare-and-set:
# from ``queued``, and only for the queueing the message was sent for (its
# ``queued_at``; an operator's retry queues the step again with new inputs,
# and a message of the earlier queueing then completes nothing). One
# statement and one commit per step instead of two; ``running`` is never
# written for these steps (their ``step_running`` event is, with the time of
# receipt, by the completing statement).
#
# The lease is the broker's while the flow runs (``acks_late``: a worker that
# dies leaves the message unacknowledged, and it comes back) and the queued
# lease after that (the sweeper re-sends a step still queued past it), as
# for any queued step. A duplicate, or a message the sweeper re-sent, runs
# the pure flow again and finds the step completed: its completion is
# ignored. A failed attempt takes the usual way (claim, run again from the
# stored inputs, retry or fail): harmless for a flow that only computes.
# An instance of a multi-instance step takes the same way; it completes by
# its step's rule (``instances.complete_from_worker`` with the receipt).

@dataclass(frozen=True)
class Receipt:
    """A pure step run on receipt: the queueing its message was sent for, the task, when it arrived."""

    queued_at: datetime
    task_id: str
    at: datetime

    def holds_for(self, step_run):
        """Whether ``step_run`` is still queued for the queueing this message was sent for."""
        return step_run.status == StepStatus.QUEUED and step_run.queued_at == self.queued_at


def receipt_of(step_run):
    """What a worker needs to run ``step_run`` on receipt (sent in its message), or None to claim it first.

    Only on PostgreSQL (where the completion is one statement, or the run's
    lock checking the receipt), for a background step or an instance of a
    multi-instance step (``instance`` in the receipt) whose flow cannot
    write. Called when the engine queues the step, with its run at hand.
    """
    if connection.vendor != "postgresql" or step_run.flow_id is None:
        return None
    try:
        if FlowSpec.load(step_run.flow_id).may_write:
            return None
    except Exception:  # a flow that cannot be read now: the worker's claim path reports it
        return None
    run = step_run.run
    receipt = {"run": step_run.run_id, "orchestration": run.orchestration_id, "step": step_run.step_name,
               "flow": step_run.flow_id, "inputs": step_run.inputs, "record": [run.record_model, run.record_pk],
               "queued_at": step_run.queued_at.isoformat()}
    if step_run.instance_index is not None:
        receipt["instance"] = step_run.instance_index
    return receipt


def run_on_receipt(step_run_id, receipt, task_id=""):
    """Run a pure step from its message (``receipt_of``) and complete it by compare-and-set from ``queued``.

    An instance completes by its step's rule (``instances.complete_from_worker``):
    in one statement when that cannot meet the rule, else under the run's
    lock, where the receipt is checked as for any step. A message that the
    statement finds stale (the instance discontinued, completed, or queued
    again since) is ``skipped``.
    """
    mark = Receipt(queued_at=datetime.fromisoformat(receipt["queued_at"]), task_id=task_id, at=timezone.now())
    record_model, record_pk = receipt["record"]
    run = OrchestrationRun(id=receipt["run"], orchestration_id=receipt["orchestration"],
                           record_model=record_model, record_pk=record_pk)
    step_run = StepRun(id=step_run_id, run=run, step_name=receipt["step"], flow_id=receipt["flow"],
                       inputs=receipt["inputs"], instance_index=receipt.get("instance"))
    outcome = attempt(receipt["flow"], step_run, run.get_record())
    if outcome.failed:
        claimed = claim(step_run_id, task_id)
        if claimed is None:
            log.info("step run %s is not queued (already claimed or finished); nothing to do", step_run_id)
            return "skipped"
        return execute_claimed(claimed)
    try:
        if instances.is_instance(step_run):  # hook: an instance completes by its step's rule (instances.py)
            step = Plan.load(run.orchestration_id).step(step_run.step_name)
            if not instances.complete_from_worker(step_run, step, outcome.outputs, receipt=mark):
                return "skipped"
        else:
            complete_background_step(step_run_id, outcome.outputs, run_id=run.pk, receipt=mark)
    except (OrchestrationRun.DoesNotExist, StepRun.DoesNotExist):  # the run was deleted since: as a claim finds
        log.info("step run %s no longer exists; nothing to do", step_run_id)
        return "skipped"
    return "completed"


def schedule_retry(step_run, message, trace, delay):
    """Put a failed running step back to ``queued`` and send its message again in ``delay`` seconds."""
    now = timezone.now()
    with transaction.atomic():
        hold_run_for_event(step_run.run_id)
        updated = StepRun.objects.filter(pk=step_run.pk, status=StepStatus.RUNNING).update(
            status=StepStatus.QUEUED, task_id="", error=message, traceback=trace, lease_until=queued_lease(now, delay),
        )
        if updated:
            journal.record(EventKind.STEP_RETRY_SCHEDULED, run_id=step_run.run_id, at=now,
                           stage=_stage_name(step_run), step=step_run.step_name,
                           attempt=step_run.attempts, error=message, in_seconds=delay,
                           **instances.event_data(step_run))
            transaction.on_commit(lambda: send_step_message(step_run.pk, countdown=delay))


# A worker's completion of a step in a counted stage that leaves another
# step open, in one autocommit statement. Locks are taken in the order every
# transition takes them: first the run's row, in KEY SHARE mode, with the
# step's row (``target``). The event this statement inserts needs that lock
# anyway (its foreign key), but taken at the end, after the stage's row, it
# waited for a transition holding the run while that transition waited for
# the stage's row: a deadlock. Taken first, it waits for any transition of
# the run to commit (KEY SHARE conflicts with the run lock's FOR UPDATE) and
# never for another counted completion (KEY SHARE does not conflict with
# itself). Then the step is re-checked open, the stage's count goes down only
# if another step stays open (``open_steps > 1``, re-checked under the
# stage row's lock, so of two completions racing for the last two steps one
# sees 1 and stops; a stage that is not counted has NULL there and never
# matches), and only then are the step and its event written. The last open
# step is completed by ``engine.complete_step``: its completion and the
# stage's transition stay one transaction, so no state "every step done,
# stage still running" can outlive a worker that dies in between.
# With ``on_receipt`` (a step run on receipt, ``run_on_receipt``) the step
# must still be queued for the queueing its message was sent for, its
# attempts go up by one, and its ``step_running`` event (at the time of
# receipt) is written before its ``step_completed``: one text, two modes.
_COMPLETE_COUNTED_SQL = """
WITH target AS (
    SELECT s.id, s.stage_run_id FROM orchestration_steprun AS s
      JOIN orchestration_orchestrationrun AS r ON r.id = s.run_id
     WHERE s.id = %(id)s AND s.instance_index IS NULL
       AND CASE WHEN %(on_receipt)s THEN s.status = 'queued' AND s.queued_at = %(queued_at)s
                ELSE s.status IN ('queued', 'running') END
       FOR UPDATE OF s FOR KEY SHARE OF r
), counted AS (
    UPDATE orchestration_stagerun AS g SET open_steps = g.open_steps - 1
      FROM target
     WHERE g.id = target.stage_run_id AND g.open_steps > 1
 RETURNING g.id, g.open_steps, g.stage_name
), done AS (
    UPDATE orchestration_steprun AS s
       SET status = 'completed', ended_at = %(now)s, lease_until = NULL, outputs = %(outputs)s::jsonb,
           attempts = s.attempts + CASE WHEN %(on_receipt)s THEN 1 ELSE 0 END,
           task_id = CASE WHEN %(on_receipt)s THEN %(task_id)s ELSE s.task_id END
      FROM counted
     WHERE s.id = %(id)s AND s.stage_run_id = counted.id
 RETURNING s.run_id, s.step_name, s.attempts
), event AS (
    INSERT INTO orchestration_runevent (run_id, at, actor_id, kind, stage_name, step_name, data)
    SELECT done.run_id, %(received_at)s::timestamptz, NULL::integer, %(running_kind)s, counted.stage_name,
           done.step_name, jsonb_build_object('attempt', done.attempts, 'task_id', %(task_id)s::text, 'on_receipt', true)
      FROM done CROSS JOIN counted
     WHERE %(on_receipt)s
    UNION ALL
    SELECT done.run_id, %(now)s, NULL::integer, %(kind)s, counted.stage_name, done.step_name,
           jsonb_build_object('outputs', %(outputs)s::jsonb)
      FROM done CROSS JOIN counted
)
SELECT counted.open_steps FROM counted CROSS JOIN done
"""


def complete_background_step(step_run_id, outputs, *, run_id, effects=None, receipt=None):
    """A worker's step finished with ``outputs``. Returns True if it completed now.

    In a counted stage (see ``counts_completions``) a completion that leaves
    another step open changes nothing but the step and the count, so it is
    written in one statement without the run's lock: rule 4 cannot fire
    while a step is open, and no condition waits on it. Everything else goes
    through ``engine.complete_step`` under the lock: the last open step of
    the stage (its completion moves the run on), another database, a stage
    that is not counted, a step no longer open (recorded as ignored there),
    an error in the statement. ``receipt``: the step ran on receipt
    (``run_on_receipt``) and completes only if still queued for its message.
    """
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        params = {"id": step_run_id, "now": timezone.now(), "outputs": to_json_text(to_json(outputs or {})),
                  "kind": EventKind.STEP_COMPLETED.value, "running_kind": EventKind.STEP_RUNNING.value,
                  "on_receipt": receipt is not None, "queued_at": getattr(receipt, "queued_at", None),
                  "task_id": getattr(receipt, "task_id", ""), "received_at": getattr(receipt, "at", None)}
        try:
            with connection.cursor() as cursor:
                cursor.execute(_COMPLETE_COUNTED_SQL, params)
                row = cursor.fetchone()
        except DatabaseError:  # a deadlock with an operator's action, say: nothing was written
            log.warning("counted completion of step %s failed; completing it under the run's lock", step_run_id,
                        exc_info=True)
            row = None
        if row is not None:
            return True
    return engine.complete_step(step_run_id, outputs, source="worker", run_id=run_id, effects=effects,
                                receipt=receipt)


# ---------------------------------------------------------------------------
# Leases that ran out: the sweeper
# ---------------------------------------------------------------------------

def sweep_stuck_steps(now=None):
    """Re-send steps left queued or running past their lease. Returns how many."""
    now = now or timezone.now()
    resent = []
    stuck = StepRun.objects.filter(status__in=[StepStatus.QUEUED, StepStatus.RUNNING], lease_until__lt=now)
    rows = stuck.values_list("id", "status", "step_name", "run_id", "stage_run__stage_name", "instance_index")[:1000]
    for step_run_id, status, step_name, run_id, stage_name, index in rows:
        with transaction.atomic():
            hold_run_for_event(run_id)
            updated = StepRun.objects.filter(pk=step_run_id, status=status, lease_until__lt=now).update(
                status=StepStatus.QUEUED, task_id="", lease_until=queued_lease(now),
            )
            if not updated:
                continue
            journal.record(EventKind.STEP_RESENT, run_id=run_id, at=now, stage=stage_name, step=step_name,
                           was=status, reason="lease expired", **({} if index is None else {"instance": index}))
            transaction.on_commit(lambda i=step_run_id: send_step_message(i))
            resent.append(step_run_id)
    if resent:
        log.info("sweeper re-sent %d step(s): %s", len(resent), resent)
    return len(resent)


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def hold_run_for_event(run_id):
    """Lock the run's row in KEY SHARE mode before changing one of its steps outside the engine.

    The event written after the step change needs this lock (its foreign
    key); taken then, after the step's row, it waits for a transition that
    holds the run and may be waiting for that same step: a deadlock. Taken
    first, it keeps the engine's order, run before step. It conflicts with
    no other KEY SHARE, so workers still go in parallel. SQLite has no row
    locks (its writers queue for the whole database).
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT id FROM orchestration_orchestrationrun WHERE id = %s FOR KEY SHARE", [run_id])


_RUN_OF_STEP_KEY_SHARE_SQL = """
SELECT r.id FROM orchestration_orchestrationrun AS r
  JOIN orchestration_steprun AS q ON q.run_id = r.id
 WHERE q.id = %(id)s
   FOR KEY SHARE OF r
"""


def hold_run_of_step(step_run_id):
    """``hold_run_for_event`` for a step whose run is not known yet (the portable claim)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_RUN_OF_STEP_KEY_SHARE_SQL, {"id": step_run_id})


def _stage_name(step_run):
    """The stage ``step_run`` belongs to, from the cached plan (no query)."""
    try:
        return Plan.load(step_run.run.orchestration_id).step(step_run.step_name).stage
    except KeyError:  # a step the plan no longer has: its stage visit knows
        return journal.stage_name_of(step_run)
