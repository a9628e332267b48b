"""Flow definitions as plain data (the definition file format) and back.

``flow_from_dict(data)`` creates a ``Flow`` version with all its rows
(variables, screens and fields, elements); ``flow_to_dict(flow)`` gives the
same mapping back, leaving out every key that holds its default value, so an
exported file stays short and ``flow_to_dict(flow_from_dict(d)) == d`` for a
mapping ``d`` written without defaults.

The shape of ``data`` is checked by the definition file schema
(``orchestration.definition_files``); these functions trust it.
"""
from django.db import transaction

from .models import Flow, FlowElement, FlowVariable, Screen, ScreenField
from .versioning import DefinitionStatus

VARIABLE_DEFAULTS = {"type": "text", "required": False, "default": None, "value": ""}
FIELD_DEFAULTS = {
    "type": "text", "label": "", "help_text": "", "required": False, "default": "",
    "visible_if": "", "choices": [], "text": "",
}


def _put(out, key, value, default):
    if value != default:
        out[key] = value


def _variable_to_dict(variable):
    out = {"name": variable.name}
    for key, default in VARIABLE_DEFAULTS.items():
        _put(out, key, getattr(variable, key), default)
    return out


def _field_to_dict(field):
    out = {"name": field.name}
    for key, default in FIELD_DEFAULTS.items():
        _put(out, key, getattr(field, key), default)
    return out


def _screen_to_dict(screen):
    out = {"name": screen.name}
    _put(out, "label", screen.label, "")
    out["fields"] = [_field_to_dict(f) for f in screen.fields.all()]
    if screen.validate or screen.validate_message:
        validate = {"condition": screen.validate}
        _put(validate, "message", screen.validate_message, "")
        out["validate"] = validate
    return out


def _element_to_dict(element):
    out = {"type": element.type}
    if element.name:
        out["name"] = element.name
    for key, value in (element.config or {}).items():
        if key not in ("type", "name"):
            out[key] = value
    return out


def flow_to_dict(flow):
    """The definition-file mapping of ``flow`` (one version), defaults omitted."""
    out = {"api_name": flow.api_name}
    _put(out, "label", flow.label, "")
    _put(out, "description", flow.description, "")
    out["type"] = flow.type
    _put(out, "implementation", flow.implementation, "")
    variables = list(flow.variables.all())
    inputs = [_variable_to_dict(v) for v in variables if v.direction == FlowVariable.INPUT]
    outputs = [_variable_to_dict(v) for v in variables if v.direction == FlowVariable.OUTPUT]
    if inputs:
        out["inputs"] = inputs
    if outputs:
        out["outputs"] = outputs
    screens = [_screen_to_dict(s) for s in flow.screens.all()]
    if screens:
        out["screens"] = screens
    elements = [_element_to_dict(e) for e in flow.elements.all()]
    if elements:
        out["elements"] = elements
    return out


def _variable_from_dict(flow, direction, position, data):
    return FlowVariable(
        flow=flow, direction=direction, position=position, name=data["name"],
        type=data.get("type", "text"), required=bool(data.get("required", False)),
        default=data.get("default"), value=data.get("value") or "",
    )


def _write_parts(flow, data):
    """Create ``flow``'s variables, screens with their fields, and elements from a definition mapping.

    ``flow`` is a draft being written (new, or emptied by ``replace_flow_content``), so its parts are
    written in bulk: a few queries per kind of part instead of one save each.
    """
    FlowVariable.objects.bulk_create([
        _variable_from_dict(flow, FlowVariable.INPUT, i, v) for i, v in enumerate(data.get("inputs") or [])
    ] + [
        _variable_from_dict(flow, FlowVariable.OUTPUT, i, v) for i, v in enumerate(data.get("outputs") or [])
    ])
    fields = []
    for position, screen_data in enumerate(data.get("screens") or []):
        validate = screen_data.get("validate") or {}
        screen = Screen.objects.create(
            flow=flow, position=position, name=screen_data["name"], label=screen_data.get("label") or "",
            validate=validate.get("condition") or "", validate_message=validate.get("message") or "",
        )
        for fpos, field in enumerate(screen_data.get("fields") or []):
            fields.append(ScreenField(
                screen=screen, position=fpos, name=field["name"], type=field.get("type", "text"),
                label=field.get("label") or "", help_text=field.get("help_text") or "",
                required=bool(field.get("required", False)), default=field.get("default") or "",
                visible_if=field.get("visible_if") or "", choices=list(field.get("choices") or []),
                text=field.get("text") or "",
            ))
    ScreenField.objects.bulk_create(fields)
    FlowElement.objects.bulk_create([
        FlowElement(flow=flow, position=position, name=element.get("name") or "", type=element["type"],
                    config={k: v for k, v in element.items() if k not in ("type", "name")})
        for position, element in enumerate(data.get("elements") or [])
    ])


@transaction.atomic
def flow_from_dict(data, status=DefinitionStatus.DRAFT, version=None):
    """Create a ``Flow`` version (with all its parts) from a definition mapping.

    ``version`` defaults to the next number for the api_name. The rows are
    written as a draft; a different ``status`` is set at the end (no
    validation: use ``orchestration.lifecycle.activate`` for that).
    """
    api_name = data["api_name"]
    flow = Flow.objects.create(
        api_name=api_name,
        version=version or Flow.next_version_number(api_name),
        status=DefinitionStatus.DRAFT,
        label=data.get("label") or "",
        description=data.get("description") or "",
        type=data["type"],
        implementation=data.get("implementation") or "",
    )
    _write_parts(flow, data)
    if status != DefinitionStatus.DRAFT:
        flow.set_lifecycle_status(status)
    return flow


@transaction.atomic
def replace_flow_content(flow, data):
    """Make the draft ``flow`` hold ``data`` (a definition mapping of the same api_name): same row, new parts.

    The flow designer stores every change this way, so what it keeps is
    exactly what importing ``data`` would keep. The caller checks that
    ``flow`` is a draft and that ``data`` has the definition file's shape.
    """
    if flow.status != DefinitionStatus.DRAFT:
        raise ValueError(f"{flow.api_name} v{flow.version} is {flow.status}; only a draft can be changed")
    flow.label = data.get("label") or ""
    flow.description = data.get("description") or ""
    flow.type = data["type"]
    flow.implementation = data.get("implementation") or ""
    flow.save(update_fields=["label", "description", "type", "implementation"])
    flow.variables.all().delete()
    ScreenField.objects.filter(screen__flow=flow).delete()
    flow.screens.all().delete()
    flow.elements.all().delete()
    _write_parts(flow, data)
    return flow


def copy_as_new_version(flow):
    """A new draft of ``flow``'s api_name with the same content and the next version number."""
    return flow_from_dict(flow_to_dict(flow))
