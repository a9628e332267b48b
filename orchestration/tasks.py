"""Celery tasks: run a background step, and the sweeper.

A step message carries only the StepRun id. The worker claims the step by a
compare-and-set update (``queued`` → ``running``); a duplicate message finds
it claimed and does nothing. The flow runs outside any lock; its outputs are
handed to the engine, which completes the step under the run's lock.

Delivery is at least once: a worker killed mid-step leaves the message
unacknowledged (``acks_late``, ``reject_on_worker_lost``) and it comes back,
or the sweeper re-sends the step once its lease is over. A flow with side
effects outside Baton's database should therefore be idempotent.
"""
import logging
import time
import traceback as tb
from datetime import timedelta

from celery import shared_task
from celery.signals import task_postrun, task_prerun
from django.db import close_old_connections, connection, connections, transaction
from django.db.models import F, Q
from django.utils import timezone

from . import engine, instances, journal
from .conf import baton_settings
from .children import sweep_orphaned_children
from .models import EventKind, OrchestrationRun, StepRun, StepStatus
from .plan import Plan

log = logging.getLogger(__name__)


# A connection used by a task that ended less than this long ago, without a
# database error, is taken as healthy by the next task.
BUSY_CONNECTION_SECONDS = 1.0
_last_task_ended = [float("-inf")]


@task_prerun.connect(weak=False, dispatch_uid="baton-task-connections")
def _recycle_connections(**_):
    """Before a task, drop a connection that is broken or older than ``CONN_MAX_AGE``.

    Django does this around every request; Celery's own Django fix-up would
    instead close every connection before and after every task (a new
    PostgreSQL backend, ~3 ms, per step) unless ``CELERY_DB_REUSE_MAX`` is
    set, which the settings do. This keeps the web's rules in the worker,
    with one difference: ``close_old_connections`` makes the next query
    check the connection first (``CONN_HEALTH_CHECKS``: a ``SELECT 1``, its
    own commit), and under load that was a quarter of a step's round trips
    for a connection that had just worked. So a worker that finished a task
    less than a second ago, with no database error since, skips it; after
    an error (a restarted database), an idle second or the connection's
    maximum age, the full check runs as before.
    """
    if any(conn.in_atomic_block for conn in connections.all(initialized_only=True)):
        # An eager task (task_always_eager) run inside its caller's transaction: the
        # connection is the caller's, and checking it would close it (autocommit is off).
        return
    now = time.monotonic()
    if now - _last_task_ended[0] < BUSY_CONNECTION_SECONDS and not any(
        conn.errors_occurred or (conn.close_at is not None and now >= conn.close_at)
        for conn in connections.all(initialized_only=True)
    ):
        return
    close_old_connections()


@task_postrun.connect(weak=False, dispatch_uid="baton-task-connections-used")
def _note_task_ended(**_):
    _last_task_ended[0] = time.monotonic()


@shared_task(name="orchestration.tasks.ping")
def ping():
    return "pong"


def backoff_seconds(attempt):
    """Exponential backoff between attempts: 2, 4, 8... seconds, at most 5 minutes."""
    base = baton_settings.BATON_RETRY_BACKOFF
    return min(base ** max(attempt, 1), 300)


def claim(step_run_id, task_id="", redelivered=False):
    """Compare-and-set ``queued`` → ``running``. Returns the StepRun, or None if someone else has it.

    On PostgreSQL the usual case, a queued step, is one statement
    (``_claim_queued``); a redelivered message that may take its own running
    step back, and other databases, take ``_claim_locked``.
    """
    if connection.vendor == "postgresql":
        step_run = _claim_queued(step_run_id, task_id)
        if step_run is not None or not (task_id and redelivered):
            return step_run
    return _claim_locked(step_run_id, task_id, redelivered)


# One round trip and one commit (autocommit): the conditional update, the
# ``step_running`` event and the run's fields the worker needs. The lease
# comes from the step's timeout copied on the row when it was queued.
# Data-modifying CTEs are PostgreSQL's; the event is written only if the
# update matched (it reads the update's RETURNING).
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
 RETURNING s.*
), event AS (
    INSERT INTO orchestration_runevent (run_id, at, actor_id, kind, stage_name, step_name, data)
    SELECT c.run_id, %(now)s, NULL, %(kind)s, st.stage_name, c.step_name,
           jsonb_build_object('attempt', c.attempts, 'task_id', %(task_id)s::text, 'redelivered', false)
      FROM claimed AS c JOIN orchestration_stagerun AS st ON st.id = c.stage_run_id
)
SELECT c.*, r.orchestration_id AS run_orchestration_id, r.record_model AS run_record_model,
       r.record_pk AS run_record_pk
  FROM claimed AS c JOIN orchestration_orchestrationrun AS r ON r.id = c.run_id
"""


def _claim_queued(step_run_id, task_id):
    params = {"id": step_run_id, "task_id": task_id or "", "now": timezone.now(),
              "margin": baton_settings.BATON_LEASE_MARGIN, "kind": EventKind.STEP_RUNNING.value}
    # A plain cursor, not ``StepRun.objects.raw``: a RawQuerySet runs its SQL
    # again to learn the columns, and this SQL changes rows.
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, params)
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


_RUN_OF_STEP_KEY_SHARE_SQL = """
SELECT r.id FROM orchestration_orchestrationrun AS r
  JOIN orchestration_steprun AS q ON q.run_id = r.id
 WHERE q.id = %(id)s
   FOR KEY SHARE OF r
"""


def _claim_locked(step_run_id, task_id="", redelivered=False):
    """Compare-and-set ``queued`` → ``running`` under the step's row lock; the portable claim.

    A message redelivered by the broker after its worker died (``redelivered``
    in its delivery info) finds the step ``running`` under its own task id
    and takes it back. A second copy of the same message that was merely
    published again is not redelivered: it finds the step claimed and does
    nothing, so the flow runs once.

    Three statements: the step is read with its run and locked (its row
    only), then updated under the condition that it is still claimable, then
    the ``step_running`` event is written. The lease needs the step's timeout
    from the plan, hence the read first; the lock makes the values read (the
    attempts count, the status) the ones the update changes.
    """
    now = timezone.now()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # The run's row first, as the engine and _CLAIM_SQL take it (see there).
            with connection.cursor() as cursor:
                cursor.execute(_RUN_OF_STEP_KEY_SHARE_SQL, {"id": step_run_id})
        step_run = (
            StepRun.objects.select_for_update(of=("self",)).select_related("run").filter(pk=step_run_id).first()
        )
        if step_run is None:
            return None
        was = step_run.status
        takes_back = bool(task_id and redelivered and was == StepStatus.RUNNING and step_run.task_id == task_id)
        if not (was == StepStatus.QUEUED or takes_back):
            return None
        plan = Plan.load(step_run.run.orchestration_id)
        try:
            step = plan.step(step_run.step_name)
            timeout, stage = step.timeout_seconds, step.stage
        except KeyError:
            timeout, stage = 600, ""
        lease_until = now + timedelta(seconds=timeout + baton_settings.BATON_LEASE_MARGIN)
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
        journal.record(EventKind.STEP_RUNNING, run_id=step_run.run_id, at=now, stage=stage, step=step_run.step_name,
                       attempt=step_run.attempts, task_id=task_id, redelivered=was == StepStatus.RUNNING)
    return step_run


@shared_task(name="orchestration.tasks.run_step", bind=True, acks_late=True, reject_on_worker_lost=True,
             ignore_result=True)
def run_step(self, step_run_id):
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    step_run = claim(step_run_id, self.request.id or "", redelivered=redelivered)
    if step_run is None:
        log.info("step run %s is not queued (already claimed or finished); nothing to do", step_run_id)
        return "skipped"
    return execute_claimed(step_run)


def execute_claimed(step_run):
    """Run the claimed step's flow and report the outcome to the engine."""
    from flows.runtime import run_flow

    plan = Plan.load(step_run.run.orchestration_id)
    step = plan.step(step_run.step_name)
    try:
        outputs = run_flow(step_run.flow_id, step_run.inputs, record=step_run.run.get_record())
    except Exception as exc:  # the flow failed: retry with backoff, or give up
        message = str(exc) or exc.__class__.__name__
        trace = tb.format_exc()
        if step_run.attempts <= step.retries:
            schedule_retry(step_run, message, trace)
            return "retrying"
        log.warning("step %s (%s) failed after %s attempts: %s", step_run.pk, step.name, step_run.attempts, message)
        engine.fail_step(step_run.pk, message, trace, run_id=step_run.run_id)
        return "error"
    if instances.complete_counted(step_run, outputs):  # hook: an instance that leaves its step's rule unmet
        return "completed"
    engine.complete_background_step(step_run.pk, outputs, run_id=step_run.run_id)
    return "completed"


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


def _stage_name(step_run):
    """The stage ``step_run`` belongs to, from the cached plan (no query)."""
    try:
        return Plan.load(step_run.run.orchestration_id).step(step_run.step_name).stage
    except KeyError:  # a step the plan no longer has: its stage visit knows
        return journal.stage_name_of(step_run)


def schedule_retry(step_run, message, trace):
    from .effects import send_step_message

    delay = backoff_seconds(step_run.attempts)
    now = timezone.now()
    with transaction.atomic():
        hold_run_for_event(step_run.run_id)
        updated = StepRun.objects.filter(pk=step_run.pk, status=StepStatus.RUNNING).update(
            status=StepStatus.QUEUED, task_id="", error=message, traceback=trace,
            lease_until=now + timedelta(seconds=delay + baton_settings.BATON_QUEUED_LEASE),
        )
        if updated:
            journal.record(EventKind.STEP_RETRY_SCHEDULED, run_id=step_run.run_id, at=now,
                           stage=_stage_name(step_run), step=step_run.step_name,
                           attempt=step_run.attempts, error=message, in_seconds=delay)
            transaction.on_commit(lambda: send_step_message(step_run.pk, countdown=delay))


@shared_task(name="orchestration.tasks.start_pending_run", acks_late=True, reject_on_worker_lost=True,
             ignore_result=True)
def start_pending_run(pending_id, user_id=None):
    """Start a record-triggered run on a worker (``BATON_RECORD_STARTS=worker``).

    ``start_pending`` deletes the ``PendingStart`` row in the run's start
    transaction, so a duplicate message finds nothing to do; a failure keeps
    the row (and counts the attempt) for the sweeper.
    """
    from django.contrib.auth import get_user_model

    from .starts import FAILED, try_start_pending

    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    run = try_start_pending(pending_id, user=user)
    if run is FAILED:
        return "error"
    return "started" if run is not None else "nothing to start"


@shared_task(name="orchestration.tasks.sweep", ignore_result=True)
def sweep():
    from .starts import start_leftover_pending

    return {"started": start_leftover_pending(), "resent": sweep_stuck_steps(),
            "children_canceled": sweep_orphaned_children()}


def sweep_stuck_steps(now=None):
    """Re-send steps left queued or running past their lease. Returns how many."""
    from .effects import send_step_message

    now = now or timezone.now()
    resent = []
    stuck = StepRun.objects.filter(status__in=[StepStatus.QUEUED, StepStatus.RUNNING], lease_until__lt=now)
    rows = stuck.values_list("id", "status", "step_name", "run_id", "stage_run__stage_name")[:1000]
    for step_run_id, status, step_name, run_id, stage_name in rows:
        with transaction.atomic():
            hold_run_for_event(run_id)
            updated = StepRun.objects.filter(pk=step_run_id, status=status, lease_until__lt=now).update(
                status=StepStatus.QUEUED, task_id="",
                lease_until=now + timedelta(seconds=baton_settings.BATON_QUEUED_LEASE),
            )
            if not updated:
                continue
            journal.record(EventKind.STEP_RESENT, run_id=run_id, at=now, stage=stage_name, step=step_name,
                           was=status, reason="lease expired")
            transaction.on_commit(lambda i=step_run_id: send_step_message(i))
            resent.append(step_run_id)
    if resent:
        log.info("sweeper re-sent %d step(s): %s", len(resent), resent)
    return len(resent)
