"""The engine's window on the outside world: the interface, and sending steps.

The engine calls three methods of an effects object inside its transaction:

- ``send_step(step_run)``: a background step is queued; publish its message.
- ``open_work_item(ctx, step_run, step, prepared)``: an interactive step
  starts; open its work item (raise ``StepFailure`` if it cannot).
- ``close_work_items(ctx, step_runs, status)``: those steps ended; complete
  or cancel their open work items.

and reads one property, ``runs_steps_in_process``
(``BATON_STEP_EXECUTION=in_process``: the engine runs background flows
itself and sends nothing).

Which class the engine uses is the ``BATON_EFFECTS`` setting, a dotted path
(default: the Work Guide's ``workguide.effects.WorkGuideEffects``); tests
pass their own object, or set one for a block with ``engine.use_effects``.
``Effects`` below sends steps to Celery after commit and has no work items;
an implementation subclasses it and adds them. Everything that leaves the
process is deferred to ``transaction.on_commit``, so nothing is sent for a
transaction that rolls back.
"""
from django.db import transaction

from . import worker
from .conf import baton_settings


class Effects:
    """Background steps go to Celery after commit; work items are the subclass's."""

    @property
    def runs_steps_in_process(self):
        """``BATON_STEP_EXECUTION=in_process``: the engine runs background flows itself, nothing is sent."""
        return baton_settings.BATON_STEP_EXECUTION == "in_process"

    def send_step(self, step_run):
        step_run_id = step_run.pk
        receipt = worker.receipt_of(step_run)  # a pure step runs on receipt, without a claim
        if receipt is None:
            transaction.on_commit(lambda: worker.send_step_message(step_run_id))
        else:
            transaction.on_commit(lambda: worker.send_step_message(step_run_id, receipt=receipt))

    def open_work_item(self, ctx, step_run, step, prepared):
        raise NotImplementedError(f"{type(self).__name__} opens no work items; set BATON_EFFECTS to a class that does")

    def close_work_items(self, ctx, step_runs, status):
        raise NotImplementedError(f"{type(self).__name__} closes no work items; set BATON_EFFECTS to a class that does")
