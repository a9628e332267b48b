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

from . import worker

log = logging.getLogger(__name__)


class DjangoEffects:
    @property
    def runs_steps_in_process(self):
        """``BATON_STEP_EXECUTION=in_process``: the engine runs background flows itself, nothing is sent."""
        from .conf import baton_settings

        return baton_settings.BATON_STEP_EXECUTION == "in_process"

    def send_step(self, step_run):
        step_run_id = step_run.pk
        transaction.on_commit(lambda: worker.send_step_message(step_run_id))

    def open_work_item(self, ctx, step_run, step, prepared):
        from workguide.services import open_work_item

        return open_work_item(ctx, step_run, step, prepared)

    def close_work_items(self, ctx, step_runs, status):
        from workguide.services import close_work_items

        close_work_items(ctx, step_runs, status)
