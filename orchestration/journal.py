"""The run journal: the one place ``RunEvent`` rows are made.

Every event names its ``EventKind`` and, when it concerns a stage or a step,
that stage's name (and the step's). Inside an engine transition events are
collected with ``new_event`` and written together by ``write`` when the
transition ends; code outside a transition (a worker's claim, the sweeper,
the Work Guide) writes one with ``record``. The SQL statements that write an
event in the same round trip as their update take the kind as a parameter
from ``EventKind`` (see ``worker._CLAIM_SQL``, ``worker._COMPLETE_COUNTED_SQL``).
"""
from django.utils import timezone

from flows.expressions import to_json

from .models import EventKind, RunEvent, StageRun


def new_event(kind, *, run=None, run_id=None, at=None, actor=None, stage="", step="", **data):
    """An unsaved ``RunEvent`` of ``kind`` (an ``EventKind``) with ``data`` made JSON-safe."""
    kind = EventKind(kind)  # an unknown kind is a programming error: fail where it is written
    owner = {"run": run} if run is not None else {"run_id": run_id}
    return RunEvent(
        **owner, at=at or timezone.now(), actor=actor if getattr(actor, "pk", None) else None,
        kind=kind.value, stage_name=stage or "", step_name=step or "", data=to_json(data),
    )


def record(kind, **fields):
    """Write one event now (outside an engine transition)."""
    event = new_event(kind, **fields)
    event.save(force_insert=True)
    return event


def write(events):
    """Write a transition's collected events in one INSERT."""
    if events:
        RunEvent.objects.bulk_create(events)


def stage_name_of(step_run):
    """The name of the stage ``step_run`` ran in, for events written away from the engine."""
    return StageRun.objects.filter(pk=step_run.stage_run_id).values_list("stage_name", flat=True).first() or ""
