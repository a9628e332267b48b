"""What a step needs before it starts: its flow, inputs, assignee, record, due time.

Kept apart from the engine's rules so those stay readable; everything here is
pure computation over the run's scope and raises ``StepFailure`` with a
message naming the place when something does not resolve.
"""
from dataclasses import dataclass, field

from flows.durations import parse_duration
from flows.expressions import ExpressionError, UnstorableValue, evaluate, to_json
from flows.models import FlowType
from flows.versioning import DefinitionStatus

from . import instances
from .exceptions import StepFailure
from .models import Orchestration

FLOW_TYPE_FOR_STEP = {"interactive": FlowType.SCREEN, "background": FlowType.AUTOLAUNCHED}


@dataclass
class PreparedStep:
    flow_id: int
    inputs: dict
    assignee: str = ""
    record_model: str = ""
    record_pk: str = ""
    due_at: object = None
    label: str = ""
    excluded_users: list = field(default_factory=list)


def prepare_step(ctx, step, step_run):
    place = ctx.place(step.stage, step.name)
    if step.is_child_orchestration:
        return PreparedStep(flow_id=None, inputs=_child_inputs(ctx, step, step_run, place), label=step.label)
    try:
        flow = ctx.active_flow(step.flow)
    except LookupError as exc:
        raise StepFailure(f"{place}: {exc}")
    expected = FLOW_TYPE_FOR_STEP[step.type]
    if flow.type != expected:
        raise StepFailure(f"{place}: flow {step.flow} v{flow.version} is {flow.type}, a {step.type} step needs {expected}")
    scope = instances.scope_for(ctx, step_run)  # an instance also sees its item and index
    inputs = _check_inputs(flow, _evaluate_inputs(step, scope, place), place)
    prepared = PreparedStep(flow_id=flow.id, inputs=inputs, label=step.label)
    if step.is_interactive:
        prepared.assignee = resolve_assignee(step, scope, place)
        prepared.excluded_users = resolve_exclude(step, scope, place)
        check_not_excluded(prepared.assignee, prepared.excluded_users, f"{place} › assignee")
        prepared.record_model, prepared.record_pk = _work_item_record(ctx, step, scope, place)
        if step.due_in:
            try:
                prepared.due_at = ctx.now + parse_duration(step.due_in)
            except ValueError as exc:
                raise StepFailure(f"{place} › due_in: {exc}")
    return prepared


def _evaluate_inputs(step, scope, place):
    """The step's input mapping evaluated in ``scope``, as storable values."""
    inputs = {}
    for name, expression in step.inputs.items():
        try:
            inputs[name] = to_json(evaluate(expression, scope, f"{place} › inputs.{name}"))
        except ExpressionError as exc:
            raise StepFailure(str(exc))
        except UnstorableValue as exc:
            raise StepFailure(f"{place} › inputs.{name}: {expression!r} gave a value that cannot be stored: {exc}")
    return inputs


def _child_inputs(ctx, step, step_run, place):
    """A sub-orchestration step's inputs, checked against its orchestration's declared inputs."""
    from flows.runtime import check_variables

    inputs = _evaluate_inputs(step, instances.scope_for(ctx, step_run), place)
    declared = (Orchestration.objects.filter(api_name=step.child_orchestration, status=DefinitionStatus.ACTIVE)
                .values_list("inputs", flat=True).first())
    cleaned, errors = check_variables(list(declared or []), inputs)
    if errors:
        detail = "; ".join(f"inputs.{name}: {message}" for name, message in errors.items())
        raise StepFailure(f"{place}: {detail}")
    return to_json(cleaned)


def _check_inputs(flow, inputs, place):
    from flows.runtime import check_inputs

    cleaned, errors = check_inputs(flow, inputs)
    if errors:
        detail = "; ".join(f"inputs.{name}: {message}" for name, message in errors.items())
        raise StepFailure(f"{place}: {detail}")
    return to_json(cleaned)


def resolve_assignee(step, scope, place):
    """``"user:NAME"``, ``"group:NAME"`` or ``"queue:NAME"`` for an interactive step.

    An ``assignees`` step's instance is given to its element; ``same_as`` gives
    the person who completed the named step (``steps.X.completed_by``).
    """
    if step.assignees:
        value = scope.get("item")
        if not isinstance(value, str) or value.partition(":")[0] not in ("user", "group", "queue") or ":" not in value:
            raise StepFailure(f"{place} › assignees: element {scope.get('index')} is {value!r}; "
                              'expected "user:NAME", "group:NAME" or "queue:NAME"')
        return value
    if step.assignee_type == "same_as":
        done = scope["steps"].get(step.assignee) or {}
        if not done.get("completed_by"):
            raise StepFailure(f"{place} › assignee.same_as: step {step.assignee} has not been completed by a person "
                              f"in this run, so there is nobody to give this step to")
        return f"user:{done['completed_by']}"
    if step.assignee_type == "expr":
        try:
            value = evaluate(step.assignee, scope, f"{place} › assignee")
        except ExpressionError as exc:
            raise StepFailure(str(exc))
        if not isinstance(value, str) or value.partition(":")[0] not in ("user", "group", "queue") or ":" not in value:
            raise StepFailure(f"{place} › assignee: {step.assignee!r} gave {value!r}; "
                              'expected "user:NAME", "group:NAME" or "queue:NAME"')
        return value
    if step.assignee_type in ("user", "group", "queue") and step.assignee:
        return f"{step.assignee_type}:{step.assignee}"
    raise StepFailure(f"{place}: an interactive step needs an assignee")


def _work_item_record(ctx, step, scope, place):
    if not step.record:
        return ctx.run.record_model, ctx.run.record_pk
    try:
        value = evaluate(step.record, scope, f"{place} › record")
    except ExpressionError as exc:
        raise StepFailure(str(exc))
    if isinstance(value, dict):
        pk = value.get("pk", value.get("id"))
        return ctx.run.record_model, "" if pk is None else str(pk)
    if isinstance(value, str) and ":" in value:
        model, _, pk = value.partition(":")
        return model.lower(), pk
    if value is None:
        return "", ""
    raise StepFailure(f"{place} › record: {step.record!r} gave {value!r}; expected a record map or \"app_label.model:pk\"")


def resolve_exclude(step, scope, place):
    """The usernames ``assignee.exclude`` gives (separation of duties): a username, a list of them, or none.

    ``"user:NAME"`` counts as NAME; empty values (a step nobody completed) are
    dropped. Anything else is an error naming the place.
    """
    if not step.assignee_exclude:
        return []
    try:
        value = evaluate(step.assignee_exclude, scope, f"{place} › assignee.exclude")
    except ExpressionError as exc:
        raise StepFailure(str(exc))
    values = value if isinstance(value, list) else [value]
    names = []
    for v in values:
        if v is None or v == "":
            continue
        if not isinstance(v, str):
            raise StepFailure(f"{place} › assignee.exclude: {step.assignee_exclude!r} gave {v!r}; expected usernames")
        name = v.partition(":")[2] if v.startswith("user:") else v
        if name not in names:
            names.append(name)
    return names


def check_not_excluded(assignee, excluded, place):
    """A step given by name to someone its exclude names cannot open: the definition contradicts itself."""
    kind, _, name = assignee.partition(":")
    if kind == "user" and name in excluded:
        raise StepFailure(f"{place}: {assignee} is excluded from this step by assignee.exclude "
                          f"(separation of duties: {', '.join(excluded)})")
