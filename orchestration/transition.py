"""One engine transition: the run it holds, what it read, what it will write; and how it begins.

Every public function of ``orchestration/engine.py`` is one transition: it
opens a database transaction and calls ``lock_run``, which locks the run's
row (``SELECT ... FOR UPDATE``) and returns a ``Transition``. The engine's
rules then work on that object: it reads the run's state once (the run row;
its step runs joined with their stage visits; the active flows; the record)
and keeps it in memory, collects the events, and writes what changed when
the transition ends (``Transition.flush``), steps that changed alike in one
UPDATE. The rules themselves, and why each shortcut is safe, are in the
engine.

The effects object of a transition (what the engine asks of the outside
world: send a step, open or close work items; see ``orchestration/effects.py``)
is the one a caller passes, else the one ``use_effects`` set (tests), else a
new instance of the class named by the ``BATON_EFFECTS`` setting (by default
the Work Guide's, ``workguide.effects.WorkGuideEffects``). The class is found
by its dotted path when a transition needs it, so this app imports nothing
from the Work Guide.
"""
import contextlib
import functools
import json
from dataclasses import dataclass, field

from django.db import connection
from django.db.models import F
from django.utils import timezone
from django.utils.module_loading import import_string

from flows.compiled import FlowSpec
from flows.models import DefinitionStatus, Flow

from . import instances, journal
from .conf import baton_settings
from .models import OPEN_STEP_STATUSES, OrchestrationRun, StageRun, StageStatus, StepRun, StepStatus
from .plan import Plan
from .records import record_map


@dataclass
class Transition:
    run: OrchestrationRun
    plan: Plan
    effects: object
    actor: object = None
    now: object = field(default_factory=timezone.now)
    events: list = field(default_factory=list)
    _record: object = None
    _record_loaded: bool = False
    _step_runs: list | None = None
    _stage_runs: dict | None = None  # id -> StageRun, every visit that has step runs (and any opened here)
    _active_flows: dict | None = None
    _saved_run: tuple = ()
    _pending_saves: list = field(default_factory=list)
    _was_open: dict = field(default_factory=dict)  # step run id -> open when read (counted stages only)
    _counts_closed: set = field(default_factory=set)  # counted stage runs closed here (count written as 0)
    _closing: tuple | None = None  # (stage run, fields): a close not yet written (close_later)
    # Instances of multi-instance steps, read on demand by orchestration/instances.py (not with step_runs).
    instance_runs: dict = field(default_factory=dict)
    instances_starting: set = field(default_factory=set)

    def __post_init__(self):
        self._saved_run = self._run_fields()

    # -- state of the run ---------------------------------------------------
    @property
    def step_runs(self):
        if self._step_runs is None:
            # One query for the steps *and* their stage visits: the engine then
            # finds the current stage and visit numbers in memory instead of
            # asking the database again in every transition.
            self._step_runs = read_step_runs(self.run)
            stage_runs = {} if self._stage_runs is None else self._stage_runs
            for step_run in self._step_runs:
                # One object per stage visit, so a change made through one step is seen by all.
                step_run.stage_run = stage_runs.setdefault(step_run.stage_run_id, step_run.stage_run)
                self._note_open(step_run)
            self._stage_runs = stage_runs
        return self._step_runs

    @property
    def stage_runs(self):
        self.step_runs  # noqa: B018 - loads the stage visits along with the steps
        return self._stage_runs

    def stage_run_in(self, status):
        """The latest stage visit in ``status``, from memory; a query only when not found there.

        A visit of a stage without steps has no step run to be read with, so
        it may be missing from memory: hence the fallback query.
        """
        found = [sr for sr in self.stage_runs.values() if sr.status == status]
        if found:
            return max(found, key=lambda sr: sr.pk)
        if self._closing is not None:
            _save_row(*self.take_closing())  # the database answers as memory would
        return StageRun.objects.filter(run=self.run, status=status).order_by("-id").first()

    def step_runs_of(self, stage_run):
        return [s for s in self.step_runs if s.stage_run_id == stage_run.pk]

    def add_step_runs(self, step_runs):
        self.step_runs.extend(step_runs)
        for step_run in step_runs:
            self._note_open(step_run)

    def _note_open(self, step_run):
        if step_run.stage_run.open_steps is not None:
            self._was_open[step_run.pk] = step_run.status in OPEN_STEP_STATUSES

    def add_stage_run(self, stage_run):
        self.stage_runs[stage_run.pk] = stage_run

    def active_flow(self, api_name):
        """The FlowSpec of the active version of ``api_name``, as of this transition.

        The active versions of every flow the plan names are read in one query
        the first time a step starts in this transition (a stage's parallel
        steps then cost one query, not one each). The rule "a step runs the
        flow version active when it starts" holds: this transition is when
        they start.
        """
        if self._active_flows is None:
            self._active_flows = read_active_flows(self.plan.flow_names)
        flow_id = self._active_flows.get(api_name)
        if flow_id is None:
            return FlowSpec.active(api_name)  # raises FlowNotFound with the reason
        return FlowSpec.load(flow_id)

    @property
    def runs_steps_in_process(self):
        """``BATON_STEP_EXECUTION=in_process`` (as the effects say): background flows run inside the transition."""
        return getattr(self.effects, "runs_steps_in_process", False)

    def latest_step_runs(self):
        latest = {}
        for step_run in self.step_runs:
            latest[step_run.step_name] = step_run
        return latest

    def forget_record(self):
        """The run's record may have changed (a flow wrote it): read it again when next asked for."""
        self._record_loaded = False

    @property
    def record(self):
        if not self._record_loaded:
            self._record = self.run.get_record()
            self._record_loaded = True
        return self._record

    def scope(self):
        """The names expressions see (DESIGN §3), read fresh for this transition."""
        latest = self.latest_step_runs()
        steps = {
            name: {"status": s.status, "outputs": s.outputs or {}, "completed_by": s.completed_by}
            for name, s in latest.items()
            if s.status == StepStatus.COMPLETED
        }
        instances.add_to_scope(self, steps, latest)  # hook: steps.X.instances (multi-instance steps)
        for name, s in latest.items():
            if s.status == StepStatus.ERROR and s.stage_run.status != StageStatus.IN_PROGRESS:
                # A stage's error path reads why it failed (DESIGN §10 on_error).
                steps[name] = {"status": s.status, "outputs": {},
                               "error": {"message": s.error, "element": self.place(self.plan.step(name).stage, name)
                                         if name in self.plan.steps_by_name else name}}
        return {
            "record": record_map(self.record),
            "record_prior": self.run.record_prior,
            "inputs": self.run.inputs or {},
            "steps": steps,
            "run": {
                "id": self.run.pk,
                "started_at": self.run.started_at,
                "started_by": self.run.started_by.get_username() if self.run.started_by_id else None,
                "orchestration": self.plan.api_name,
                "version": self.plan.version,
            },
            "now": self.now,
        }

    def place(self, *parts):
        return " › ".join([self.plan.api_name, *[p for p in parts if p]])

    # -- bookkeeping -------------------------------------------------------
    def event(self, kind, stage="", step="", **data):
        """Note an event of ``kind`` (an ``EventKind``); written with the others by ``flush``."""
        self.events.append(journal.new_event(kind, run=self.run, at=self.now, actor=self.actor,
                                             stage=stage, step=step, **data))

    def save_later(self, obj, fields):
        """Write ``obj``'s ``fields`` when the transition ends, with others of the same kind.

        Steps started together (a stage's parallel steps) are written in one
        UPDATE instead of one each. Nothing in the transition reads them back
        from the database before then.
        """
        self._pending_saves.append((obj, tuple(fields)))

    def _run_fields(self):
        run = self.run
        return (run.status, run.ended_at, run.current_stage, run.stage_visits, run.error)

    def flush(self, run_fields=()):
        """Write what the transition changed: step and stage rows, counts, events, and ``run_fields`` of the run.

        On PostgreSQL all of it is one statement (``write_rows``).
        """
        rows = {}  # (model, pk) -> (obj, its changed fields): one UPDATE per row, never two
        for obj, fields in self._pending_saves:
            _note_row(rows, obj, fields)
        self._pending_saves = []
        if self._closing is not None:
            _note_row(rows, *self.take_closing())
        if run_fields:
            _note_row(rows, self.run, run_fields)
        write_rows(list(rows.values()), self._open_count_changes(), self.events)
        self.events = []

    def close_later(self, stage_run, fields):
        """``stage_run`` closed: write ``fields`` with the next stage visit's insert, or at the end.

        A stage transition closes one visit and opens the next; one statement
        does both on PostgreSQL (``insert_stage_visit``). Nothing in between
        reads a stage's status from the database (``stage_run_in`` writes the
        close first when it has to ask).
        """
        if self._closing is not None:
            _save_row(*self.take_closing())
        self._closing = (stage_run, tuple(fields))

    def take_closing(self):
        """The stage close not yet written (``close_later``), now the caller's to write; or None."""
        closing, self._closing = self._closing, None
        return closing

    def close_count(self, stage_run):
        """``stage_run`` closes in this transition: the fields its closing UPDATE writes for its count.

        A closed stage has no open step, so a counted stage's count is set to
        0 with its status, and ``_open_count_changes`` leaves it alone: one
        statement fewer per stage transition than writing the difference.
        """
        if stage_run.open_steps is None:
            return []
        stage_run.open_steps = 0
        self._counts_closed.add(stage_run.pk)
        return ["open_steps"]

    def _open_count_changes(self):
        """How ``StageRun.open_steps`` of counted stages changed here: ``{stage run id: n}``, to be written.

        Written as a difference (``open_steps + n``), never as a total: a
        worker's counted completion (``worker.complete_background_step``) may have
        changed the count since this transition read its steps.
        """
        if not self._was_open:
            return {}  # no counted stage in this transition: nothing to walk
        changes, stage_runs = {}, {}
        for step_run in self._step_runs or ():
            was = self._was_open.get(step_run.pk)
            if was is None or step_run.stage_run_id in self._counts_closed:
                continue
            now = step_run.status in OPEN_STEP_STATUSES
            if now != was:
                changes[step_run.stage_run_id] = changes.get(step_run.stage_run_id, 0) + (1 if now else -1)
                stage_runs[step_run.stage_run_id] = step_run.stage_run
                self._was_open[step_run.pk] = now
        for pk, change in changes.items():
            stage_runs[pk].open_steps += change
        return {pk: change for pk, change in changes.items() if change}


# ---------------------------------------------------------------------------
# Writing a transition's rows
# ---------------------------------------------------------------------------

def _note_row(rows, obj, fields):
    obj_fields = rows.setdefault((type(obj), obj.pk), (obj, []))[1]
    obj_fields.extend(name for name in fields if name not in obj_fields)


def _save_row(obj, fields):
    obj.save(update_fields=fields)


def write_rows(rows, increments, events):
    """Write a transition's changes: ``rows`` (``(obj, field names)``, one per row), ``increments``
    (``{stage run id: n}`` added to ``open_steps``) and ``events`` (``journal.Event``).

    Rows given the very same values (a stage's parallel steps queued
    together) share one ``UPDATE ... WHERE id IN``. On PostgreSQL the whole
    of it is one statement, each part an UPDATE or INSERT in a ``WITH``: a
    transition's writes were a statement each, and past the round trip each
    cost the ORM's Python time (profiled, ``docs/performance.md``). No part
    touches a row another part touches, which PostgreSQL requires of one
    statement. Elsewhere the ORM writes the parts in turn;
    ``test_a_transition_writes_alike_both_ways`` holds the two ways to the
    same rows.
    """
    increments = dict(increments)
    groups = {}
    for obj, fields in rows:
        fields = tuple(fields)
        change = increments.pop(obj.pk, 0) if isinstance(obj, StageRun) else 0
        assert not (change and "open_steps" in fields), "a stage's count is set or changed, not both"
        key = (type(obj), fields, tuple(_db_value(obj, name) for name in fields), change)
        groups.setdefault(key, []).append(obj)
    groups = [(model, fields, change, objs) for (model, fields, _, change), objs in groups.items()]
    if connection.vendor != "postgresql":
        return _write_rows_with_the_orm(groups, increments, events)
    parts = []
    for model, fields, change, objs in groups:
        model_fields = [model._meta.get_field(name) for name in fields]
        sets = [f"{connection.ops.quote_name(f.column)} = %s" for f in model_fields]
        params = [_db_param(objs[0], f) for f in model_fields]
        if change:
            sets.append("open_steps = open_steps + %s")
            params.append(change)
        parts.append((f"UPDATE {model._meta.db_table} SET {', '.join(sets)} "
                      f"WHERE id IN ({', '.join(['%s'] * len(objs))})", params + [o.pk for o in objs]))
    for pk, change in increments.items():
        parts.append((f"UPDATE {StageRun._meta.db_table} SET open_steps = open_steps + %s WHERE id = %s",
                      [change, pk]))
    if events:
        parts.append(journal.insert_statement(events))
    if not parts:
        return
    *before, (sql, params) = parts
    if before:
        sql = "WITH " + ", ".join(f"w{i} AS ({part})" for i, (part, _) in enumerate(before)) + " " + sql
        params = [p for _, part_params in before for p in part_params] + params
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _write_rows_with_the_orm(groups, increments, events):
    for model, fields, change, objs in groups:
        if len(objs) == 1 and not change:
            objs[0].save(update_fields=fields)
            continue
        values = {model._meta.get_field(name).attname: getattr(objs[0], model._meta.get_field(name).attname)
                  for name in fields}
        if change:
            values["open_steps"] = F("open_steps") + change
        model.objects.filter(pk__in=[o.pk for o in objs]).update(**values)
    for pk, change in increments.items():
        StageRun.objects.filter(pk=pk).update(open_steps=F("open_steps") + change)
    journal.write(events)


def _db_value(obj, name):
    """A hashable stand-in for a field's value, to group rows written alike."""
    value = getattr(obj, obj._meta.get_field(name).attname)
    if isinstance(value, (dict, list)):
        return to_json_text(value)
    return value


def to_json_text(value):
    """``value`` as JSON text with sorted keys (to compare values, and for SQL parameters)."""
    return json.dumps(value, sort_keys=True, default=str)


# ---------------------------------------------------------------------------
# A stage visit's rows
# ---------------------------------------------------------------------------

def insert_stage_visit(run, stage_name, position, visit, now, open_steps, steps, closing=None):
    """Insert a stage visit (``StageRun``) and one waiting ``StepRun`` per ``(name, type)`` in ``steps``.

    ``closing``, when given, is ``(stage run, fields)`` of the visit this
    one follows (``Transition.close_later``), written first.

    Returns ``(stage_run, step_runs)``, saved, in the order of ``steps``. On
    PostgreSQL all of it is one statement (``_stage_visit_sql``): the ORM's
    ``save``, ``create`` and ``bulk_create`` cost three round trips and, for 24 columns
    per step row, most of the Python time of opening a stage (profiled,
    ``docs/performance.md``). Every other column takes the value the model
    gives a new row, read from the model itself, so the two ways write the
    same rows (``test_a_stage_visit_is_inserted_alike_both_ways``).
    """
    stage_run = StageRun(run=run, stage_name=stage_name, position=position, visit=visit, started_at=now,
                         open_steps=open_steps)
    step_runs = [StepRun(run=run, stage_run=stage_run, step_name=name, type=kind, created_at=now)
                 for name, kind in steps]
    if connection.vendor != "postgresql":
        if closing is not None:
            _save_row(*closing)
        return _insert_with_the_orm(stage_run, step_runs)
    close_fields = () if closing is None else tuple(closing[1])
    sql, stage_fields, step_fields = _stage_visit_sql(close_fields)
    params = []
    if closing is not None:
        closed = closing[0]
        params += [_db_param(closed, closed._meta.get_field(name)) for name in close_fields] + [closed.pk]
    params += [_db_param(stage_run, f) for f in stage_fields]
    template = step_runs[0] if step_runs else StepRun(run=run, created_at=now)
    params += [_db_param(template, f) for f in step_fields]
    params += [[name for name, _ in steps], [kind for _, kind in steps]]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:  # the closing UPDATE found no row: nothing was written
        raise StageRun.DoesNotExist(f"{stage_name}: the stage visit {closing[0].pk} it follows is gone")
    stage_run.pk = rows[0][0]
    stage_run._state.adding, stage_run._state.db = False, connection.alias
    ids = {name: step_id for _, step_id, name in rows if step_id is not None}
    for step_run in step_runs:
        step_run.pk = ids[step_run.step_name]
        step_run.stage_run = stage_run
        step_run._state.adding, step_run._state.db = False, connection.alias
    return stage_run, step_runs


def _insert_with_the_orm(stage_run, step_runs):
    stage_run.save(force_insert=True)
    for step_run in step_runs:
        step_run.stage_run = stage_run  # its id is known now
    step_runs = StepRun.objects.bulk_create(step_runs)
    if any(s.pk is None for s in step_runs):  # backends without RETURNING on bulk insert
        step_runs = list(StepRun.objects.filter(stage_run=stage_run).order_by("id"))
    return stage_run, step_runs


def _db_param(obj, f):
    return f.get_db_prep_save(getattr(obj, f.attname), connection)


@functools.cache
def _stage_visit_sql(close_fields=()):
    """The statement of ``insert_stage_visit`` with the fields whose values it takes, in order.

    Built from the models' fields, so a field added later is written too.
    With ``close_fields`` it first writes those of the visit being closed:
    the new visit's insert reads the closing ``UPDATE``'s row, so that
    ``UPDATE`` has run when the one-in-progress index checks the insert.
    """
    stage_fields = [f for f in StageRun._meta.concrete_fields if not f.primary_key]
    step_fields = [f for f in StepRun._meta.concrete_fields
                   if not f.primary_key and f.attname not in ("stage_run_id", "step_name", "type")]
    stage_columns = ", ".join(connection.ops.quote_name(f.column) for f in stage_fields)
    step_columns = ", ".join(connection.ops.quote_name(f.column) for f in step_fields)
    stage_values = ", ".join(["%s"] * len(stage_fields))
    if close_fields:
        sets = ", ".join(f"{connection.ops.quote_name(StageRun._meta.get_field(name).column)} = %s"
                         for name in close_fields)
        closing = f"""closed AS (
    UPDATE {StageRun._meta.db_table} SET {sets} WHERE id = %s RETURNING id
), """
        stage_insert = f"SELECT {stage_values} FROM closed"
    else:
        closing, stage_insert = "", f"VALUES ({stage_values})"
    sql = f"""
WITH {closing}stage AS (
    INSERT INTO {StageRun._meta.db_table} ({stage_columns}) {stage_insert}
    RETURNING id
), steps AS (
    INSERT INTO {StepRun._meta.db_table} ({step_columns}, stage_run_id, step_name, type)
    SELECT {", ".join(["%s"] * len(step_fields))}, stage.id, x.name, x.type
      FROM stage, unnest(%s::text[], %s::text[]) WITH ORDINALITY AS x(name, type, n)
     ORDER BY x.n
    RETURNING id, step_name
)
SELECT stage.id, steps.id, steps.step_name FROM stage LEFT JOIN steps ON true
"""
    return sql, stage_fields, step_fields


def lock_run(run_id, effects=None, actor=None):
    """Lock the run's row and begin a transition on it (call inside ``transaction.atomic``)."""
    run = read_locked_run(run_id)
    return Transition(run=run, plan=Plan.load(run.orchestration_id), effects=effects or default_effects(), actor=actor)


# ---------------------------------------------------------------------------
# A transition's reads
# ---------------------------------------------------------------------------
# On PostgreSQL the three reads every worker transition makes are statements
# built once from the models' fields, their rows made into model instances
# as the ORM makes them (``_select_with``). Compiling the same three ORM
# queries in every transition was about a quarter of a worker transition's
# time under the profiler (``docs/performance.md``). ``test_a_transition_reads_alike_both_ways`` holds
# them to the ORM's answers; other databases use the ORM.

def read_locked_run(run_id):
    """The run (its orchestration with it), its row locked ``FOR UPDATE``; ``DoesNotExist`` when there is none."""
    # FOR UPDATE locks only the run's row (``OF``): with the orchestration
    # joined in, every transition of every run of a version locked that one
    # definition row too, and parallel workers queued on it.
    if connection.vendor != "postgresql":
        return OrchestrationRun.objects.select_for_update(of=("self",)).select_related("orchestration").get(pk=run_id)
    found = _select_with(OrchestrationRun, "orchestration", "WHERE a.id = %s FOR UPDATE OF a", [run_id])
    if not found:
        raise OrchestrationRun.DoesNotExist(f"no run {run_id}")
    return found[0]


def read_step_runs(run):
    """The run's step rows (not its instances: ``instances.py``) in order, each with its stage visit."""
    if connection.vendor != "postgresql":
        return list(StepRun.objects.filter(run=run, instance_index__isnull=True).select_related("stage_run")
                    .order_by("id"))
    return _select_with(StepRun, "stage_run", "WHERE a.run_id = %s AND a.instance_index IS NULL ORDER BY a.id",
                        [run.pk])


def read_active_flows(names):
    """``{api name: id}`` of the active versions of the flows ``names``."""
    if connection.vendor != "postgresql":
        return dict(Flow.objects.filter(api_name__in=names, status=DefinitionStatus.ACTIVE)
                    .values_list("api_name", "pk"))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT api_name, id FROM {Flow._meta.db_table} WHERE api_name = ANY(%s) AND status = %s",
                       [list(names), DefinitionStatus.ACTIVE.value])
        return dict(cursor.fetchall())


def _select_with(model, related_name, tail, params):
    """``model`` instances of the rows ``tail`` (``WHERE ...``, on ``a``) selects, each with its ``related_name``
    row (``b``) joined in, as ``select_related`` gives them."""
    sql, fields, related_fields = _joined_select(model, related_name, tail)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    related_field = model._meta.get_field(related_name)
    make, make_related = _row_maker(model, fields), _row_maker(related_field.related_model, related_fields)
    count = len(fields)
    objs = []
    for row in rows:
        obj = make(row[:count])
        related_field.set_cached_value(obj, make_related(row[count:]))
        objs.append(obj)
    return objs


@functools.cache
def _joined_select(model, related_name, tail):
    related_field = model._meta.get_field(related_name)
    related = related_field.related_model
    fields, related_fields = tuple(model._meta.concrete_fields), tuple(related._meta.concrete_fields)

    def columns(alias, of):
        return ", ".join(f"{alias}.{connection.ops.quote_name(f.column)}" for f in of)

    sql = (f"SELECT {columns('a', fields)}, {columns('b', related_fields)} FROM {model._meta.db_table} AS a "
           f"JOIN {related._meta.db_table} AS b ON b.id = a.{connection.ops.quote_name(related_field.column)} {tail}")
    return sql, fields, related_fields


@functools.cache
def _row_maker(model, fields):
    """A function making a ``model`` instance from values of ``fields`` as the database returns them."""
    names = [f.attname for f in fields]
    converters = [(i, [*connection.ops.get_db_converters(f.cached_col), *f.get_db_converters(connection)], f.cached_col)
                  for i, f in enumerate(fields)]
    converters = [(i, funcs, col) for i, funcs, col in converters if funcs]
    alias = connection.alias

    def make(values):
        values = list(values)
        for i, funcs, col in converters:
            for convert in funcs:
                values[i] = convert(values[i], col, connection)
        return model.from_db(alias, names, values)

    return make


# ---------------------------------------------------------------------------
# Which effects a transition uses
# ---------------------------------------------------------------------------

_chosen_effects = []  # use_effects' stack: the innermost wins


def default_effects():
    """The effects of a transition whose caller passed none: ``use_effects``' object, else ``BATON_EFFECTS``'s class."""
    if _chosen_effects:
        return _chosen_effects[-1]
    return effects_class(baton_settings.BATON_EFFECTS)()


@functools.lru_cache(maxsize=8)
def effects_class(path):
    """The class a ``BATON_EFFECTS`` dotted path names (ImportError when it names nothing)."""
    return import_string(path)


@contextlib.contextmanager
def use_effects(effects):
    """Within the block, transitions that are given no effects use ``effects`` (in every thread).

    The seam for tests and tools that want to see or replace what the engine
    sends, without patching the engine's private functions.
    """
    _chosen_effects.append(effects)
    try:
        yield effects
    finally:
        _chosen_effects.remove(effects)
