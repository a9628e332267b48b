"""Checks on one flow version, run before it may be activated.

``validate_flow(flow)`` returns a list of ``Problem`` (empty when the flow is
fine). Each problem names its place, e.g.
``collect_equipment › screen laptop › field model › default: '1 +' does not compile: ...``.
The orchestration validator (``orchestration.validation``) reuses
``Problem`` and ``check_expression``.
"""
import re
from dataclasses import dataclass

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist
from django.utils.module_loading import import_string

from .actions import import_action_modules, registered_actions
from .expressions import ExpressionError, compile_expression, merge_fields
from .http import HostPolicy, RefusedURL, check_url
from .models import ELEMENT_TYPES, FIELD_TYPES, VARIABLE_TYPES, FlowType, FlowVariable
from .names import TYPE_NAMES, assignment_order, reads
from .records import allowed_models, exposed_fields

SEP = " › "
END = "end"

# Keys each element type may carry besides ``type`` and ``name``; the
# definition file schema uses the same table.
ELEMENT_KEYS = {
    "assign": {"set"},
    "decision": {"outcomes", "default"},
    "get_records": {"model", "filter", "into", "first", "order_by", "limit"},
    "create_record": {"model", "values", "into"},
    "update_records": {"model", "filter", "values", "into"},
    "send_email": {"to", "subject", "body"},
    "http_request": {"method", "url", "headers", "body", "into", "timeout"},
    "action": {"action", "inputs", "into"},
}
HTTP_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a definition: where it is and what it is."""

    place: str
    message: str

    def __str__(self):
        return f"{self.place}: {self.message}" if self.place else self.message


def place_of(*parts):
    return SEP.join(str(p) for p in parts if p not in (None, ""))


def check_expression(problems, place, source, *, merge=False, required=True):
    """Compile ``source`` (or each ``{!expr}`` of it when ``merge``); add a Problem per failure.

    Returns the list of expressions checked (so callers can look at what they read).
    """
    if merge:
        if not isinstance(source, str):
            problems.append(Problem(place, f"expected text, got {type(source).__name__}"))
            return []
        expressions = merge_fields(source)
    else:
        if source is None or (isinstance(source, str) and not source.strip()):
            if required:
                problems.append(Problem(place, "an expression is required"))
            return []
        if not isinstance(source, str):
            problems.append(Problem(place, f"expected an expression (text), got {type(source).__name__} {source!r}"))
            return []
        expressions = [source]
    checked = []
    for expr in expressions:
        try:
            compile_expression(expr, place)
        except ExpressionError as exc:
            problems.append(Problem(place, exc.detail))
        else:
            checked.append(expr)
    return checked


def check_model(problems, place, label):
    """The model class for ``label`` if it exists and flows may use it; else a Problem."""
    if not isinstance(label, str) or "." not in label:
        problems.append(Problem(place, f"{label!r} is not a model name (write app_label.model)"))
        return None
    try:
        model = apps.get_model(label)
    except (LookupError, ValueError):
        problems.append(Problem(place, f"unknown model {label!r}"))
        return None
    if label.lower() not in allowed_models():
        problems.append(Problem(place, f"model {label!r} is not exposed to flows (setting BATON_FLOW_MODELS)"))
        return None
    return model


def _check_model_fields(problems, place, model, names):
    for name in names:
        base = str(name).split("__", 1)[0]
        if base == "pk":
            continue
        try:
            model._meta.get_field(base)
        except FieldDoesNotExist:
            attnames = {getattr(f, "attname", None) for f in model._meta.concrete_fields}
            if base not in attnames:
                problems.append(Problem(f"{place}.{name}", f"model {model._meta.label_lower} has no field {base!r}"))
                continue
        if base not in exposed_fields(model):  # a password, a secret, or a field the model's entry leaves out
            problems.append(Problem(f"{place}.{name}", f"field {base!r} of {model._meta.label_lower} is not exposed "
                                                       f"to flows (settings BATON_FLOW_MODELS, BATON_SECRET_FIELDS)"))


def _check_variables(problems, flow, variables, direction):
    seen = set()
    label = "inputs" if direction == FlowVariable.INPUT else "outputs"
    for variable in variables:
        place = place_of(flow.api_name, f"{label}.{variable.name}")
        if not variable.name or not variable.name.isidentifier():
            problems.append(Problem(place, f"{variable.name!r} is not a valid variable name"))
        if variable.name in seen:
            problems.append(Problem(place, f"variable {variable.name!r} is defined twice"))
        seen.add(variable.name)
        if variable.type not in VARIABLE_TYPES:
            problems.append(Problem(place, f"unknown type {variable.type!r} (one of: {', '.join(VARIABLE_TYPES)})"))
        if variable.value:
            if direction == FlowVariable.INPUT:
                problems.append(Problem(place, "only outputs may have a value expression"))
            else:
                check_expression(problems, f"{place}.value", variable.value)
    return seen


def _check_screens(problems, flow, inputs, outputs):
    screens = list(flow.screens.all())
    if not screens and not flow.implementation:
        problems.append(Problem(flow.api_name, "a screen flow needs at least one screen"))
    screen_names, field_names = set(), set()
    for screen in screens:
        splace = place_of(flow.api_name, f"screen {screen.name}")
        if screen.name in screen_names:
            problems.append(Problem(splace, f"screen {screen.name!r} is defined twice"))
        screen_names.add(screen.name)
        for field in screen.fields.all():
            fplace = place_of(splace, f"field {field.name}")
            if not field.name or not field.name.isidentifier():
                problems.append(Problem(fplace, f"{field.name!r} is not a valid field name"))
            if field.name in field_names:
                problems.append(Problem(fplace, f"field {field.name!r} is defined twice in this flow"))
            field_names.add(field.name)
            if field.type not in FIELD_TYPES:
                problems.append(Problem(fplace, f"unknown field type {field.type!r} (one of: {', '.join(FIELD_TYPES)})"))
            if field.type in ("choice", "multichoice"):
                if not field.choices:
                    problems.append(Problem(f"{fplace} › choices", f"a {field.type} field needs choices"))
                else:
                    values = []
                    for choice in field.choices:
                        value = choice.get("value") if isinstance(choice, dict) else choice
                        if value is None:
                            problems.append(Problem(f"{fplace} › choices", f"choice {choice!r} has no value"))
                        values.append(value)
                    if len(set(map(str, values))) != len(values):
                        problems.append(Problem(f"{fplace} › choices", "choice values repeat"))
            elif field.choices:
                problems.append(Problem(f"{fplace} › choices", "only choice and multichoice fields have choices"))
            if field.type == "display":
                if not field.text:
                    problems.append(Problem(f"{fplace} › text", "a display field needs text"))
                check_expression(problems, f"{fplace} › text", field.text, merge=True)
            elif field.text:
                problems.append(Problem(f"{fplace} › text", "only display fields have text"))
            if field.default:
                check_expression(problems, f"{fplace} › default", field.default)
            if field.visible_if:
                check_expression(problems, f"{fplace} › visible_if", field.visible_if)
        if screen.validate:
            check_expression(problems, f"{splace} › validate.condition", screen.validate)
            if not screen.validate_message:
                problems.append(Problem(f"{splace} › validate.message", "a validate condition needs a message"))
        elif screen.validate_message:
            problems.append(Problem(f"{splace} › validate.condition", "a validate message needs a condition"))
    for variable in outputs:
        if not variable.value and variable.name not in field_names and variable.name not in inputs:
            problems.append(Problem(
                place_of(flow.api_name, f"outputs.{variable.name}"),
                f"no screen field or input named {variable.name!r}; give the output a value expression",
            ))
    if list(flow.elements.all()):
        problems.append(Problem(flow.api_name, "a screen flow has screens, not elements"))


def _check_map_of_expressions(problems, place, mapping, *, what="expression"):
    if mapping in (None, ""):
        return
    if not isinstance(mapping, dict):
        problems.append(Problem(place, f"expected a mapping of names to {what}s"))
        return
    for key, source in mapping.items():
        check_expression(problems, f"{place}.{key}", source)


def _check_element(problems, flow, index, element, labels):
    config = element.config or {}
    eplace = place_of(flow.api_name, f"elements[{index}]" + (f" ({element.name})" if element.name else ""))
    if element.type not in ELEMENT_TYPES:
        problems.append(Problem(eplace, f"unknown element type {element.type!r} (one of: {', '.join(ELEMENT_TYPES)})"))
        return
    unknown = sorted(set(config) - ELEMENT_KEYS[element.type])
    for key in unknown:
        problems.append(Problem(f"{eplace}.{key}", f"unknown key for a {element.type} element"))

    def needs(key):
        if config.get(key) in (None, "", {}, []):
            problems.append(Problem(f"{eplace}.{key}", f"a {element.type} element needs {key}"))
            return False
        return True

    def goto(key, target):
        if target != END and target not in labels:
            problems.append(Problem(f"{eplace}.{key}", f"no element labelled {target!r} (labels: {', '.join(sorted(labels)) or 'none'}; or end)"))

    kind = element.type
    if kind == "assign":
        if needs("set"):
            _check_map_of_expressions(problems, f"{eplace}.set", config["set"])
            if isinstance(config["set"], dict):
                try:
                    assignment_order(config["set"])
                except ValueError as exc:
                    problems.append(Problem(f"{eplace}.set", str(exc)))
    elif kind == "decision":
        if needs("outcomes"):
            for i, outcome in enumerate(config["outcomes"] or []):
                oplace = f"{eplace}.outcomes[{i}]"
                if not isinstance(outcome, dict):
                    problems.append(Problem(oplace, "an outcome is a mapping {condition, goto}"))
                    continue
                check_expression(problems, f"{oplace}.condition", outcome.get("condition"))
                if not outcome.get("goto"):
                    problems.append(Problem(f"{oplace}.goto", "an outcome needs goto"))
                else:
                    goto(f"outcomes[{i}].goto", outcome["goto"])
        if config.get("default"):
            goto("default", config["default"])
    elif kind in ("get_records", "create_record", "update_records"):
        model = check_model(problems, f"{eplace}.model", config.get("model")) if needs("model") else None
        for key in ("filter", "values"):
            if key in config:
                _check_map_of_expressions(problems, f"{eplace}.{key}", config[key])
                if model is not None and isinstance(config[key], dict):
                    _check_model_fields(problems, f"{eplace}.{key}", model, config[key])
        if kind in ("create_record", "update_records"):
            needs("values")
        if kind == "get_records" and model is not None and config.get("order_by"):
            order = config["order_by"]
            _check_model_fields(problems, f"{eplace}.order_by", model,
                                [o.lstrip("-") for o in ([order] if isinstance(order, str) else order)])
    elif kind == "send_email":
        if needs("to"):
            check_expression(problems, f"{eplace}.to", config["to"])
        needs("subject")
        for key in ("subject", "body"):
            if config.get(key):
                check_expression(problems, f"{eplace}.{key}", config[key], merge=True)
    elif kind == "http_request":
        method = str(config.get("method") or "GET").upper()
        if method not in HTTP_METHODS:
            problems.append(Problem(f"{eplace}.method", f"unknown method {method!r}"))
        if needs("url"):
            url = config["url"]
            check_expression(problems, f"{eplace}.url", url, merge=True)
            _check_fixed_url(problems, f"{eplace}.url", url)
        for key, value in (config.get("headers") or {}).items():
            check_expression(problems, f"{eplace}.headers.{key}", value, merge=True)
        if config.get("body"):
            check_expression(problems, f"{eplace}.body", config["body"])
    elif kind == "action":
        if needs("action"):
            if config["action"] not in registered_actions():
                problems.append(Problem(f"{eplace}.action", f"no flow action named {config['action']!r} is registered"))
        _check_map_of_expressions(problems, f"{eplace}.inputs", config.get("inputs"))


def _check_fixed_url(problems, place, url):
    """Check the part of an http_request URL written in the definition with the
    rules used at run time. A host made by a merge field is checked when the
    element runs."""
    if not isinstance(url, str):
        return
    fixed = url.split("{!", 1)[0]
    if "{!" in url and not re.search(r"//[^/?#]*[/?#]", fixed):
        return
    try:
        check_url(fixed, HostPolicy.from_settings())
    except RefusedURL as exc:
        if exc.host_not_allowed:
            problems.append(Problem(place, f"host {exc.host_not_allowed!r} is not allowed (setting BATON_HTTP_ALLOWED_HOSTS)"))
        else:
            problems.append(Problem(place, str(exc)))


def _check_elements(problems, flow):
    elements = list(flow.elements.all())
    if not elements and not flow.implementation:
        problems.append(Problem(flow.api_name, f"an {flow.type} flow needs at least one element"))
    labels = set()
    for index, element in enumerate(elements):
        if element.name:
            if element.name in labels:
                problems.append(Problem(place_of(flow.api_name, f"elements[{index}] ({element.name})"),
                                        f"element label {element.name!r} is used twice"))
            if element.name == END:
                problems.append(Problem(place_of(flow.api_name, f"elements[{index}]"), "'end' is reserved"))
            labels.add(element.name)
    for index, element in enumerate(elements):
        _check_element(problems, flow, index, element, labels)
    if list(flow.screens.all()):
        problems.append(Problem(flow.api_name, f"an {flow.type} flow has elements, not screens"))


def _check_implementation(problems, flow):
    name = flow.implementation
    if name in registered_actions():
        return
    try:
        import_action_modules()
    except Exception:  # a broken action module is reported where it is imported
        pass
    if name in registered_actions():
        return
    try:
        target = import_string(name)
    except ImportError:
        problems.append(Problem(place_of(flow.api_name, "implementation"),
                                f"{name!r} is neither a registered action nor an importable callable"))
        return
    if not callable(target):
        problems.append(Problem(place_of(flow.api_name, "implementation"), f"{name!r} is not callable"))


def validate_flow(flow):
    """Every problem that keeps ``flow`` (one version) from being activated."""
    problems = []
    if flow.type not in FlowType.values:
        problems.append(Problem(flow.api_name, f"unknown flow type {flow.type!r} (one of: {', '.join(FlowType.values)})"))
        return problems
    variables = list(flow.variables.all())
    inputs = _check_variables(problems, flow, [v for v in variables if v.direction == FlowVariable.INPUT], FlowVariable.INPUT)
    outputs = [v for v in variables if v.direction == FlowVariable.OUTPUT]
    _check_variables(problems, flow, outputs, FlowVariable.OUTPUT)
    if flow.implementation:
        _check_implementation(problems, flow)
    if flow.type == FlowType.SCREEN:
        _check_screens(problems, flow, inputs, outputs)
    else:
        if flow.implementation and not list(flow.elements.all()):
            pass
        else:
            _check_elements(problems, flow)
    if flow.type == FlowType.EVALUATION:
        met = [v for v in outputs if v.name == "condition_met"]
        if not met:
            problems.append(Problem(place_of(flow.api_name, "outputs"),
                                    "an evaluation flow needs the output condition_met (boolean)"))
        elif met[0].type != "boolean":
            problems.append(Problem(place_of(flow.api_name, "outputs.condition_met"),
                                    f"condition_met must be boolean, not {met[0].type}"))
    _check_flow_names(problems, flow, variables)
    return problems


# ---------------------------------------------------------------------------
# Names in scope
# ---------------------------------------------------------------------------

def _flow_expression_sites(flow, variables):
    """``(place, source, merge)`` for every expression of ``flow``, placed as the checks above place them."""
    for variable in variables:
        if variable.direction == FlowVariable.OUTPUT and variable.value:
            yield place_of(flow.api_name, f"outputs.{variable.name}") + ".value", variable.value, False
    for screen in flow.screens.all():
        splace = place_of(flow.api_name, f"screen {screen.name}")
        for field in screen.fields.all():
            fplace = place_of(splace, f"field {field.name}")
            if field.type == "display" and field.text:
                yield f"{fplace} › text", field.text, True
            if field.default:
                yield f"{fplace} › default", field.default, False
            if field.visible_if:
                yield f"{fplace} › visible_if", field.visible_if, False
        if screen.validate:
            yield f"{splace} › validate.condition", screen.validate, False
    for index, element in enumerate(flow.elements.all()):
        config = element.config or {}
        eplace = place_of(flow.api_name, f"elements[{index}]" + (f" ({element.name})" if element.name else ""))
        for key in ("set", "filter", "values", "inputs"):
            if isinstance(config.get(key), dict):
                for name, source in config[key].items():
                    yield f"{eplace}.{key}.{name}", source, False
        for i, outcome in enumerate(config.get("outcomes") or [] if element.type == "decision" else []):
            if isinstance(outcome, dict) and outcome.get("condition"):
                yield f"{eplace}.outcomes[{i}].condition", outcome["condition"], False
        if element.type == "send_email":
            yield f"{eplace}.to", config.get("to"), False
            yield f"{eplace}.subject", config.get("subject"), True
            yield f"{eplace}.body", config.get("body"), True
        elif element.type == "http_request":
            yield f"{eplace}.url", config.get("url"), True
            for key, value in (config.get("headers") or {}).items() if isinstance(config.get("headers"), dict) else ():
                yield f"{eplace}.headers.{key}", value, True
            yield f"{eplace}.body", config.get("body"), False


def flow_scope_names(flow, variables):
    """The bare names a run of ``flow`` may have in scope (``flows.runtime`` and ``flows.screens``).

    A screen flow sees ``now``, its inputs and its input fields. Other flows
    see ``now``, the run's ``record``, their inputs, and every variable a run
    may set: assign targets, ``into`` targets, the declared outputs and the
    keys a called action returns. None when that cannot be known: the flow
    calls an action that does not declare what it returns
    (``@flows.action(name, returns=...)``), or is implemented in Python.
    """
    names = {"now"} | {v.name for v in variables if v.direction == FlowVariable.INPUT}
    if flow.type == FlowType.SCREEN:
        for screen in flow.screens.all():
            names |= {f.name for f in screen.fields.all() if f.type != "display"}
        return names
    if flow.implementation:
        return None
    names |= {"record"} | {v.name for v in variables if v.direction == FlowVariable.OUTPUT}
    for element in flow.elements.all():
        config = element.config or {}
        if element.type == "action":
            if config.get("action") not in registered_actions():
                try:
                    import_action_modules()
                except Exception:  # reported where the action is checked
                    pass
            returns = getattr(registered_actions().get(config.get("action")), "baton_returns", None)
            if returns is None:
                return None
            names |= set(returns)
        if element.type == "assign" and isinstance(config.get("set"), dict):
            names |= set(config["set"])
        if isinstance(config.get("into"), str):
            names.add(config["into"])
    return names


def _check_flow_names(problems, flow, variables):
    in_scope = flow_scope_names(flow, variables)
    if in_scope is None:
        return
    for place, source, merge in _flow_expression_sites(flow, variables):
        if not isinstance(source, str):
            continue
        for expression in (merge_fields(source) if merge else [source]):
            for name in sorted({read.name for read in reads(expression)}):
                if name not in in_scope and name not in TYPE_NAMES:
                    problems.append(Problem(place, f"{name} — not in scope (names: {', '.join(sorted(in_scope))})"))
