"""Baton's Celery tasks, thin: each hands its message to the module that does the work.

``run_step`` claims and runs a background step (``orchestration/worker.py``
owns its whole life: claim, run, retry, complete, leases, the sweeper);
``start_pending_run`` starts a record-triggered run (``starts.py``); ``sweep``
is the beat task that re-sends steps past their lease and starts overdue
record starts. Task names are part of the deployment (queued messages and
beat schedules name them) and stay as they are.

Tasks are ``acks_late`` with ``reject_on_worker_lost``: a worker killed
mid-step leaves the message unacknowledged and it comes back. This module
also keeps a worker's database connections healthy between tasks.
"""
import logging
import time

from celery import shared_task
from celery.signals import task_postrun, task_prerun
from django.contrib.auth import get_user_model
from django.db import close_old_connections, connections

# starts and worker import this module too (to send messages); only their
# functions are used here, at call time.
from . import children, starts, worker

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


@shared_task(name="orchestration.tasks.run_step", bind=True, acks_late=True, reject_on_worker_lost=True,
             ignore_result=True)
def run_step(self, step_run_id, receipt=None):
    """Claim the step and run it (``orchestration/worker.py``); a message for a step already claimed does nothing.

    A message with a ``receipt`` (a step whose flow cannot write) runs the
    step at once and completes it by compare-and-set (``worker.run_on_receipt``).
    """
    if receipt is not None:
        return worker.run_on_receipt(step_run_id, receipt, self.request.id or "")
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    step_run = worker.claim(step_run_id, self.request.id or "", redelivered=redelivered)
    if step_run is None:
        log.info("step run %s is not queued (already claimed or finished); nothing to do", step_run_id)
        return "skipped"
    return worker.execute_claimed(step_run)


@shared_task(name="orchestration.tasks.start_pending_run", acks_late=True, reject_on_worker_lost=True,
             ignore_result=True)
def start_pending_run(pending_id, user_id=None):
    """Start a record-triggered run on a worker (``BATON_RECORD_STARTS=worker``).

    ``start_pending`` deletes the ``PendingStart`` row in the run's start
    transaction, so a duplicate message finds nothing to do; a failure keeps
    the row (and counts the attempt) for the sweeper.
    """
    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    run = starts.try_start_pending(pending_id, user=user)
    if run is starts.FAILED:
        return "error"
    return "started" if run is not None else "nothing to start"


@shared_task(name="orchestration.tasks.sweep", ignore_result=True)
def sweep():
    """Each of the sweeper's jobs, in turn; one that fails is logged and the others still run.

    Returns how many each job handled (``"error"`` for a job that failed).
    """
    # waits builds on the engine, which loads this module through the worker: imported when the sweep runs.
    from . import waits

    jobs = (("started", starts.start_leftover_pending), ("resent", worker.sweep_stuck_steps),
            ("children_canceled", children.sweep_orphaned_children), ("timers", waits.fire_due_timers))
    done = {}
    for name, job in jobs:
        # A job that fails on every sweep (a row it cannot handle, a bug) must not keep
        # the later ones (timers last) from running at all.
        try:
            done[name] = job()
        except Exception:
            log.exception("the sweeper's %r job failed; the other jobs ran and the next sweep tries it again", name)
            done[name] = "error"
    return done
