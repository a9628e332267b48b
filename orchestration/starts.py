"""Starting runs: on demand (``launch``) and for records (``start_for``)."""
from django.core.exceptions import ValidationError
from django.db import transaction

from . import engine
from .models import Orchestration, OrchestrationRun, RunStatus
from .records import RecordError, model_label, resolve_record_ref


class LaunchError(ValidationError):
    """Launch refused: ``message_dict`` names each bad input (or ``record``/``orchestration``)."""


def active_orchestration(api_name):
    orch = Orchestration.objects.filter(api_name=api_name, status="active").first()
    if orch is None:
        raise LaunchError({"orchestration": [f"no active orchestration named {api_name!r}"]})
    return orch


def check_launch_inputs(orch, inputs):
    from flows.runtime import check_variables

    if inputs is not None and not isinstance(inputs, dict):
        raise LaunchError({"inputs": ["must be an object of input names to values"]})
    cleaned, errors = check_variables(list(orch.inputs or []), inputs or {})
    if errors:
        raise LaunchError({f"inputs.{name}": [message] for name, message in errors.items()})
    return cleaned


def check_input_size(inputs):
    """Refuse inputs whose JSON is larger than ``BATON_MAX_INPUT_BYTES``."""
    import json

    from django.conf import settings

    limit = getattr(settings, "BATON_MAX_INPUT_BYTES", 256 * 1024)
    try:
        size = len(json.dumps(inputs, default=str).encode())
    except (TypeError, ValueError, RecursionError):
        raise LaunchError({"inputs": ["must be JSON values"]})
    if size > limit:
        raise LaunchError({"inputs": [f"are too large ({size} bytes; at most {limit}, setting BATON_MAX_INPUT_BYTES)"]})


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
    return engine.start_run(orch, record=instance, inputs=cleaned, user=user)


def start_for(records):
    """Start the record-triggered orchestrations whose condition holds for ``records``.

    For writes that send no signals (``bulk_create``, ``QuerySet.update``).
    Also re-checks the pending conditions of runs already on those records.
    Returns the runs started.
    """
    from .triggers import runs_to_start, watchers_for

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
    """Start a record-triggered run once the saving transaction has committed."""
    record_id = record.pk
    model = type(record)

    def start():
        fresh = model._default_manager.filter(pk=record_id).first()
        if fresh is not None:
            engine.start_run(plan.orchestration_id, record=fresh, record_prior=prior, user=user)

    transaction.on_commit(start)
