"""The flow designer's changes, as pure functions on a flow's definition mapping.

``apply_edit(data, form)`` takes the mapping ``flows.spec.flow_to_dict``
gives and the posted form of one change (``op`` plus its values) and
returns ``(new_mapping, selection)``; ``selection`` names the part to show
in the property panel afterwards (``"flow"``, ``"s1"`` for the second screen,
``"s1f0"`` for its first field, ``"in0"`` / ``"out2"`` for variables, ``"e3"``
for an element). The input mapping is never changed.

A change that cannot be made raises ``EditRefused`` listing problems that
name their place, in the validator's words
(``intake › screen first › field colour › name: ...``). After every change
the mapping goes through the definition file's shape and duplicate-name
checks (``shape_problems``), so the designer never stores what an import
would refuse.
"""
import copy
import json
import re

from flows.models import ELEMENT_TYPES, FIELD_TYPES, VARIABLE_TYPES, FlowType
from flows.validation import ELEMENT_KEYS, Problem, place_of

CHOICE_TYPES = ("choice", "multichoice")
# Element settings that are maps of names to expressions, edited as rows.
EXPRESSION_MAPS = ("set", "filter", "values", "inputs", "headers")
# Element settings edited as one box each, with how the box's text becomes the stored value.
ELEMENT_SCALARS = {
    "model": "text", "into": "text", "to": "text", "subject": "text", "body": "text", "method": "text",
    "url": "text", "action": "text", "default": "text", "order_by": "names", "first": "flag",
    "limit": "whole", "timeout": "number",
}
# A new element of each type: the settings it needs, with placeholders the definition file accepts and the
# checks then point at (an unknown model, an empty set), so the property panel shows what to fill in.
NEW_ELEMENT = {
    "assign": {"set": {}}, "decision": {"outcomes": [{"name": "yes", "condition": "true", "goto": "end"}]},
    "get_records": {"model": "app.Model", "into": "records"},
    "create_record": {"model": "app.Model", "values": {}}, "update_records": {"model": "app.Model", "values": {}},
    "send_email": {"to": "'someone@example.com'", "subject": "Subject"}, "http_request": {"url": "https://example.com/"},
    "action": {"action": "action_name"},
}


class EditRefused(Exception):
    """A change that was not made; ``problems`` say where and why."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


# --------------------------------------------------------------------------- places

def field_place(data, s, f=None, what=None):
    screen = data["screens"][s]
    parts = [data.get("api_name"), f"screen {screen.get('name')}"]
    if f is not None:
        parts.append(f"field {screen['fields'][f].get('name')}")
    return place_of(*parts, what)


def words_for_path(data, path):
    """A definition-file path (``flows[0].screens[1].fields[0].name``) in the validator's words."""
    tokens = re.findall(r"\.?([A-Za-z_]\w*)|\[(\d+)\]", path)
    parts = [data.get("api_name") if isinstance(data, dict) else None]
    node, i = {"flows": [data]}, 0
    steps = [(name, int(index) if index else None) for name, index in tokens]
    while i < len(steps):
        name, _ = steps[i]
        index = steps[i + 1][1] if i + 1 < len(steps) and steps[i + 1][0] == "" else None
        child = node.get(name) if isinstance(node, dict) else None
        if index is not None:
            item = child[index] if isinstance(child, list) and 0 <= index < len(child) else None
            label = item.get("name") if isinstance(item, dict) else None
            if name == "flows":
                pass
            elif name == "screens":
                parts.append(f"screen {label}")
            elif name == "fields":
                parts.append(f"field {label}")
            elif name in ("inputs", "outputs"):
                parts.append(f"{name}.{label}")
            elif name == "elements":
                parts.append(f"elements[{index}]" + (f" ({label})" if label else ""))
            else:
                parts.append(f"{name}[{index}]")
            node, i = item, i + 2
        else:
            parts.append(name)
            node, i = child, i + 1
    return place_of(*parts)


def shape_problems(data):
    """What an import would refuse in ``data`` (shape, duplicate names), placed in the validator's words."""
    from orchestration.definition_files import check_duplicates, check_shape

    document = {"flows": [data]}
    out = []
    for problem in check_shape(document) + check_duplicates(document):
        place = problem.place
        line = re.search(r" \(line \d+\)$", place)
        if line:
            place = place[:line.start()]
        out.append(Problem(words_for_path(data, place), problem.message))
    return out


# --------------------------------------------------------------------------- reading the form

def _index(form, key, items, what):
    raw = form.get(key, "")
    try:
        index = int(raw)
    except (TypeError, ValueError):
        raise EditRefused([Problem(what, f"{raw!r} does not name a {what} (expected its position)")]) from None
    if not 0 <= index < len(items):
        raise EditRefused([Problem(what, f"there is no {what} at position {index}")])
    return index


def _to_position(form, key, length):
    """A target position, clamped into 0..length (a drop past the end lands at the end)."""
    try:
        return max(0, min(int(form.get(key, length)), length))
    except (TypeError, ValueError):
        return length


def _text(form, key):
    return (form.get(key) or "").replace("\r\n", "\n")


def _flag(form, key):
    return form.get(key) in ("on", "true", "1", "yes")


def _unique(name, taken):
    if name not in taken:
        return name
    n = 2
    while f"{name}_{n}" in taken:
        n += 1
    return f"{name}_{n}"


def all_field_names(data):
    return {f.get("name") for s in data.get("screens") or [] for f in s.get("fields") or []}


def parse_choices(text, place):
    """Choices typed one per line: ``value`` or ``value | label``."""
    choices = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        value, bar, label = line.partition("|")
        value, label = value.strip(), label.strip()
        if not value:
            raise EditRefused([Problem(place, f"line {number} ({line!r}) has no value before the |")])
        choices.append({"value": value, "label": label} if bar and label else value)
    return choices


def choices_text(choices):
    lines = []
    for choice in choices or []:
        if isinstance(choice, dict):
            value, label = choice.get("value"), choice.get("label")
            lines.append(f"{value} | {label}" if label else str(value))
        else:
            lines.append(str(choice))
    return "\n".join(lines)


def parse_literal(text, place):
    """A variable's default typed as a JSON literal; empty means none."""
    text = text.strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise EditRefused([Problem(place, f"{text!r} is not a JSON literal ({exc.msg}); "
                                          f"write 5, \"text\", true or [1, 2]")]) from None


def literal_text(value):
    return "" if value is None else json.dumps(value, ensure_ascii=False)


def _set(target, key, value, default):
    """Keep ``key`` only when it differs from the default, as ``flow_to_dict`` does."""
    if value == default or value is None:
        target.pop(key, None)
    else:
        target[key] = value


# --------------------------------------------------------------------------- the changes

def _edit_flow(data, form):
    kind = form.get("type", data.get("type"))
    if kind not in FlowType.values:
        raise EditRefused([Problem(place_of(data.get("api_name"), "type"),
                                   f"{kind!r} is not one of: {', '.join(FlowType.values)}")])
    _set(data, "label", _text(form, "label").strip(), "")
    _set(data, "description", _text(form, "description"), "")
    data["type"] = kind
    return "flow"


def _add_screen(data, form):
    screens = data.setdefault("screens", [])
    name = _unique(f"screen_{len(screens) + 1}", {s.get("name") for s in screens})
    screens.insert(_to_position(form, "at", len(screens)), {"name": name, "label": f"Screen {len(screens) + 1}",
                                                            "fields": []})
    return f"s{screens.index(next(s for s in screens if s['name'] == name))}"


def _edit_screen(data, form):
    s = _index(form, "screen", data.get("screens") or [], "screen")
    screen = data["screens"][s]
    screen["name"] = _text(form, "name").strip()
    _set(screen, "label", _text(form, "label").strip(), "")
    condition, message = _text(form, "validate").strip(), _text(form, "validate_message").strip()
    if condition or message:
        if not condition:
            raise EditRefused([Problem(field_place(data, s, None, "validate.condition"),
                                       "a validate message needs a condition")])
        screen["validate"] = {"condition": condition, **({"message": message} if message else {})}
    else:
        screen.pop("validate", None)
    return f"s{s}"


def _delete_screen(data, form):
    s = _index(form, "screen", data.get("screens") or [], "screen")
    del data["screens"][s]
    if not data["screens"]:
        data.pop("screens")
    return f"s{max(s - 1, 0)}" if data.get("screens") else "flow"


def _move_screen(data, form):
    screens = data.get("screens") or []
    s = _index(form, "screen", screens, "screen")
    screen = screens.pop(s)
    to = _to_position(form, "to", len(screens))
    screens.insert(to, screen)
    return f"s{to}"


def _add_field(data, form):
    screens = data.get("screens") or []
    s = _index(form, "screen", screens, "screen")
    kind = form.get("type") or "text"
    if kind not in FIELD_TYPES:
        raise EditRefused([Problem(field_place(data, s, None, "new field"),
                                   f"{kind!r} is not a field type (one of: {', '.join(FIELD_TYPES)})")])
    fields = screens[s].setdefault("fields", [])
    name = _unique("note" if kind == "display" else f"{kind}_field", all_field_names(data))
    field = {"name": name, "type": kind, "label": name.replace("_", " ").capitalize()}
    if kind in CHOICE_TYPES:
        field["choices"] = ["yes", "no"]
    if kind == "display":
        field = {"name": name, "type": kind, "text": "Text shown on the screen."}
    if kind == "text":
        field.pop("type")  # the default type, left out as flow_to_dict leaves it out
    to = _to_position(form, "at", len(fields))
    fields.insert(to, field)
    return f"s{s}f{to}"


def _field_at(data, form):
    screens = data.get("screens") or []
    s = _index(form, "screen", screens, "screen")
    f = _index(form, "field", screens[s].get("fields") or [], "field")
    return s, f


def _edit_field(data, form):
    s, f = _field_at(data, form)
    field = data["screens"][s]["fields"][f]
    kind = form.get("type") or field.get("type", "text")
    if kind not in FIELD_TYPES:
        raise EditRefused([Problem(field_place(data, s, f, "type"),
                                   f"{kind!r} is not a field type (one of: {', '.join(FIELD_TYPES)})")])
    new = {"name": _text(form, "name").strip()}
    _set(new, "type", kind, "text")
    _set(new, "label", _text(form, "label").strip(), "")
    if kind == "display":
        _set(new, "text", _text(form, "text"), "")
    else:
        _set(new, "help_text", _text(form, "help_text").strip(), "")
        _set(new, "required", _flag(form, "required"), False)
        _set(new, "default", _text(form, "default").strip(), "")
    _set(new, "visible_if", _text(form, "visible_if").strip(), "")
    if kind in CHOICE_TYPES:
        typed = form.get("choices")
        choices = field.get("choices", []) if typed is None else parse_choices(
            _text(form, "choices"), field_place(data, s, f, "choices"))
        _set(new, "choices", choices, [])
    data["screens"][s]["fields"][f] = new
    return f"s{s}f{f}"


def _delete_field(data, form):
    s, f = _field_at(data, form)
    del data["screens"][s]["fields"][f]
    return f"s{s}"


def _move_field(data, form):
    """Move a field within its screen or onto another one (a drag, or the keyboard's move buttons)."""
    s, f = _field_at(data, form)
    screens = data["screens"]
    to_s = _index(form, "to_screen", screens, "screen") if form.get("to_screen") not in (None, "") else s
    field = screens[s]["fields"].pop(f)
    target = screens[to_s].setdefault("fields", [])
    to = _to_position(form, "to", len(target))
    target.insert(to, field)
    return f"s{to_s}f{to}"


VARIABLE_LISTS = {"input": "inputs", "output": "outputs"}


def _variables(data, form):
    direction = form.get("direction")
    if direction not in VARIABLE_LISTS:
        raise EditRefused([Problem(place_of(data.get("api_name"), "variables"),
                                   f"{direction!r} is not a direction (input or output)")])
    return direction, VARIABLE_LISTS[direction]


def _add_variable(data, form):
    direction, key = _variables(data, form)
    items = data.setdefault(key, [])
    items.append({"name": _unique(f"{direction}_{len(items) + 1}", {v.get("name") for v in items})})
    return ("in" if direction == "input" else "out") + str(len(items) - 1)


def _edit_variable(data, form):
    direction, key = _variables(data, form)
    items = data.get(key) or []
    i = _index(form, "index", items, key[:-1])
    place = place_of(data.get("api_name"), f"{key}.{items[i].get('name')}")
    kind = form.get("type") or "text"
    if kind not in VARIABLE_TYPES:
        raise EditRefused([Problem(f"{place}.type", f"{kind!r} is not one of: {', '.join(VARIABLE_TYPES)}")])
    new = {"name": _text(form, "name").strip()}
    _set(new, "type", kind, "text")
    if direction == "input":
        _set(new, "required", _flag(form, "required"), False)
        _set(new, "default", parse_literal(_text(form, "default"), f"{place}.default"), None)
    else:
        _set(new, "value", _text(form, "value").strip(), "")
    items[i] = new
    return ("in" if direction == "input" else "out") + str(i)


def _delete_variable(data, form):
    direction, key = _variables(data, form)
    items = data.get(key) or []
    del items[_index(form, "index", items, key[:-1])]
    if not items:
        data.pop(key, None)
    return "flow"


def _add_element(data, form):
    kind = form.get("type")
    if kind not in ELEMENT_TYPES:
        raise EditRefused([Problem(place_of(data.get("api_name"), "new element"),
                                   f"{kind!r} is not an element type (one of: {', '.join(ELEMENT_TYPES)})")])
    items = data.setdefault("elements", [])
    to = _to_position(form, "at", len(items))
    items.insert(to, {"type": kind, **copy.deepcopy(NEW_ELEMENT[kind])})
    return f"e{to}"


def _rows(form, prefix, columns):
    """Rows posted as ``prefix-<column>-<n>``, blank rows left out."""
    rows, n = [], 0
    while any(f"{prefix}-{c}-{n}" in form for c in columns):
        row = {c: _text(form, f"{prefix}-{c}-{n}").strip() for c in columns}
        if any(row.values()):
            rows.append(row)
        n += 1
    return rows


def _edit_element(data, form):
    items = data.get("elements") or []
    i = _index(form, "index", items, "element")
    old = items[i]
    kind = form.get("type") or old["type"]
    place = place_of(data.get("api_name"), f"elements[{i}]" + (f" ({old.get('name')})" if old.get("name") else ""))
    if kind not in ELEMENT_TYPES:
        raise EditRefused([Problem(f"{place}.type", f"{kind!r} is not an element type")])
    new = {"type": kind}
    _set(new, "name", _text(form, "name").strip(), "")
    keys = ELEMENT_KEYS[kind]
    if kind != old["type"]:  # a new type keeps only the settings both types have
        new.update({k: v for k, v in NEW_ELEMENT[kind].items()})
        new.update({k: v for k, v in old.items() if k in keys})
        items[i] = new
        return f"e{i}"
    for key in sorted(keys):
        if key in EXPRESSION_MAPS:
            rows = _rows(form, key, ("name", "expr"))
            mapping = {}
            for row in rows:
                if not row["name"]:
                    raise EditRefused([Problem(f"{place}.{key}", f"the expression {row['expr']!r} has no name")])
                if row["name"] in mapping:
                    raise EditRefused([Problem(f"{place}.{key}.{row['name']}", "this name is given twice")])
                mapping[row["name"]] = row["expr"]
            if mapping or key in NEW_ELEMENT[kind]:
                new[key] = mapping
        elif key == "outcomes":
            new[key] = [{k: v for k, v in row.items() if v or k != "name"}
                        for row in _rows(form, "outcomes", ("name", "condition", "goto"))]
        else:
            how, raw = ELEMENT_SCALARS[key], _text(form, key).strip()
            if how == "flag":
                _set(new, key, _flag(form, key), False)
            elif not raw:
                if key in NEW_ELEMENT[kind]:
                    new[key] = ""  # a required setting left empty: refused below, naming it
            elif how == "names":
                names = [n.strip() for n in raw.split(",") if n.strip()]
                new[key] = names[0] if len(names) == 1 else names
            elif how in ("whole", "number"):
                try:
                    new[key] = int(raw) if how == "whole" else float(raw)
                except ValueError:
                    word = "a whole number" if how == "whole" else "a number"
                    raise EditRefused([Problem(f"{place}.{key}", f"{raw!r} is not {word}")]) from None
            else:
                new[key] = raw
    items[i] = new
    return f"e{i}"


def _delete_element(data, form):
    items = data.get("elements") or []
    del items[_index(form, "index", items, "element")]
    if not items:
        data.pop("elements", None)
    return "flow"


def _move_element(data, form):
    items = data.get("elements") or []
    i = _index(form, "index", items, "element")
    element = items.pop(i)
    to = _to_position(form, "to", len(items))
    items.insert(to, element)
    return f"e{to}"


EDITS = {
    "flow": _edit_flow,
    "add_screen": _add_screen, "screen": _edit_screen, "delete_screen": _delete_screen, "move_screen": _move_screen,
    "add_field": _add_field, "field": _edit_field, "delete_field": _delete_field, "move_field": _move_field,
    "add_variable": _add_variable, "variable": _edit_variable, "delete_variable": _delete_variable,
    "add_element": _add_element, "element": _edit_element, "delete_element": _delete_element,
    "move_element": _move_element,
}


def apply_edit(data, form):
    """``(new mapping, selection)`` after the change ``form`` describes; ``EditRefused`` if it cannot be made."""
    op = form.get("op")
    if op not in EDITS:
        raise EditRefused([Problem(place_of(data.get("api_name")), f"{op!r} is not a change the designer knows")])
    new = copy.deepcopy(data)
    selection = EDITS[op](new, form)
    problems = shape_problems(new)
    if problems:
        raise EditRefused(problems)
    return new, selection
