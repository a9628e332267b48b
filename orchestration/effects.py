"""The engine's window on the outside world.

The engine calls these methods inside its transaction. ``DjangoEffects``
writes work items in that same transaction (they are state) and defers
everything that leaves the process — Celery messages, mail — to
``transaction.on_commit`` so nothing is sent for a transaction that rolls
back. Tests may pass their own object with the same three methods.
"""
import logging

from django.db import transaction

log = logging.getLogger(__name__)


class DjangoEffects:
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
    the step stays queued in the database and the sweeper sends it again."""
    from .tasks import run_step

    try:
        options = {"countdown": countdown} if countdown else {}
        result = run_step.apply_async((step_run_id,), **options)
        return result.id
    except Exception as exc:  # kombu raises OperationalError and friends when the broker is away
        log.warning("could not send step %s to the broker (%s); the sweeper will resend it", step_run_id, exc)
        return None
