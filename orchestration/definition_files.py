"""Definition files: YAML documents holding queues, flows and orchestrations.

``import_document(text_or_data, activate=False)`` reads a document, checks
its shape against a JSON Schema (every message names the path and the YAML
line), refuses duplicate names, then stores everything in one transaction:
queues are created or updated, each flow and orchestration becomes a new
draft version, and with ``activate=True`` flows then orchestrations are
activated. Any problem anywhere raises ``DefinitionFileError`` listing every
problem, and nothing is stored.

``export_document(api_names=None)`` writes the same format (the active
version of each api_name, else its latest), so that importing an export
gives the same definitions back.
"""
import re
import reprlib
from dataclasses import dataclass, field

import jsonschema
import yaml
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from flows.models import ELEMENT_TYPES, FIELD_TYPES, VARIABLE_TYPES, Flow
from flows.spec import flow_from_dict, flow_to_dict
from flows.validation import ELEMENT_KEYS, Problem
from flows.versioning import DefinitionStatus

from .lifecycle import ActivationRefused, activate as activate_definition, validate
from .models import Orchestration
from .spec import orchestration_from_dict, orchestration_to_dict


class DefinitionFileError(Exception):
    """A definition document was refused; ``problems`` lists every reason."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


# ------------------------------------------------------------------ YAML with line numbers

class LineDict(dict):
    """A mapping read from YAML that remembers its line and each key's line."""

    line = None
    key_lines = None


class LineList(list):
    """A sequence read from YAML that remembers its line and each item's line."""

    line = None
    item_lines = None


# A few hundred bytes of anchors and aliases can stand for billions of nodes
# (a "billion laughs"); nesting a few thousand levels deep overflows Python's
# stack. What aliases may repeat, and how deep a document may nest, is capped.
MAX_ALIAS_NODES = 10_000  # nodes repeated by aliases, over the whole document
MAX_ALIAS_CHARACTERS = 1_000_000  # text repeated by aliases, over the whole document
MAX_NESTING = 64  # mappings and lists inside each other


class DocumentRefused(yaml.MarkedYAMLError):
    """Valid YAML this loader will not expand (too many aliases, too deep)."""


class LineLoader(yaml.SafeLoader):
    """A safe loader that records lines, reports duplicate keys, and reads YAML 1.2 booleans.

    ``yes``/``no``/``on``/``off`` stay text (an outcome may be named ``yes``),
    and dates stay text (variables store them as ISO text anyway). Aliases and
    nesting are limited (``MAX_ALIAS_NODES``, ``MAX_ALIAS_CHARACTERS``,
    ``MAX_NESTING``) while the document is composed, before anything is built.
    """

    def __init__(self, stream):
        super().__init__(stream)
        self.duplicate_keys = []
        self.depth = 0
        self.open_anchors = set()  # anchors of nodes still being composed
        self.alias_nodes = 0
        self.alias_characters = 0
        self.node_sizes = {}  # id(node) -> (nodes, characters) it stands for

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            self._count_alias(event)
            return super().compose_node(parent, index)
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise DocumentRefused(problem=f"nested more than {MAX_NESTING} levels deep", problem_mark=event.start_mark)
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self.open_anchors.add(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1
            self.open_anchors.discard(anchor)

    def _count_alias(self, event):
        if event.anchor in self.open_anchors:
            raise DocumentRefused(problem=f"alias *{event.anchor} refers to a node that contains it",
                                  problem_mark=event.start_mark)
        node = self.anchors.get(event.anchor)
        if node is None:
            return  # the composer reports the undefined alias
        nodes, characters = self._size(node)
        self.alias_nodes += nodes
        self.alias_characters += characters
        if self.alias_nodes > MAX_ALIAS_NODES or self.alias_characters > MAX_ALIAS_CHARACTERS:
            raise DocumentRefused(
                problem=f"aliases repeat more than {MAX_ALIAS_NODES:,} nodes or {MAX_ALIAS_CHARACTERS:,} characters "
                        f"(alias *{event.anchor} here)",
                problem_mark=event.start_mark,
            )

    def _size(self, node):
        known = self.node_sizes.get(id(node))
        if known is not None:
            return known
        if isinstance(node, yaml.ScalarNode):
            size = (1, len(node.value))
        else:
            children = node.value if isinstance(node, yaml.SequenceNode) else [n for pair in node.value for n in pair]
            sizes = [self._size(child) for child in children]
            size = (1 + sum(n for n, _ in sizes), sum(c for _, c in sizes))
        self.node_sizes[id(node)] = size
        return size


_BOOL, _TIMESTAMP = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp"
LineLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_BOOL, _TIMESTAMP)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
LineLoader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def _construct_map(loader, node):
    data = LineDict()
    data.line = node.start_mark.line + 1
    data.key_lines = {}
    yield data
    data.update(loader.construct_mapping(node, deep=True))
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            line = key_node.start_mark.line + 1
            if key in data.key_lines:
                loader.duplicate_keys.append(Problem(
                    f"line {line}", f"key {_short(key)} appears twice in one mapping (first on line {data.key_lines[key]})"
                ))
            else:
                data.key_lines[key] = line
        except TypeError:  # an unhashable key; construct_mapping has already refused it
            pass


def _construct_seq(loader, node):
    data = LineList()
    data.line = node.start_mark.line + 1
    yield data
    data.extend(loader.construct_sequence(node, deep=True))
    data.item_lines = [item.start_mark.line + 1 for item in node.value]


LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


def load_yaml(text):
    """``(data, problems)``: the document read safely, or the YAML error with its line."""
    loader = LineLoader(text)
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "the file"
        what = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        message = f"not valid YAML: {context + ', ' if context else ''}{what}"
        if isinstance(exc, DocumentRefused):
            message = f"refused: {what}"
        return None, [Problem(where, message)]
    finally:
        loader.dispose()
    return data, list(loader.duplicate_keys)


def line_of(data, path):
    """The line of the deepest node on ``path`` that has one (None if unknown)."""
    line = getattr(data, "line", None)
    node = data
    for key in path:
        if isinstance(node, dict):
            line = (node.key_lines or {}).get(key, line) if isinstance(node, LineDict) else line
            node = node.get(key)
        elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
            if isinstance(node, LineList) and node.item_lines:
                line = node.item_lines[key]
            node = node[key]
        else:
            break
    return line


def path_text(path):
    out = ""
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out or "(document)"


def place_at(data, path):
    line = line_of(data, path)
    text = path_text(path)
    return f"{text} (line {line})" if line else text


# ------------------------------------------------------------------ the schema

_TEXT = {"type": "string"}
_NAME = {"type": "string", "minLength": 1}
# Names are stored in 100-character columns (Flow/Orchestration.api_name, Stage/Step.name, ...):
# SQLite would keep a longer one whole and PostgreSQL refuse it with a database error.
NAME_MAX_LENGTH = 100
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
    "remaining": {"enum": ["continue"]},
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


# Problems quote the value they are about, shortened: a value may be large
# (a long text, or a list made of aliases), and the message is printed whole.
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxstring, _SHORT.maxother = 2, 5, 5, 80, 80


def _short(value):
    return _SHORT.repr(value)


def _short_text(text, limit=300):
    return text if len(text) <= limit else text[:limit] + f"… ({len(text):,} characters)"


def _short_name(name):
    """A name as it may be quoted in a problem: cut at NAME_MAX_LENGTH (a longer one is refused anyway)."""
    text = str(name)
    return text if len(text) <= NAME_MAX_LENGTH else f"{text[:NAME_MAX_LENGTH]}… ({len(text):,} characters)"


def _describe(error):
    """``(extra path, message)`` for a jsonschema error, in plain words."""
    validator, instance, schema = error.validator, error.instance, error.schema
    if validator == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        extras = [k for k in instance if k not in schema.get("properties", {})]
        return [([key], f"unknown key {_short(key)} (allowed: {', '.join(allowed)})") for key in extras]
    if validator == "required":
        missing = [k for k in error.validator_value if k not in instance]
        return [([], f"missing required key {k!r}") for k in missing]
    if validator == "type":
        wanted = error.validator_value
        wanted = " or ".join(wanted) if isinstance(wanted, list) else wanted
        names = {"string": "text", "object": "a mapping", "array": "a list", "integer": "a whole number",
                 "number": "a number", "boolean": "true or false"}
        wanted = " or ".join(names.get(w, w) for w in wanted.split(" or "))
        return [([], f"expected {wanted}, got {_json_type(instance)} {_short(instance)}")]
    if validator == "enum":
        return [([], f"{_short(instance)} is not one of: {', '.join(map(str, error.validator_value))}")]
    if validator == "const":
        return [([], f"expected {error.validator_value!r}, got {_short(instance)}")]
    if validator == "oneOf":
        keys = [k for sub in error.validator_value for k in sub.get("required", [])]
        return [([], f"give exactly one of: {', '.join(keys)}")]
    if validator == "pattern":
        return [([], f"{_short(instance)} does not match the expected form ({error.validator_value})")]
    if validator == "maxLength":
        return [([], f"is {len(instance):,} characters long; at most {error.validator_value} "
                     f"({_short(instance)})")]
    if validator in ("minItems", "minLength", "minProperties"):
        return [([], "must not be empty")]
    if validator == "maxProperties":
        return [([], f"give only one of: {', '.join(schema.get('properties', {}))}")]
    if validator == "dependentSchemas":
        return [([], "inputs go with evaluation_flow")]
    return [([], _short_text(error.message))]


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
                f"{what} {_short_name(name)!r} is defined twice{scope}" + (f" (first on line {first})" if first else ""),
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
        scope = f" in flow {_short_name(flow.get('api_name'))}"
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
        scope = f" in orchestration {_short_name(orch.get('api_name'))}"
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
                       "outcomes", "name", "outcome", f" in decision {_short_name(element.get('name'))}")
    return problems


# ------------------------------------------------------------------ import

@dataclass
class ImportReport:
    """What an import stored. ``warnings`` are validator problems of drafts (not activated)."""

    queues: list = field(default_factory=list)
    flows: list = field(default_factory=list)
    orchestrations: list = field(default_factory=list)
    activated: bool = False
    warnings: list = field(default_factory=list)

    def lines(self):
        state = "active" if self.activated else "draft"
        out = [f"queue {q.name}: saved" for q in self.queues]
        out += [f"flow {f.api_name} v{f.version}: {state}" for f in self.flows]
        out += [f"orchestration {o.api_name} v{o.version}: {state}" for o in self.orchestrations]
        out += [f"warning: {w}" for w in self.warnings]
        return out

    def __str__(self):
        return "\n".join(self.lines())


def parse_document(text_or_data):
    """The document as data, or ``DefinitionFileError`` for bad YAML, a bad shape or duplicate names."""
    if isinstance(text_or_data, bytes):
        text_or_data = text_or_data.decode("utf-8")
    if isinstance(text_or_data, str):
        data, problems = load_yaml(text_or_data)
    else:
        data, problems = text_or_data, []
    if not problems:
        problems = check_shape(data) + check_duplicates(data)
    if problems:
        raise DefinitionFileError(problems)
    return data or {}


def _store_queues(data, problems):
    from workguide.models import Queue

    User = get_user_model()
    saved = []
    for i, item in enumerate(data.get("queues") or []):
        usernames = list(item.get("members") or [])
        users = list(User.objects.filter(**{f"{User.USERNAME_FIELD}__in": usernames}))
        found = {u.get_username() for u in users}
        for j, name in enumerate(usernames):
            if name not in found:
                problems.append(Problem(place_at(data, ["queues", i, "members", j]), f"no user named {name!r}"))
        queue, _ = Queue.objects.get_or_create(name=item["name"])
        queue.email = item.get("email") or ""
        queue.save()
        queue.members.set(users)
        queue.member_groups.set([Group.objects.get_or_create(name=g)[0] for g in item.get("member_groups") or []])
        saved.append(queue)
    return saved


def _line_for(data, section, place):
    """The line of the deepest named part (definition, stage, step) that ``place`` mentions."""
    parts = [p.strip() for p in place.split("›")]
    for i, item in enumerate(data.get(section) or []):
        if item.get("api_name") != parts[0]:
            continue
        path = [section, i]
        if section == "orchestrations" and len(parts) > 1:
            for j, element in enumerate(item.get("path") or []):
                if element.get("name") == parts[1]:
                    path += ["path", j]
                    if len(parts) > 2:
                        for k, step in enumerate(element.get("steps") or []):
                            if step.get("name") == parts[2]:
                                path += ["steps", k]
                                break
                    break
        return line_of(data, path)
    return None


def _with_line(problems, data, section):
    out = []
    for problem in problems:
        line = _line_for(data, section, problem.place)
        out.append(Problem(f"{problem.place} (line {line})", problem.message) if line else problem)
    return out


def import_document(text_or_data, activate=False):
    """Import a definition document all or nothing; return an ``ImportReport``.

    Raises ``DefinitionFileError`` (listing every problem) and stores nothing
    when anything is wrong: YAML, shape, duplicate names, unknown queue
    members, or (with ``activate``) any validator problem.
    """
    data = parse_document(text_or_data)
    report = ImportReport(activated=activate)
    with transaction.atomic():
        problems = []
        report.queues = _store_queues(data, problems)
        report.flows = [flow_from_dict(item) for item in data.get("flows") or []]
        report.orchestrations = [orchestration_from_dict(item) for item in data.get("orchestrations") or []]
        pending = {flow.api_name: flow for flow in report.flows}
        replaced = {orch.api_name for orch in report.orchestrations}
        if activate:
            for flow in report.flows:
                try:
                    activate_definition(flow, superseded=replaced)
                except ActivationRefused as exc:
                    problems += _with_line(exc.problems, data, "flows")
            for orch in report.orchestrations:
                if problems:  # refused anyway: still report this one's problems against the new flows
                    found = validate(orch, flows=pending)
                    problems += _with_line(found, data, "orchestrations")
                    continue
                try:
                    activate_definition(orch)
                except ActivationRefused as exc:
                    problems += _with_line(exc.problems, data, "orchestrations")
        else:
            for flow in report.flows:
                report.warnings += validate(flow)
            for orch in report.orchestrations:
                report.warnings += validate(orch, flows=pending)
        if problems:
            raise DefinitionFileError(problems)
    return report


def import_file(path, activate=False):
    with open(path, encoding="utf-8") as handle:
        return import_document(handle.read(), activate=activate)


# ------------------------------------------------------------------ export

def _pick(model, api_name):
    return (model.objects.filter(api_name=api_name, status=DefinitionStatus.ACTIVE).first()
            or model.objects.filter(api_name=api_name).order_by("-version").first())


def _queue_to_dict(queue):
    out = {"name": queue.name}
    if queue.email:
        out["email"] = queue.email
    members = sorted(u.get_username() for u in queue.members.all())
    if members:
        out["members"] = members
    groups = sorted(g.name for g in queue.member_groups.all())
    if groups:
        out["member_groups"] = groups
    return out


def export_data(api_names=None):
    """The document as data: the chosen flows and orchestrations (active, else latest) and their queues."""
    from workguide.models import Queue

    if api_names:
        flows, orchestrations, missing = [], [], []
        for name in api_names:
            flow, orch = _pick(Flow, name), _pick(Orchestration, name)
            if flow:
                flows.append(flow)
            if orch:
                orchestrations.append(orch)
            if not flow and not orch:
                missing.append(name)
        if missing:
            raise DefinitionFileError([Problem(name, "no flow or orchestration has this api_name") for name in missing])
    else:
        flows = [_pick(Flow, n) for n in Flow.objects.values_list("api_name", flat=True).distinct().order_by("api_name")]
        orchestrations = [_pick(Orchestration, n) for n in
                          Orchestration.objects.values_list("api_name", flat=True).distinct().order_by("api_name")]
    orch_dicts = [orchestration_to_dict(o) for o in orchestrations]
    if api_names:
        wanted = set()
        for orch in orch_dicts:
            for element in orch["path"]:
                for step in element.get("steps", []):
                    if "queue" in step.get("assignee", {}):
                        wanted.add(step["assignee"]["queue"])
                    if step.get("escalate_to", "").startswith("queue:"):
                        wanted.add(step["escalate_to"].split(":", 1)[1])
        queues = Queue.objects.filter(name__in=wanted)
    else:
        queues = Queue.objects.all()
    data = {}
    queue_dicts = [_queue_to_dict(q) for q in queues.order_by("name").prefetch_related("members", "member_groups")]
    if queue_dicts:
        data["queues"] = queue_dicts
    if flows:
        data["flows"] = [flow_to_dict(f) for f in flows]
    if orch_dicts:
        data["orchestrations"] = orch_dicts
    return data


class _Dumper(yaml.SafeDumper):
    pass


def _represent_str(dumper, value):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(LineDict, yaml.SafeDumper.represent_dict)
_Dumper.add_representer(LineList, yaml.SafeDumper.represent_list)


def dump_yaml(data):
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)


def export_document(api_names=None):
    """The YAML text of the chosen definitions (all when ``api_names`` is empty)."""
    return dump_yaml(export_data(api_names))
