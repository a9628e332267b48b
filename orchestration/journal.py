"""The run journal: the one place ``RunEvent`` rows are made.

Every event names its ``EventKind`` and, when it concerns a stage or a step,
that stage's name (and the step's). Inside an engine transition events are
collected with ``new_event`` and written together by ``write`` when the
transition ends; code outside a transition (a worker's claim, the sweeper,
the Work Guide) writes one with ``record``. The SQL statements that write an
event in the same round trip as their update take the kind as a parameter
from ``EventKind`` (see ``worker._CLAIM_SQL``, ``worker._COMPLETE_COUNTED_SQL``).
"""
import datetime
import functools
import json

from django.db import connection
from django.utils import timezone

from flows.expressions import to_json

from .models import EventKind, RunEvent, StageRun


class Event:
    """An event noted in a transition and not yet written: a ``RunEvent`` row's values, by attribute name.

    A plain object rather than an unsaved ``RunEvent``: a transition notes
    about three events per step, and building model instances for them was
    a measurable part of the engine's Python time (``docs/performance.md``).
    """

    __slots__ = ("run_id", "at", "actor_id", "kind", "stage_name", "step_name", "data")

    def __init__(self, run_id, at, actor_id, kind, stage_name, step_name, data):
        self.run_id, self.at, self.actor_id, self.kind = run_id, at, actor_id, kind
        self.stage_name, self.step_name, self.data = stage_name, step_name, data

    def as_model(self):
        return RunEvent(**{name: getattr(self, name) for name in self.__slots__})


def new_event(kind, *, run=None, run_id=None, at=None, actor=None, stage="", step="", **data):
    """An unwritten ``Event`` of ``kind`` (an ``EventKind``) with ``data`` made JSON-safe."""
    kind = EventKind(kind)  # an unknown kind is a programming error: fail where it is written
    return Event(run.pk if run is not None else run_id, at or timezone.now(),
                 actor.pk if getattr(actor, "pk", None) else None, kind.value, stage or "", step or "", to_json(data))


def record(kind, **fields):
    """Write one event now (outside an engine transition)."""
    event = new_event(kind, **fields).as_model()
    event.save(force_insert=True)
    return event


def write(events):
    """Write events in one INSERT (outside PostgreSQL's one-statement flush, ``transition.write_rows``)."""
    if events:
        RunEvent.objects.bulk_create([event.as_model() for event in events])


def insert_statement(events):
    """``(sql, params)`` inserting ``events`` on PostgreSQL, in order: the rows go as one JSON parameter.

    The ORM's ``bulk_create`` built a model instance per event and an array
    parameter per column; for a run's three events per step that was more
    Python time than the rules that made them (profiled,
    ``docs/performance.md``).
    """
    sql, fields = _insert_sql()
    rows = json.dumps([[_json_value(getattr(event, f.attname)) for f in fields] for event in events])
    return sql, [rows]


def _json_value(value):
    if isinstance(value, datetime.datetime):
        return value.isoformat()  # with its offset: timestamptz reads it back to the microsecond
    return value


@functools.cache
def _insert_sql():
    """The INSERT of ``write`` on PostgreSQL, and the fields whose values each row gives, in order.

    Built from the model's fields, so a field added to ``RunEvent`` and not
    to ``Event`` fails at once (an ``AttributeError`` in ``write``).
    """
    fields = [f for f in RunEvent._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    values = ", ".join(f"e.v -> {i}" if f.get_internal_type() == "JSONField" else f"(e.v ->> {i})::{_cast(f)}"
                       for i, f in enumerate(fields))
    sql = (f"INSERT INTO {RunEvent._meta.db_table} ({columns}) SELECT {values} "
           f"FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS e(v, n) ORDER BY e.n")
    return sql, fields


def _cast(field):
    # Text columns are given as text: a cast to varchar(n) would cut a longer
    # value short, where the column itself refuses it, as the ORM's insert did.
    if field.get_internal_type() in ("CharField", "TextField"):
        return "text"
    return field.db_type(connection)


def stage_name_of(step_run):
    """The name of the stage ``step_run`` ran in, for events written away from the engine."""
    return StageRun.objects.filter(pk=step_run.stage_run_id).values_list("stage_name", flat=True).first() or ""
