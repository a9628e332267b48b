"""Builders for flow definitions in tests, through the ORM (drafts unless told)."""
import itertools

from flows.compiled import FlowSpec
from flows.models import Flow, FlowElement, FlowVariable, Screen, ScreenField

_names = itertools.count(1)


def make_flow(type="autolaunched", *, api_name=None, inputs=(), outputs=(), elements=(), screens=(),
              implementation="", status="draft", version=1):
    """A Flow row with its parts.

    ``inputs``/``outputs``: dicts ``{name, type, required, default, value}``;
    ``elements``: dicts as in the definition file (``type``, optional
    ``name``, the rest is the config); ``screens``: dicts ``{name, label,
    validate, validate_message, fields: [field dicts]}``.
    """
    flow = Flow.objects.create(
        api_name=api_name or f"test_flow_{next(_names)}", type=type, implementation=implementation, version=version,
    )
    for direction, variables in ((FlowVariable.INPUT, inputs), (FlowVariable.OUTPUT, outputs)):
        for position, var in enumerate(variables):
            FlowVariable.objects.create(flow=flow, direction=direction, position=position, **var)
    for position, element in enumerate(elements):
        config = dict(element)
        FlowElement.objects.create(
            flow=flow, position=position, type=config.pop("type"), name=config.pop("name", ""), config=config,
        )
    for position, screen in enumerate(screens):
        screen = dict(screen)
        fields = screen.pop("fields", [])
        validate = screen.pop("validate", None)
        if isinstance(validate, dict):
            screen["validate"] = validate.get("condition", "")
            screen["validate_message"] = validate.get("message", "")
        elif validate:
            screen["validate"] = validate
        row = Screen.objects.create(flow=flow, position=position, **screen)
        for field_position, field in enumerate(fields):
            ScreenField.objects.create(screen=row, position=field_position, **field)
    if status != "draft":
        flow.status = status
        flow.save(update_fields=["status"])
    return flow


def autolaunched(*elements, inputs=(), outputs=(), **kwargs):
    return FlowSpec.load(make_flow("autolaunched", inputs=inputs, outputs=outputs, elements=elements, **kwargs))


def evaluation(*elements, inputs=(), outputs=({"name": "condition_met", "type": "boolean"},), **kwargs):
    return FlowSpec.load(make_flow("evaluation", inputs=inputs, outputs=outputs, elements=elements, **kwargs))


def screen_flow(*screens, inputs=(), outputs=(), **kwargs):
    return FlowSpec.load(make_flow("screen", inputs=inputs, outputs=outputs, screens=screens, **kwargs))


def var(name, type="text", **extra):
    return {"name": name, "type": type, **extra}


def field(name, type="text", **extra):
    return {"name": name, "type": type, **extra}


def screen(name, *fields, **extra):
    return {"name": name, "fields": list(fields), **extra}
