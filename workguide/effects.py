"""The Work Guide's effects: the engine's default window on the outside world (``BATON_EFFECTS``).

Background steps go to Celery after commit (``orchestration.effects.Effects``);
interactive steps open and close work items here, inside the engine's
transaction (work items are state), with their mails deferred to commit by
``workguide/services.py``. The engine finds this class by the setting's
dotted path, so ``orchestration`` imports nothing from the Work Guide.
"""
from orchestration.effects import Effects

from . import services


class WorkGuideEffects(Effects):
    def open_work_item(self, ctx, step_run, step, prepared):
        return services.open_work_item(ctx, step_run, step, prepared)

    def close_work_items(self, ctx, step_runs, status):
        services.close_work_items(ctx, step_runs, status)
