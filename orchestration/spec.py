"""Orchestration definitions as plain data (the definition file format) and back.

``orchestration_from_dict(data)`` creates an ``Orchestration`` version with
its stages, decisions, outcomes and steps as rows; ``orchestration_to_dict``
gives the mapping back with every default left out.
"""
from django.db import transaction

from flows.versioning import DefinitionStatus

from .models import (
    DecisionOutcome, Orchestration, Stage, StageExit, StageKind, StartType, Step, StepEntry,
    StepExit, StepType,
)

STEP_DEFAULTS = {"retries": 3, "timeout": "10m"}
# A wait step's keys in the file format and the Step fields that hold them.
WAIT_KEYS = {"for": "wait_for", "until": "wait_until", "event": "wait_event", "timeout": "wait_timeout",
             "on_timeout": "on_timeout"}


def _put(out, key, value, default=""):
    if value != default:
        out[key] = value


# ---------------------------------------------------------------- to dict

def _condition_to_dict(kind, condition, flow, flow_inputs):
    if kind == "condition":
        return {"condition": condition}
    out = {"evaluation_flow": flow}
    if flow_inputs:
        out["inputs"] = dict(flow_inputs)
    return out


def _step_to_dict(step):
    out = {"name": step.name}
    _put(out, "label", step.label)
    _put(out, "type", step.type, StepType.BACKGROUND)
    if step.flow or step.type in (StepType.INTERACTIVE, StepType.BACKGROUND):
        out["flow"] = step.flow
    if step.inputs:
        out["inputs"] = dict(step.inputs)
    if step.entry_type == StepEntry.AFTER:
        out["entry"] = {"after": list(step.entry_after or [])}
    elif step.entry_type == StepEntry.CONDITION:
        out["entry"] = {"condition": step.entry_condition}
    elif step.entry_type == StepEntry.EVALUATION_FLOW:
        out["entry"] = _condition_to_dict("evaluation_flow", "", step.entry_flow, step.entry_flow_inputs)
    if step.exit_type != StepExit.STEP_COMPLETES:
        out["exit"] = _condition_to_dict(step.exit_type, step.exit_condition, step.exit_flow, step.exit_flow_inputs)
    if step.assignee_type or step.assignee_exclude:
        out["assignee"] = {step.assignee_type: step.assignee} if step.assignee_type else {}
        _put(out["assignee"], "exclude", step.assignee_exclude)
    _put(out, "assignees", step.assignees)
    _put(out, "record", step.record)
    _put(out, "due_in", step.due_in)
    _put(out, "escalate_to", step.escalate_to)
    _put(out, "priority", step.priority, 50)
    _put(out, "for_each", step.for_each)
    _put(out, "completion", step.completion, "all")
    _put(out, "sequential", step.sequential, False)
    _put(out, "remaining", step.remaining)
    if step.type == StepType.ORCHESTRATION:
        out["orchestration"] = step.child_orchestration
    if step.type == StepType.WAIT:
        # A wait step's "timeout" is how long it waits for its event; it has no retries.
        for key, attr in WAIT_KEYS.items():
            _put(out, key, getattr(step, attr))
        return out
    for key, default in STEP_DEFAULTS.items():
        _put(out, key, getattr(step, key), default)
    return out


def _stage_to_dict(stage):
    if stage.kind == StageKind.DECISION:
        out = {"type": "decision", "name": stage.name}
        _put(out, "label", stage.label)
        outcomes = []
        for outcome in stage.outcomes.all():
            item = {"name": outcome.name}
            if outcome.condition_flow:
                item.update(_condition_to_dict("evaluation_flow", "", outcome.condition_flow,
                                               outcome.condition_flow_inputs))
            else:
                item["condition"] = outcome.condition
            item["goto"] = outcome.goto
            outcomes.append(item)
        out["outcomes"] = outcomes
        _put(out, "default", stage.default_goto)
        return out
    out = {"name": stage.name}
    _put(out, "label", stage.label)
    _put(out, "next", stage.next)
    if stage.exit_type != StageExit.ALL_STEPS_COMPLETE:
        out["exit"] = _condition_to_dict(stage.exit_type, stage.exit_condition, stage.exit_flow,
                                         stage.exit_flow_inputs)
    if stage.on_error_goto:
        out["on_error"] = {"goto": stage.on_error_goto}
    steps = [_step_to_dict(s) for s in stage.steps.all()]
    if steps:
        out["steps"] = steps
    return out


def orchestration_to_dict(orch):
    """The definition-file mapping of one orchestration version, defaults omitted."""
    out = {"api_name": orch.api_name}
    _put(out, "label", orch.label)
    _put(out, "description", orch.description)
    if orch.start_type == StartType.RECORD_TRIGGERED:
        start = {"type": StartType.RECORD_TRIGGERED.value}
        _put(start, "model", orch.start_model)
        _put(start, "when", orch.start_when)
        _put(start, "condition", orch.start_condition)
        _put(start, "only_when_changed_to_meet", orch.only_when_changed_to_meet, False)
    else:
        start = {"type": StartType.AUTOLAUNCHED.value}
    out["start"] = start
    if orch.inputs:
        out["inputs"] = [
            {k: v for k, v in variable.items()
             if not (k == "type" and v == "text") and not (k == "required" and v is False)
             and not (k == "default" and v is None)}
            for variable in orch.inputs
        ]
    _put(out, "max_stage_visits", orch.max_stage_visits, 50)
    if orch.outputs:
        out["outputs"] = dict(orch.outputs)
    out["path"] = [_stage_to_dict(stage) for stage in orch.stages.prefetch_related("steps", "outcomes")]
    return out


# ---------------------------------------------------------------- from dict

def _condition_from(value, default_kind):
    """(kind, condition, flow, flow_inputs) for an entry/exit value."""
    if value is None or isinstance(value, str):
        return (value or default_kind), "", "", {}
    if "evaluation_flow" in value:
        return "evaluation_flow", "", value["evaluation_flow"], dict(value.get("inputs") or {})
    if "condition" in value:
        return "condition", value["condition"], "", {}
    if "after" in value:
        return "after", "", "", {}
    return default_kind, "", "", {}


def _step_from_dict(stage, position, data):
    entry = data.get("entry")
    entry_kind, entry_condition, entry_flow, entry_flow_inputs = _condition_from(entry, StepEntry.STAGE_START)
    exit_kind, exit_condition, exit_flow, exit_flow_inputs = _condition_from(data.get("exit"), StepExit.STEP_COMPLETES)
    assignee = dict(data.get("assignee") or {})
    exclude = assignee.pop("exclude", "") or ""
    assignee_type, assignee_value = "", ""
    if assignee:
        assignee_type, assignee_value = next(iter(assignee.items()))
    kind = data.get("type") or StepType.BACKGROUND
    wait = {attr: str(data.get(key) or "") for key, attr in WAIT_KEYS.items()} if kind == StepType.WAIT else {}
    return Step.objects.create(
        stage=stage, position=position, name=data["name"], label=data.get("label") or "",
        type=kind, flow=data.get("flow") or "",
        inputs=dict(data.get("inputs") or {}),
        entry_type=entry_kind,
        entry_after=list(entry.get("after") or []) if isinstance(entry, dict) else [],
        entry_condition=entry_condition, entry_flow=entry_flow, entry_flow_inputs=entry_flow_inputs,
        exit_type=exit_kind, exit_condition=exit_condition, exit_flow=exit_flow, exit_flow_inputs=exit_flow_inputs,
        assignee_type=assignee_type, assignee="" if assignee_value is None else str(assignee_value),
        record=data.get("record") or "", due_in=str(data.get("due_in") or ""),
        escalate_to=data.get("escalate_to") or "", priority=data.get("priority", 50),
        retries=data.get("retries", 3) if kind != StepType.WAIT else 0,
        timeout=str(data.get("timeout", "10m")) if kind != StepType.WAIT else "10m",
        assignee_exclude=str(exclude), assignees=data.get("assignees") or "",
        for_each=data.get("for_each") or "", completion=data.get("completion", "all"),
        sequential=bool(data.get("sequential", False)), remaining=_remaining(data.get("remaining")),
        child_orchestration=(data.get("orchestration") or "") if kind == StepType.ORCHESTRATION else "",
        **wait,
    )


def _remaining(value):
    """``remaining``: ``continue``, or the default (the rest are discontinued), which may be said out loud."""
    return "" if value in (None, "", "discontinue") else value


def create_path(orch, path):
    """Store the path elements of a definition mapping as ``orch``'s stage, step and outcome rows."""
    for position, element in enumerate(path):
        if element.get("type") == "decision":
            stage = Stage.objects.create(
                orchestration=orch, position=position, kind=StageKind.DECISION, name=element["name"],
                label=element.get("label") or "", default_goto=element.get("default") or "",
            )
            for opos, outcome in enumerate(element.get("outcomes") or []):
                DecisionOutcome.objects.create(
                    stage=stage, position=opos, name=outcome.get("name") or "",
                    condition=outcome.get("condition") or "",
                    condition_flow=outcome.get("evaluation_flow") or "",
                    condition_flow_inputs=dict(outcome.get("inputs") or {}),
                    goto=outcome.get("goto") or "",
                )
            continue
        exit_kind, exit_condition, exit_flow, exit_flow_inputs = _condition_from(
            element.get("exit"), StageExit.ALL_STEPS_COMPLETE
        )
        stage = Stage.objects.create(
            orchestration=orch, position=position, kind=StageKind.STAGE, name=element["name"],
            label=element.get("label") or "", next=element.get("next") or "",
            exit_type=exit_kind, exit_condition=exit_condition, exit_flow=exit_flow,
            exit_flow_inputs=exit_flow_inputs,
            on_error_goto=(element.get("on_error") or {}).get("goto") or "",
        )
        for spos, step in enumerate(element.get("steps") or []):
            _step_from_dict(stage, spos, step)


def _top_level_fields(data):
    start = data.get("start") or {"type": StartType.AUTOLAUNCHED}
    return dict(
        label=data.get("label") or "",
        description=data.get("description") or "",
        start_type=start.get("type") or StartType.AUTOLAUNCHED,
        start_model=(start.get("model") or "").lower(),
        start_when=start.get("when") or "",
        start_condition=start.get("condition") or "",
        only_when_changed_to_meet=bool(start.get("only_when_changed_to_meet", False)),
        inputs=[dict(v) for v in data.get("inputs") or []],
        max_stage_visits=data.get("max_stage_visits", 50),
        outputs=dict(data.get("outputs") or {}),
    )


@transaction.atomic
def orchestration_from_dict(data, status=DefinitionStatus.DRAFT, version=None):
    """Create an ``Orchestration`` version with all its parts from a definition mapping."""
    api_name = data["api_name"]
    orch = Orchestration.objects.create(
        api_name=api_name,
        version=version or Orchestration.next_version_number(api_name),
        status=DefinitionStatus.DRAFT,
        **_top_level_fields(data),
    )
    create_path(orch, data.get("path") or [])
    if status != DefinitionStatus.DRAFT:
        orch.set_lifecycle_status(status)
    return orch


@transaction.atomic
def replace_draft_content(orch, data):
    """Make draft ``orch`` hold exactly the definition mapping ``data`` (its api_name and version stay).

    The builder's undo and YAML view use it; a frozen version refuses (``FrozenDefinition``).
    """
    for key, value in _top_level_fields(data).items():
        setattr(orch, key, value)
    orch.save()
    orch.stages.all().delete()
    create_path(orch, data.get("path") or [])
    return orch


def copy_as_new_version(orch):
    """A new draft of ``orch``'s api_name with the same content and the next version number."""
    return orchestration_from_dict(orchestration_to_dict(orch))
