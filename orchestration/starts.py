"""Starting runs: on demand (``launch``) and for records (``start_for``)."""
import json
import logging
from datetime import timedelta

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from flows.compiled import FlowSpec
from flows.expressions import UnstorableValue, to_json
from flows.values import check_variables

from . import engine
from .conf import baton_settings
from .models import Orchestration, OrchestrationRun, PendingStart, RunStatus
from .plan import Plan
from .records import RecordError, exposed_fields, load_record, model_label, resolve_record_ref
from .triggers import runs_to_start, watchers_for

log = logging.getLogger(__name__)


class LaunchError(ValidationError):
    """Launch refused: ``message_dict`` names each bad input (or ``record``/``orchestration``)."""


def active_orchestration(api_name):
    orch = Orchestration.objects.filter(api_name=api_name, status="active").first()
    if orch is None:
        raise LaunchError({"orchestration": [f"no active orchestration named {api_name!r}"]})
    return orch


def check_launch_inputs(orch, inputs):
    if inputs is not None and not isinstance(inputs, dict):
        raise LaunchError({"inputs": ["must be an object of input names to values"]})
    cleaned, errors = check_variables(list(orch.inputs or []), inputs or {})
    if errors:
        raise LaunchError({f"inputs.{name}": [message] for name, message in errors.items()})
    return cleaned


def check_json_size(name, value, error=LaunchError):
    """Refuse ``value`` (named ``name`` in the error) when its JSON is larger than ``BATON_MAX_INPUT_BYTES``.

    The one size rule for what people hand Baton (launch inputs, skip
    outputs, screen values): counted in UTF-8 bytes, as the setting says.
    """
    limit = baton_settings.BATON_MAX_INPUT_BYTES
    try:
        size = len(json.dumps(value, default=str).encode())
    except (TypeError, ValueError, RecursionError):
        raise error({name: ["must be JSON values"]})
    if size > limit:
        raise error({name: [f"is too large ({size} bytes; at most {limit}, setting BATON_MAX_INPUT_BYTES)"]})


def check_input_size(inputs):
    """Refuse inputs whose JSON is larger than ``BATON_MAX_INPUT_BYTES``."""
    check_json_size("inputs", inputs)


def skipped_step_flow(run, step_name):
    """The flow a step runs, for its output declarations: its recorded version, else the active one (or None)."""
    step_run = run.step_runs.filter(step_name=step_name).order_by("-id").first()
    try:
        if step_run is not None and step_run.flow_id:
            return FlowSpec.load(step_run.flow_id)
        return FlowSpec.active(Plan.load(run.orchestration_id).step(step_name).flow)
    except Exception:
        return None


def clean_skip_outputs(run, step_name, outputs, spec=None):
    """The outputs an operator completes a step with by hand, checked once for the API and the monitor.

    A JSON object within ``BATON_MAX_INPUT_BYTES``; each name one the step's
    flow declares (``spec``, else ``skipped_step_flow``), of its type. Names
    not given stay unset: a skip may give only some outputs. Raises
    ``ValidationError`` keyed ``outputs`` or ``outputs.NAME``.
    """
    if not isinstance(outputs, dict):
        raise ValidationError({"outputs": ['must be a JSON object: {"name": value, ...}']})
    check_json_size("outputs", outputs, ValidationError)
    try:
        to_json(outputs)
    except UnstorableValue as exc:  # NaN, Infinity, "\ud800": json.loads takes them, the run's pages could not
        raise ValidationError({"outputs": [f"cannot be stored: {exc}"]}) from None
    spec = spec or skipped_step_flow(run, step_name)
    if spec is None:
        return dict(outputs)
    cleaned, errors = check_variables(spec.outputs, outputs)
    errors = {name: message for name, message in errors.items() if name in outputs or name == "__all__"}
    if errors:
        raise ValidationError({"outputs" if name == "__all__" else f"outputs.{name}": [message]
                               for name, message in errors.items()})
    return {name: cleaned.get(name) for name in outputs}


def check_record_model(api_name, orch, instance):
    """Refuse a record whose model lacks (or hides) a field the orchestration's expressions read:
    the run would stop in error at its first read (``record.department`` of an auth.user)."""
    read = Plan.load(orch).record_fields_read
    if not read:
        return
    try:
        exposed = set(exposed_fields(instance))
    except ImproperlyConfigured:
        exposed = {"id", "pk"}
    missing = [name for name in read if name not in exposed]
    if missing:
        listed = ", ".join(f"record.{name}" for name in missing[:5]) + (", …" if len(missing) > 5 else "")
        raise LaunchError({"record": [
            f"{api_name} reads {listed}, which a {model_label(instance)} record does not have "
            f"(or does not expose: see BATON_FLOW_MODELS): give a record of the model it was written for"]})


def launch(api_name, inputs=None, record=None, user=None):
    """Start a run of the active version of ``api_name``. Raises LaunchError, creating nothing, on bad input."""
    orch = active_orchestration(api_name)
    check_input_size(inputs)
    cleaned = check_launch_inputs(orch, inputs)
    try:
        instance = resolve_record_ref(record)
    except RecordError as exc:
        raise LaunchError({"record": exc.messages})
    if instance is not None and orch.start_model and model_label(instance) != orch.start_model.lower():
        raise LaunchError({"record": [f"{api_name} runs on {orch.start_model} records, not {model_label(instance)}"]})
    if instance is not None:
        check_record_model(api_name, orch, instance)
    if instance is None and Plan.load(orch).reads_record:
        # Its expressions read ``record``: without one the run would stop in error at once.
        what = f"a {orch.start_model} record" if orch.start_model else "a record"
        raise LaunchError({"record": [f"{api_name} reads record in its expressions: give {what} {{model, pk}}"]})
    return engine.start_run(orch, record=instance, inputs=cleaned, user=user)


def start_for(records):
    """Start the record-triggered orchestrations whose condition holds for ``records``.

    For writes that send no signals (``bulk_create``, ``QuerySet.update``).
    Also re-checks the pending conditions of runs already on those records.
    Returns the runs started.
    """
    started = []
    for record in records:
        label = model_label(record)
        for plan in runs_to_start(watchers_for(label), record, prior=None, created=None):
            started.append(engine.start_run(plan.orchestration_id, record=record))
        for run_id in OrchestrationRun.objects.filter(
            record_model=label, record_pk=str(record.pk), status=RunStatus.RUNNING
        ).values_list("id", flat=True):
            engine.record_changed(run_id)
    return started


def start_on_commit(plan, record, prior, user=None):
    """Start a record-triggered run once the saving transaction has committed.

    A ``PendingStart`` row is written now, inside the saving transaction, so
    the start is as durable as the save; the run starts after commit and the
    row goes with it (``start_pending``). Whatever stops that — a process
    killed between commit and start, a failure while starting — leaves the
    row for the sweeper.

    With ``BATON_RECORD_STARTS=worker`` a worker starts the run instead. On
    PostgreSQL the row's insert notifies the workers' listeners (migration
    0005, ``orchestration/listener.py``): the saving request pays for the
    row only. Elsewhere it publishes a Celery message, and if that cannot
    be published, the run starts here after all.
    """
    pending = PendingStart.objects.create(
        orchestration_id=plan.orchestration_id, record_model=model_label(record), record_pk=str(record.pk),
        record_prior=to_json(prior_to_store(plan, prior)) if prior is not None else None,
    )
    pending_id = pending.pk
    user_id = getattr(user, "pk", None)

    def start():
        if baton_settings.BATON_RECORD_STARTS == "worker":
            if connection.vendor == "postgresql":
                return  # the row's insert notified the workers (orchestration/listener.py)
            if send_start_message(pending_id, user_id):
                return  # a worker starts it; if the message is lost, the sweeper does
        try_start_pending(pending_id, user=user)  # the record is saved; never fail the caller for its run

    transaction.on_commit(start)
    return pending


def prior_to_store(plan, prior):
    """The part of ``prior`` (the exposed fields before the save) that ``plan`` reads as ``record_prior``.

    The pending start and the run keep only these, so a field no expression
    of the version reads is never copied into their rows (or the API).
    """
    names = plan.record_prior_fields
    if names is None:
        return prior
    return {name: value for name, value in prior.items() if name in names}


def send_start_message(pending_id, user_id=None):
    """Publish the start of a pending run for a worker (``BATON_RECORD_STARTS=worker``). False if it could not be sent.

    A broker that cannot be reached costs nothing but the attempt: the caller
    then starts the run itself, as in ``on_commit`` mode.
    """
    # The Celery task module imports this one (its sweeper starts pending runs); importing it here, when a
    # message is sent, keeps the two modules from each needing the other loaded first.
    from .tasks import start_pending_run

    try:
        start_pending_run.apply_async((pending_id, user_id))
        return True
    except Exception as exc:  # kombu's OperationalError and friends when the broker is away
        log.warning("could not send pending start %s to the broker (%s); starting it here", pending_id, exc)
        return False


def try_start_pending(pending_id, user=None):
    """``start_pending``, but a failure is logged and counted on the row (for the sweeper), never raised.

    Returns the run, None when there was nothing to start, or ``FAILED``.
    """
    try:
        return start_pending(pending_id, user=user)
    except Exception as exc:
        log.exception("starting the run for pending start %s failed; the sweeper will retry", pending_id)
        PendingStart.objects.filter(pk=pending_id).update(attempts=F("attempts") + 1, error=str(exc)[:2000])
        return FAILED


FAILED = object()


def start_pending(pending_id, user=None):
    """Start the run a ``PendingStart`` stands for and delete it, in one transaction.

    Returns the run, or None when the row is gone (already started by
    someone else) or its record no longer exists.
    """
    with transaction.atomic():
        pending = _take_pending(pending_id)
        if pending is None:
            return None
        record = load_record(pending.record_model, pending.record_pk)
        run = None
        if record is not None:
            run = engine.start_run(pending.orchestration_id, record=record, record_prior=pending.record_prior,
                                   user=user)
    return run


def _take_pending(pending_id):
    """Delete the pending start in the caller's transaction and return it; None when it is gone or being started.

    The row stays locked (deleted) until the transaction ends, so the
    sweeper's ``skip_locked`` passes it by; if the start fails, the rollback
    puts it back. On PostgreSQL the lock, the read and the delete are one
    statement (``DELETE ... RETURNING``), one round trip fewer per start.
    """
    if connection.vendor != "postgresql":
        pending = PendingStart.objects.select_for_update(skip_locked=True).filter(pk=pending_id).first()
        if pending is not None:
            PendingStart.objects.filter(pk=pending.pk).delete()
        return pending
    fields = [f for f in PendingStart._meta.concrete_fields]
    table = PendingStart._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {table} WHERE id = (SELECT id FROM {table} WHERE id = %s FOR UPDATE SKIP LOCKED) "
            f"RETURNING {', '.join(connection.ops.quote_name(f.column) for f in fields)}", [pending_id])
        row = cursor.fetchone()
    if row is None:
        return None
    values = [f.from_db_value(value, None, connection) if hasattr(f, "from_db_value") else value
              for f, value in zip(fields, row)]
    return PendingStart.from_db(connection.alias, [f.attname for f in fields], values)


def start_leftover_pending(older_than_seconds=None, now=None):
    """Start the runs of pending starts older than the given age (the sweeper). Returns how many."""
    age = baton_settings.BATON_START_LEASE if older_than_seconds is None else older_than_seconds
    cutoff = (now or timezone.now()) - timedelta(seconds=age)
    started = 0
    for pending_id in PendingStart.objects.filter(created_at__lt=cutoff).values_list("id", flat=True)[:500]:
        if try_start_pending(pending_id) not in (None, FAILED):
            started += 1
    return started
