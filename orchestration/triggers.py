"""Record-triggered starts, through model signals, paying nothing for unwatched models.

An in-memory index maps each watched model (``app_label.model``) to the
plans of active record-triggered orchestrations on it. Signal receivers are
connected only for the models an orchestration may watch or a run may be
about: those of ``BATON_FLOW_MODELS`` (activation refuses any other start
model) and any model the index names.

No save misses an activation that came before it. Every change to an
orchestration, stage or step bumps a one-row counter in its own transaction
(``TriggerIndexVersion``). Before a save of a connected model (``pre_save``)
the index is checked against that counter, and rebuilt when it moved,
unless it was checked less than ``BATON_TRIGGER_CHECK_INTERVAL`` seconds
ago (0.25; 0: before every save). ``lifecycle.activate`` returns only that
long after its commit (``wait_until_seen``), so once it has returned, every
save begun in any process checks the counter after the commit and starts
the run. A save concurrent with the activation (begun before it returned)
has no order with it: it may start a run or not, never half of one. The
interval keeps the check off most saves (one single-row read per process
per interval instead of one per save: a read cost as much as the save
itself, benchmark 4).

Saving a watched record whose start condition is false costs nothing more
than the save (benchmark 4, ``docs/performance.md``): the stored row is read
for ``record_prior`` only when some start condition could hold, and running
runs are looked up only for models that some version's pending conditions
can read (see ``_sensitive_models``).
"""
import re
import functools
import logging
import threading
import time

from django.apps import apps
from django.core.signals import setting_changed
from django.db import connection, transaction
from django.db.models import DateField, Field, Q, TimeField
from django.db.models.signals import post_delete, post_save, pre_save

from flows.compiled import clear_cache
from flows.expressions import ExpressionError, evaluate_condition, to_cel

from . import engine
from .conf import baton_settings
from .models import Orchestration, OrchestrationRun, RunStatus, Stage, Step
from .plan import Plan, forget as forget_plans
from .records import (
    allowed_models, check_flow_models, exposed_attnames, forget_settings, model_label, record_map, record_values,
    setting_key,
)

log = logging.getLogger(__name__)

_lock = threading.Lock()
_index = {}  # "app.model" -> tuple of Plans
_sensitive = frozenset()  # models whose saves may change a running run's pending conditions ("*": any)
_connected = set()  # model classes with receivers
_stamp = None  # what the index was built from
_version = None  # the stored TriggerIndexVersion it was built at (None: not built)
_checked_at = 0.0  # time.monotonic() when the stored version was last read (taken before the read)
_local = threading.local()

_VERSION_TABLE = "orchestration_triggerindexversion"
_READ_VERSION = f"SELECT value FROM {_VERSION_TABLE} WHERE id = 1"
# One statement on SQLite and PostgreSQL alike, even when a flushed test database lost the row.
_BUMP_VERSION = (f"INSERT INTO {_VERSION_TABLE} (id, value) VALUES (1, 1) "
                 f"ON CONFLICT (id) DO UPDATE SET value = {_VERSION_TABLE}.value + 1")


def stored_version():
    """The committed (or, inside a transaction, this transaction's) trigger index version."""
    with connection.cursor() as cursor:
        cursor.execute(_READ_VERSION)
        row = cursor.fetchone()
    return row[0] if row else 0


def bump_version(**_):
    """Move the trigger index version on, in the current transaction: every process rebuilds at its next save."""
    with connection.cursor() as cursor:
        cursor.execute(_BUMP_VERSION)


def watchers_for(label):
    """The active plans watching ``label``, from an index checked to be current."""
    _ensure_index()
    return _index.get(label, ())


def _current_stamp():
    rows = Orchestration.objects.filter(status="active", start_type="record_triggered").values_list("id", flat=True)
    return tuple(sorted(rows)), _sensitive_models()


_READS_RECORD = re.compile(r"\b(record|record_prior|now)\b")


def _sensitive_models():
    """Models a save of which may change what a running run's pending conditions say.

    Saving a record re-checks its running runs (``engine.record_changed``),
    which costs a query on every save of every exposed model. That can only
    matter to a run whose version has a step entry or exit condition, or a
    stage exit condition, that reads ``record`` (or ``now``), or that is an
    evaluation flow (which may read anything). Runs are on their version's
    ``start_model``, or on any model when it has none ("*"). Drafts may be
    edited at any moment, so each counts as sensitive. Two small queries over
    the definition tables, made when the index is checked, keep the lookup
    off the saves of models no such condition can read.
    """
    labels = set()
    for model in Orchestration.objects.filter(status="draft").values_list("start_model", flat=True):
        labels.add((model or "*").lower())
    steps = Step.objects.filter(
        Q(entry_type__in=["condition", "evaluation_flow"]) | Q(exit_type__in=["condition", "evaluation_flow"])
    ).values_list("stage__orchestration__start_model", "entry_type", "entry_condition", "exit_type", "exit_condition")
    for model, entry_type, entry, exit_type, exit_ in steps:
        if (entry_type == "evaluation_flow" or exit_type == "evaluation_flow"
                or _READS_RECORD.search(entry or "") or _READS_RECORD.search(exit_ or "")):
            labels.add((model or "*").lower())
    stages = Stage.objects.exclude(exit_type="all_steps_complete").values_list(
        "orchestration__start_model", "exit_type", "exit_condition")
    for model, exit_type, exit_ in stages:
        if exit_type == "evaluation_flow" or _READS_RECORD.search(exit_ or ""):
            labels.add((model or "*").lower())
    return frozenset(labels)


def rebuild(force=False, version=None):
    """Read active record-triggered orchestrations and (re)connect receivers.

    ``version`` is the stored version just read (else it is read here),
    always before the definitions: a bump in between makes the next save
    rebuild again, never keep an index older than its version says.
    """
    global _index, _stamp, _sensitive, _version, _checked_at
    with _lock:
        read_at = None
        if version is None:
            read_at = time.monotonic()
            version = stored_version()
        stamp = _current_stamp()
        if stamp == _stamp and not force:
            _version = version
            if read_at is not None:
                _checked_at = max(_checked_at, read_at)
            return
        index = {}
        for orch in Orchestration.objects.filter(pk__in=stamp[0]):
            plan = Plan.load(orch)
            index.setdefault(plan.start_model, []).append(plan)
        # One assignment: a save in another thread sees the old index or the new one, never half of one.
        _index = {label: tuple(plans) for label, plans in index.items()}
        _sensitive = stamp[1]
        wanted = set()
        for label in set(index) | allowed_models():
            try:
                wanted.add(apps.get_model(label))
            except (LookupError, ValueError):
                log.warning("orchestration trigger on unknown model %s", label)
        for model in wanted - _connected:
            post_save.connect(_post_save, sender=model, dispatch_uid=f"baton-post-{model_label(model)}")
            # pre_save checks the index version (and reads the stored row for record_prior when needed).
            pre_save.connect(_pre_save, sender=model, dispatch_uid=f"baton-pre-{model_label(model)}")
        for model in _connected - wanted:
            post_save.disconnect(sender=model, dispatch_uid=f"baton-post-{model_label(model)}")
            pre_save.disconnect(sender=model, dispatch_uid=f"baton-pre-{model_label(model)}")
        _connected.clear()
        _connected.update(wanted)
        _stamp = stamp
        _version = version
        if read_at is not None:  # as _ensure_index: recorded once the index reflects the read
            _checked_at = max(_checked_at, read_at)


def definitions_changed():
    """Called after an activation commits (or by code that changed definitions with ``QuerySet.update``).

    Bumps the version for the other processes too: an activation through
    ``lifecycle.activate`` has bumped it already, in its transaction, as
    every save of a definition row does; a second bump costs nothing but a
    rebuild elsewhere.
    """
    forget_plans()
    clear_cache()
    forget_settings()  # settings assigned at run time (the benchmark does) count from here
    _forget_interval()
    bump_version()
    rebuild(force=True)


def reset():
    """Forget the index (tests): the next save reads it again."""
    global _index, _stamp, _version
    _forget_interval()
    with _lock:
        _index = {}
        _stamp = None
        _version = None


def install():
    """Connect the receivers; the index itself is built lazily (no queries at import).

    The models of ``BATON_FLOW_MODELS`` are the only ones an orchestration
    may start on, so connecting them now means no watched save goes unseen,
    whenever the orchestration watching it was activated. A change to a
    definition row bumps the index version in its own transaction.
    """
    check_flow_models()  # a mistake in the setting stops start-up, not a save later
    for model in (Orchestration, Stage, Step):
        post_save.connect(bump_version, sender=model, dispatch_uid=f"baton-version-{model_label(model)}")
        post_delete.connect(bump_version, sender=model, dispatch_uid=f"baton-version-del-{model_label(model)}")
    for label in allowed_models():
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError):
            continue
        pre_save.connect(_pre_save, sender=model, dispatch_uid=f"baton-pre-{model_label(model)}")
        post_save.connect(_post_save, sender=model, dispatch_uid=f"baton-post-{model_label(model)}")
        _connected.add(model)


_interval = None  # BATON_TRIGGER_CHECK_INTERVAL, read once (reading settings on every save cost more than the check)


def _check_interval():
    global _interval
    interval = _interval
    if interval is None:
        interval = _interval = baton_settings.BATON_TRIGGER_CHECK_INTERVAL
    return interval


def _forget_interval(setting=None, **_):
    global _interval
    if setting in (None, "BATON_TRIGGER_CHECK_INTERVAL"):
        _interval = None


setting_changed.connect(_forget_interval, dispatch_uid="baton-trigger-interval")


def _ensure_index():
    """Rebuild the index if a definition changed anywhere, checked at most once per interval.

    The time is taken before the read: the read then sees at least every
    commit made before that time, which is what ``wait_until_seen`` counts on.
    It is recorded only once the index reflects that read, so another thread
    never skips its check on the strength of a rebuild still under way.
    """
    global _checked_at
    now = time.monotonic()
    if _version is not None and now - _checked_at < _check_interval():
        return
    version = stored_version()
    if version != _version:
        rebuild(version=version)
    _checked_at = max(_checked_at, now)


def wait_until_seen():
    """Wait until every process checks the index version again before its next save.

    Called after an activation commits: each process checks at most
    ``BATON_TRIGGER_CHECK_INTERVAL`` seconds apart, so once that long has
    passed (plus a margin for clocks ticking at slightly different rates)
    any save that begins anywhere reads a version at least as new as the
    activation. The interval is the same setting in every process.
    """
    interval = _check_interval()
    if interval > 0:
        time.sleep(interval * 1.01 + 0.01)


def _verdicts(plans, instance):
    """``{orchestration_id: False}`` for each update-starting plan whose condition is false
    for the values being saved, and whether the stored row must be read (``record_prior``).

    Only a plan that may start on update needs the prior row, and only if its
    condition could hold: a condition that does not read ``record_prior`` is
    tested here on the values being saved, and when it is false for every
    such plan the read is skipped (the common save of a watched record: no
    extra query). A plan that starts but never reads ``record_prior``
    (``Plan.reads_record_prior``) needs no read either, and when no plan of
    the model reads it ``pre_save`` does nothing at all. The values are those
    before the fields' own ``pre_save`` (``auto_now``); ``post_save`` reuses a "false" only for models whose
    fields cannot change then (``_stable_on_update``), and otherwise tests
    again.
    """
    verdicts, needs_prior = {}, False
    for plan in plans:
        if plan.start_when not in ("updated", "created_or_updated"):
            continue
        if not plan.start_condition or "record_prior" in plan.start_condition:
            # It starts (or may): the row is read if the run can use it.
            needs_prior = needs_prior or plan.reads_record_prior
            continue
        try:
            holds = _condition_holds(plan.start_condition, instance, f"{plan.api_name} › start.condition")
        except ExpressionError:
            holds = True  # post_save evaluates again and reports it
        if holds:
            needs_prior = needs_prior or plan.reads_record_prior
        else:
            verdicts[plan.orchestration_id] = False
    return verdicts, needs_prior


# Verdicts of start conditions that read ``record`` alone, by the values they read. Such a condition
# is a pure function of those values (CEL has no clock, and the scope holds nothing else), and the
# fields start conditions read (a status, a stage, a flag) take few values: a watched model's saves
# mostly repeat verdicts already computed. Bounded; emptied when full.
_VERDICTS_KEPT = 4096
_verdicts_by_values = {}


def _condition_holds(source, instance, place):
    """``evaluate_condition(source, {"record": ...})`` for a start condition that does not read
    ``record_prior``, remembered by the values of the fields it reads (``_verdicts_by_values``).

    Only a condition that names its fields (``record.NAME``) is remembered, and only for hashable
    values; the key carries each value's type (``1``, ``1.0`` and ``True`` hash alike and may not
    compare alike in CEL). An error is never remembered: it is raised each time.
    """
    attnames = _attnames_for(type(instance), setting_key(), source)
    if attnames is None:
        return evaluate_condition(source, {"record": record_map(instance)}, place)
    values = tuple(instance.pk if attname is None else getattr(instance, attname) for _, attname in attnames)
    key = (source, attnames, values, tuple(type(v) for v in values))
    try:
        return _verdicts_by_values[key]
    except KeyError:
        pass
    except TypeError:  # an unhashable value (a JSON field's list or dict): evaluated each time
        key = None
    holds = evaluate_condition(source, {"record": {name: to_cel(value) for (name, _), value in zip(attnames, values)}},
                               place)
    if key is not None:
        if len(_verdicts_by_values) >= _VERDICTS_KEPT:
            _verdicts_by_values.clear()
        _verdicts_by_values[key] = holds
    return holds


_FIELD_REF = re.compile(r"\brecord\.([A-Za-z_]\w*)")
_ANY_REF = re.compile(r"\brecord\b")


@functools.lru_cache(maxsize=1024)
def _record_fields(source):
    """The record fields ``source`` reads as ``record.NAME``, or None if it uses ``record`` otherwise."""
    names = _FIELD_REF.findall(source)
    if len(_ANY_REF.findall(source)) != len(names):
        return None
    return tuple(sorted(set(names)))


def _record_for(source, instance):
    """The ``record`` map for ``source``: only the fields it reads, when it names them.

    CEL converts the whole map it is given on every evaluation; a map of the
    one or two fields a start condition reads evaluates about three times
    faster than the whole record (measured: 11 µs → 4 µs), which is most of
    what a watched save costs when the condition is false. A name that is
    not an exposed field is left out, as it is from the whole map (missing:
    false).
    """
    attnames = _attnames_for(type(instance), setting_key(), source)
    if attnames is None:
        return record_map(instance)
    return {name: to_cel(instance.pk if attname is None else getattr(instance, attname))
            for name, attname in attnames}


@functools.lru_cache(maxsize=1024)
def _attnames_for(model, key, source):
    """``((name, attname), ...)`` of the exposed fields of ``model`` (``records.exposed_attnames``, ``key``
    being ``records.setting_key()``) that ``source`` reads, or None when it reads ``record`` otherwise
    than by name.

    Looked up once per model, settings and condition: on every save it cost
    more than the evaluation itself.
    """
    names = _record_fields(source)
    if names is None:
        return None
    return tuple(pair for pair in exposed_attnames(model, key) if pair[0] in names)


@functools.lru_cache(maxsize=None)
def _stable_on_update(model):
    """Whether no field of ``model`` changes its value while an update is saved
    (no ``auto_now``, no field with a ``pre_save`` of its own other than dates')."""
    for f in model._meta.concrete_fields:
        if getattr(f, "auto_now", False):
            return False
        if type(f).pre_save is not Field.pre_save and not isinstance(f, (DateField, TimeField)):
            return False
    return True


def _pre_save(sender, instance, raw=False, **kwargs):
    if raw:
        return
    _ensure_index()  # the one check per save that the index is current (post_save relies on it)
    if instance.pk is None:
        return
    plans = _index.get(model_label(sender))
    if not plans or not any(p.reads_record_prior for p in plans):
        return  # nothing needs the stored row: post_save tests the conditions once
    verdicts, needs_prior = _verdicts(plans, instance)
    if verdicts and _stable_on_update(sender):
        # post_save need not evaluate these conditions again on the same values.
        _state("verdicts")[(sender, instance.pk)] = verdicts
    if not needs_prior:
        return
    prior = sender._default_manager.filter(pk=instance.pk).first()
    _state("priors")[(sender, instance.pk)] = record_values(prior) if prior is not None else None


def _state(name):
    value = getattr(_local, name, None)
    if value is None:
        value = {}
        setattr(_local, name, value)
    return value


def runs_to_start(plans, instance, prior, created):
    """The plans whose start condition holds for this save."""
    plans = [p for p in plans if not (created is True and p.start_when == "updated")
             and not (created is False and p.start_when == "created")]
    if not plans:
        return []  # nothing to evaluate: skip converting the record
    prior_map = None
    if prior is not None:
        prior_map = to_cel(prior)
    chosen = []
    for plan in plans:
        if created is True and plan.start_when == "updated":
            continue
        if created is False and plan.start_when == "created":
            continue
        if not plan.start_condition:
            chosen.append(plan)
            continue
        place = f"{plan.api_name} › start.condition"
        try:
            if "record_prior" in plan.start_condition:
                # Only the fields the condition reads, when it names them (see _record_for).
                record = _record_for(plan.start_condition, instance)
                holds = evaluate_condition(plan.start_condition, {"record": record, "record_prior": prior_map}, place)
            else:
                holds = _condition_holds(plan.start_condition, instance, place)
            if holds and plan.only_when_changed_to_meet and created is False and prior_map is not None:
                holds = not evaluate_condition(
                    plan.start_condition, {"record": prior_map, "record_prior": None}, place
                )
        except ExpressionError as exc:
            log.warning("start condition failed, no run started: %s", exc)
            continue
        if holds:
            chosen.append(plan)
    return chosen


def _post_save(sender, instance, created, raw=False, **kwargs):
    if raw:
        return
    if _version is None:  # pre_save was not connected when this save began
        _ensure_index()
    label = model_label(sender)
    priors = getattr(_local, "priors", None) or {}
    prior = priors.pop((sender, instance.pk), None)
    verdicts = (getattr(_local, "verdicts", None) or {}).pop((sender, instance.pk), None)
    plans = _index.get(label)
    if plans and verdicts and created is False:
        plans = [p for p in plans if p.orchestration_id not in verdicts]
    chosen = runs_to_start(plans, instance, prior, created) if plans else ()
    if chosen:
        # starts imports this module (start_for asks it which orchestrations a record starts), so this
        # side of the pair is taken when a save starts a run, after both have loaded.
        from .starts import start_on_commit

        for plan in chosen:
            start_on_commit(plan, instance, prior)
    if not created and (label in _sensitive or "*" in _sensitive) and label in allowed_models():
        run_ids = list(
            OrchestrationRun.objects.filter(
                record_model=label, record_pk=str(instance.pk), status=RunStatus.RUNNING
            ).values_list("id", flat=True)
        )
        if run_ids:
            def recheck():
                for run_id in run_ids:
                    engine.record_changed(run_id)

            transaction.on_commit(recheck)

