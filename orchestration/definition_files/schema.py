"""The shape of a definition document, as a JSON Schema, and the checks a document's names must pass.

``check_shape(data)`` lists what the schema refuses, in plain words, each
problem naming its path and line; ``check_duplicates(data)`` the names used
twice where they must be unique. Name lengths and the shortening of long
names in messages are ``orchestration.validation``'s rules (the validator
checks the same names in definitions made any other way).
"""
import jsonschema

from flows.models import ELEMENT_TYPES, FIELD_TYPES, VARIABLE_TYPES
from flows.validation import ELEMENT_KEYS, Problem

from ..validation import NAME_MAX_LENGTH, short_name, shorten
from .yaml_lines import line_of, place_at, short_repr

_TEXT = {"type": "string"}
_NAME = {"type": "string", "minLength": 1}
_IDENT = {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$", "maxLength": NAME_MAX_LENGTH}
_SLUG = {"type": "string", "pattern": r"^[-a-zA-Z0-9_]+$", "maxLength": NAME_MAX_LENGTH}
# The name of a stage, decision or screen: slug-like, as api_name.
_ELEMENT_NAME = _SLUG
# A name stored in a 100-character column, or a reference to one (flow, goto, next, default).
_REF = {**_NAME, "maxLength": NAME_MAX_LENGTH}
_EXPR_MAP = {"type": "object", "additionalProperties": _TEXT}
_NAMES = {"type": "array", "items": _NAME}


def _obj(properties, required=()):
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": False}


VARIABLE = _obj({
    "name": _IDENT, "type": {"enum": VARIABLE_TYPES}, "required": {"type": "boolean"}, "default": {}, "value": _TEXT,
}, ["name"])

_CHOICE = {
    "if": {"type": "object"},
    "then": _obj({"value": {"type": ["string", "number", "boolean"]}, "label": _TEXT}, ["value"]),
    "else": {"type": ["string", "number", "boolean"]},
}
FIELD = _obj({
    "name": _IDENT, "type": {"enum": FIELD_TYPES}, "label": _TEXT, "help_text": _TEXT, "required": {"type": "boolean"},
    "default": _TEXT, "visible_if": _TEXT, "choices": {"type": "array", "items": _CHOICE}, "text": _TEXT,
}, ["name"])
SCREEN = _obj({
    "name": _ELEMENT_NAME, "label": _TEXT, "fields": {"type": "array", "items": FIELD},
    "validate": _obj({"condition": _NAME, "message": _TEXT}, ["condition"]),
}, ["name"])

_ELEMENT_PROPS = {
    "set": _EXPR_MAP,
    "outcomes": {"type": "array", "minItems": 1,
                 "items": _obj({"name": _TEXT, "condition": _NAME, "goto": _REF}, ["condition", "goto"])},
    "default": _REF,
    "model": _REF, "filter": _EXPR_MAP, "values": _EXPR_MAP, "into": _IDENT, "first": {"type": "boolean"},
    "order_by": {"type": ["string", "array"], "items": _TEXT}, "limit": {"type": "integer", "minimum": 1},
    "to": _NAME, "subject": _TEXT, "body": _TEXT,
    "method": {"enum": ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "get", "post", "put", "patch", "delete", "head"]},
    "url": _NAME, "headers": {"type": "object", "additionalProperties": _TEXT}, "timeout": {"type": "number", "minimum": 0},
    "action": _REF, "inputs": _EXPR_MAP,
}
_ELEMENT_REQUIRED = {
    "assign": ["set"], "decision": ["outcomes"], "get_records": ["model", "into"], "create_record": ["model", "values"],
    "update_records": ["model", "values"], "send_email": ["to", "subject"], "http_request": ["url"], "action": ["action"],
}
ELEMENT = {
    "type": "object",
    "required": ["type"],
    "properties": {"type": {"enum": ELEMENT_TYPES}},
    "allOf": [
        {
            "if": {"properties": {"type": {"const": kind}}, "required": ["type"]},
            "then": _obj(
                {"type": {"const": kind}, "name": _IDENT,
                 **{key: _ELEMENT_PROPS[key] for key in sorted(ELEMENT_KEYS[kind])}},
                ["type"] + _ELEMENT_REQUIRED[kind],
            ),
        }
        for kind in ELEMENT_TYPES
    ],
}

FLOW = _obj({
    "api_name": _SLUG, "label": _TEXT, "description": _TEXT, "type": {"enum": ["screen", "autolaunched", "evaluation"]},
    "implementation": _TEXT, "inputs": {"type": "array", "items": VARIABLE},
    "outputs": {"type": "array", "items": VARIABLE}, "screens": {"type": "array", "items": SCREEN},
    "elements": {"type": "array", "items": ELEMENT},
}, ["api_name", "type"])

QUEUE = _obj({"name": _REF, "email": {"type": "string"}, "members": _NAMES, "member_groups": _NAMES}, ["name"])

_CONDITION_OBJ = {
    **_obj({"condition": _NAME, "evaluation_flow": _REF, "inputs": _EXPR_MAP}),
    "oneOf": [{"required": ["condition"]}, {"required": ["evaluation_flow"]}],
    "dependentSchemas": {"inputs": {"required": ["evaluation_flow"]}},
}


def _either(word, obj):
    return {"if": {"type": "string"}, "then": {"const": word}, "else": obj}


_COMPLETION = {"oneOf": [
    {"enum": ["all", "any"]},
    _obj({"at_least": {"type": "integer", "minimum": 1}}, ["at_least"]),
    _obj({"percent": {"type": "number", "exclusiveMinimum": 0, "maximum": 100}}, ["percent"]),
    _obj({"condition": _NAME}, ["condition"]),
]}

STEP = _obj({
    "name": _IDENT, "label": _TEXT, "type": {"enum": ["interactive", "background", "orchestration", "wait"]},
    "flow": _REF, "orchestration": _REF,
    "for_each": _NAME, "assignees": _NAME, "completion": _COMPLETION, "sequential": {"type": "boolean"},
    "remaining": {"enum": ["continue", "discontinue"]},
    "for": _NAME, "until": _NAME, "event": _REF, "on_timeout": {"enum": ["complete", "error"]},
    "inputs": _EXPR_MAP,
    "entry": _either("stage_start", {
        **_obj({"after": {**_NAMES, "minItems": 1}, "condition": _NAME, "evaluation_flow": _REF, "inputs": _EXPR_MAP}),
        "oneOf": [{"required": ["after"]}, {"required": ["condition"]}, {"required": ["evaluation_flow"]}],
        "dependentSchemas": {"inputs": {"required": ["evaluation_flow"]}},
    }),
    "exit": _either("step_completes", _CONDITION_OBJ),
    "assignee": {**_obj({"user": _NAME, "group": _NAME, "queue": _NAME, "expr": _NAME, "same_as": _IDENT,
                         "exclude": _NAME}),
                 "minProperties": 1, "maxProperties": 2},
    "record": _TEXT, "due_in": _NAME, "escalate_to": {"type": "string", "pattern": r"^(user|group|queue):.+$"},
    "retries": {"type": "integer", "minimum": 0}, "timeout": _NAME,
    "priority": {"type": "integer", "minimum": 0, "maximum": 100},
}, ["name"])

STAGE = _obj({
    "type": {"const": "stage"}, "name": _ELEMENT_NAME, "label": _TEXT, "next": _REF,
    "exit": _either("all_steps_complete", _CONDITION_OBJ), "steps": {"type": "array", "items": STEP},
    "on_error": _obj({"goto": _REF}, ["goto"]),
}, ["name"])

OUTCOME = {
    **_obj({"name": _REF, "condition": _NAME, "evaluation_flow": _REF, "inputs": _EXPR_MAP, "goto": _REF},
           ["name", "goto"]),
    "oneOf": [{"required": ["condition"]}, {"required": ["evaluation_flow"]}],
    "dependentSchemas": {"inputs": {"required": ["evaluation_flow"]}},
}
DECISION = _obj({
    "type": {"const": "decision"}, "name": _ELEMENT_NAME, "label": _TEXT,
    "outcomes": {"type": "array", "minItems": 1, "items": OUTCOME}, "default": _REF,
}, ["type", "name", "outcomes", "default"])

PATH_ELEMENT = {
    "type": "object",
    "if": {"properties": {"type": {"const": "decision"}}, "required": ["type"]},
    "then": DECISION,
    "else": STAGE,
}

START = _obj({
    "type": {"enum": ["record_triggered", "autolaunched"]}, "model": _REF,
    "when": {"enum": ["created", "updated", "created_or_updated"]}, "condition": _TEXT,
    "only_when_changed_to_meet": {"type": "boolean"},
}, ["type"])

ORCHESTRATION = _obj({
    "api_name": _SLUG, "label": _TEXT, "description": _TEXT, "start": START,
    "inputs": {"type": "array", "items": VARIABLE}, "max_stage_visits": {"type": "integer", "minimum": 1},
    "path": {"type": "array", "items": PATH_ELEMENT}, "outputs": _EXPR_MAP,
}, ["api_name", "path"])

DOCUMENT_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    **_obj({
        "queues": {"type": "array", "items": QUEUE},
        "flows": {"type": "array", "items": FLOW},
        "orchestrations": {"type": "array", "items": ORCHESTRATION},
    }),
}

_VALIDATOR = jsonschema.Draft202012Validator(DOCUMENT_SCHEMA)
_JSON_TYPES = {dict: "a mapping", list: "a list", str: "text", bool: "a boolean", int: "a number",
               float: "a number", type(None): "null"}


def _json_type(value):
    for kind, name in _JSON_TYPES.items():
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _describe(error):
    """``(extra path, message)`` for a jsonschema error, in plain words."""
    validator, instance, schema = error.validator, error.instance, error.schema
    if validator == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        extras = [k for k in instance if k not in schema.get("properties", {})]
        return [([key], f"unknown key {short_repr(key)} (allowed: {', '.join(allowed)})") for key in extras]
    if validator == "required":
        missing = [k for k in error.validator_value if k not in instance]
        return [([], f"missing required key {k!r}") for k in missing]
    if validator == "type":
        wanted = error.validator_value
        wanted = " or ".join(wanted) if isinstance(wanted, list) else wanted
        names = {"string": "text", "object": "a mapping", "array": "a list", "integer": "a whole number",
                 "number": "a number", "boolean": "true or false"}
        wanted = " or ".join(names.get(w, w) for w in wanted.split(" or "))
        return [([], f"expected {wanted}, got {_json_type(instance)} {short_repr(instance)}")]
    if validator == "enum":
        return [([], f"{short_repr(instance)} is not one of: {', '.join(map(str, error.validator_value))}")]
    if validator == "const":
        return [([], f"expected {error.validator_value!r}, got {short_repr(instance)}")]
    if validator == "oneOf":
        keys = [k for sub in error.validator_value for k in sub.get("required", [])]
        return [([], f"give exactly one of: {', '.join(keys)}")]
    if validator == "pattern":
        return [([], f"{short_repr(instance)} does not match the expected form ({error.validator_value})")]
    if validator == "maxLength":
        return [([], f"is {len(instance):,} characters long; at most {error.validator_value} "
                     f"({short_repr(instance)})")]
    if validator in ("minItems", "minLength", "minProperties"):
        return [([], "must not be empty")]
    if validator == "maxProperties":
        return [([], f"give only one of: {', '.join(schema.get('properties', {}))}")]
    if validator == "dependentSchemas":
        return [([], "inputs go with evaluation_flow")]
    return [([], shorten(error.message, 300))]


def check_shape(data):
    """Problems with the document's shape (schema), each naming its path and line."""
    problems = []
    if data is None:
        return problems
    if not isinstance(data, dict):
        return [Problem(place_at(data, []), f"the document must be a mapping with queues, flows and orchestrations, "
                                            f"got {_json_type(data)}")]
    errors = sorted(_VALIDATOR.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    for error in errors:
        path = list(error.absolute_path)
        for extra, message in _describe(error):
            problems.append(Problem(place_at(data, path + extra), message))
    return problems


def _dupes(problems, data, items, base, key, what, scope=""):
    seen = {}
    for path, item in items:
        if not isinstance(item, dict) or not isinstance(item.get(key), str):
            continue
        name = item[key]
        if name in seen:
            first = line_of(data, seen[name] + [key])
            problems.append(Problem(
                place_at(data, path + [key]),
                f"{what} {short_name(name)!r} is defined twice{scope}" + (f" (first on line {first})" if first else ""),
            ))
        else:
            seen[name] = path


def _list(value):
    return value if isinstance(value, list) else []


def check_duplicates(data):
    """Names used twice where they must be unique."""
    problems = []
    if not isinstance(data, dict):
        return problems
    for section, key, what in (("queues", "name", "queue"), ("flows", "api_name", "flow"),
                               ("orchestrations", "api_name", "orchestration")):
        _dupes(problems, data, [([section, i], item) for i, item in enumerate(_list(data.get(section)))], section,
               key, what, " in this file")
    for fi, flow in enumerate(_list(data.get("flows"))):
        if not isinstance(flow, dict):
            continue
        base = ["flows", fi]
        scope = f" in flow {short_name(flow.get('api_name'))}"
        for section in ("inputs", "outputs"):
            _dupes(problems, data, [(base + [section, i], v) for i, v in enumerate(_list(flow.get(section)))],
                   section, "name", section[:-1], scope)
        _dupes(problems, data, [(base + ["screens", i], s) for i, s in enumerate(_list(flow.get("screens")))],
               "screens", "name", "screen", scope)
        fields = [(base + ["screens", i, "fields", j], f)
                  for i, s in enumerate(_list(flow.get("screens"))) if isinstance(s, dict)
                  for j, f in enumerate(_list(s.get("fields")))]
        _dupes(problems, data, fields, "fields", "name", "field", scope)
        _dupes(problems, data, [(base + ["elements", i], e) for i, e in enumerate(_list(flow.get("elements")))],
               "elements", "name", "element label", scope)
    for oi, orch in enumerate(_list(data.get("orchestrations"))):
        if not isinstance(orch, dict):
            continue
        base = ["orchestrations", oi]
        scope = f" in orchestration {short_name(orch.get('api_name'))}"
        _dupes(problems, data, [(base + ["inputs", i], v) for i, v in enumerate(_list(orch.get("inputs")))],
               "inputs", "name", "input", scope)
        path = _list(orch.get("path"))
        _dupes(problems, data, [(base + ["path", i], s) for i, s in enumerate(path)], "path", "name",
               "stage or decision", scope)
        steps = [(base + ["path", i, "steps", j], st) for i, s in enumerate(path) if isinstance(s, dict)
                 for j, st in enumerate(_list(s.get("steps")))]
        _dupes(problems, data, steps, "steps", "name", "step", scope)
        for i, element in enumerate(path):
            if isinstance(element, dict):
                _dupes(problems, data, [(base + ["path", i, "outcomes", j], o)
                                        for j, o in enumerate(_list(element.get("outcomes")))],
                       "outcomes", "name", "outcome", f" in decision {short_name(element.get('name'))}")
    return problems
