"""The engine's window on the outside world.

The engine calls these methods inside its transaction. ``DjangoEffects``
writes work items in that same transaction (they are state) and defers
everything that leaves the process — Celery messages, mail — to
``transaction.on_commit`` so nothing is sent for a transaction that rolls
back. Tests may pass their own object with the same three methods (and,
optionally, ``runs_steps_in_process``).
"""
import logging

from django.db import transaction

log = logging.getLogger(__name__)


class DjangoEffects:
    @property
    def runs_steps_in_process(self):
        """``BATON_STEP_EXECUTION=in_process``: the engine runs background flows itself, nothing is sent."""
        from .conf import baton_settings

        return baton_settings.BATON_STEP_EXECUTION == "in_process"

    def send_step(self, step_run):
        step_run_id = step_run.pk
        transaction.on_commit(lambda: send_step_message(step_run_id))

    def open_work_item(self, ctx, step_run, step, prepared):
        from workguide.services import open_work_item

        return open_work_item(ctx, step_run, step, prepared)

    def close_work_items(self, ctx, step_runs, status):
        from workguide.services import close_work_items

        close_work_items(ctx, step_runs, status)


def send_step_message(step_run_id, countdown=None):
    """Publish the Celery message for a queued step. A broker outage is logged, not raised:
    the step stays queued in the database and the sweeper sends it again.

    A message that was published sits in the broker's queue, maybe behind a
    long backlog, so its step keeps the long queued lease and the sweeper
    leaves it alone. A message that could *not* be published is known to be
    missing: its lease ends now, so the very next sweep re-sends it.
    """
    from .tasks import run_step

    try:
        options = {"countdown": countdown} if countdown else {}
        result = run_step.apply_async((step_run_id,), **options)
        return result.id
    except Exception as exc:  # kombu raises OperationalError and friends when the broker is away
        log.warning("could not send step %s to the broker (%s); the sweeper will resend it", step_run_id, exc)
        _expire_lease(step_run_id)
        return None


def _expire_lease(step_run_id):
    from django.utils import timezone

    from .models import StepRun, StepStatus

    try:
        StepRun.objects.filter(pk=step_run_id, status=StepStatus.QUEUED).update(lease_until=timezone.now())
    except Exception:  # the database may be away too; the lease then simply runs its course
        log.exception("could not mark step %s for an early resend", step_run_id)
