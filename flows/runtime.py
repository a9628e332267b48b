"""The interpreter of autolaunched and evaluation flows.

``run_flow(spec_or_flow, inputs, *, record=None, user=None) -> dict``
runs one flow version and returns its outputs; ``evaluate_flow(...)`` runs
an evaluation flow and returns its boolean ``condition_met``.
``check_variables(declared, given)`` (and ``check_inputs(spec, inputs)``)
validate values against declared variables; the orchestration launcher
uses the same function for orchestration inputs. They live in
``flows/values.py`` and are re-exported here; the rules they apply are
below.

Rules
-----
Values and types
    After cleaning every value is JSON-storable: ``text`` is a str,
    ``number`` a float (CEL does not mix int and double in arithmetic, so a
    flow's numbers are always doubles: write ``amount * 2.0``), ``boolean`` a
    bool, ``date`` ISO text ``YYYY-MM-DD``, ``datetime`` ISO text with a time
    zone (a naive value is taken in the current time zone), ``record`` the
    text ``"app_label.model:pk"`` of a record of a model in
    ``BATON_FLOW_MODELS`` that exists, ``list`` a JSON list. ``None`` given
    counts as not given. Unknown names, missing required values and values of
    the wrong type are errors, one message per name.

Scope
    Every variable is in scope by its bare name: the inputs (defaults
    applied), every value set since (``assign``, ``into`` of an element, the
    keys an action returns). ``datetime`` inputs are CEL timestamps in scope
    (so ``due < now`` works). ``now`` is the time the run started. When the
    caller passes a ``record`` it is in scope as ``record`` (a map of its
    fields, as everywhere else), unless a variable has that name. Nothing else
    is in scope; a name that is not yet set is an error.

Elements run in order; a ``decision`` takes the first outcome whose
    condition holds (``goto`` an element name or ``end``), else its
    ``default`` (omitted: the next element). A run may execute at most
    ``BATON_FLOW_MAX_ELEMENTS`` elements (loops included; default 10,000),
    and every expression runs under the limits of ``flows.expressions``
    (a value an expression builds is bounded there, so a loop doubling a
    text fails at the limit instead of growing until the process dies).

Outputs
    Each declared output is, in order of preference: its ``value``
    expression; the variable of the same name; its declared ``default``.
    A required output that ends up ``None`` is an error; an optional one is
    ``None``. Outputs are type-checked like inputs. A flow that declares no
    outputs returns ``{}`` (its variables are internal). An evaluation flow
    returns only ``{"condition_met": bool}``: the declared output of that
    name, or else the variable of that name; anything but true or false is an
    error.

Whole-Python flows (``implementation``)
    ``resolve_implementation(dotted)(**cleaned_inputs)`` returns a dict (or
    ``None``); its keys are variables from which outputs are taken as above.

Errors
    Everything that goes wrong raises ``FlowError`` whose message names the
    flow (``api_name vN``), the element (``element #3 'check' (decision)``)
    and, where one is at fault, the expression. Exceptions raised by actions,
    implementations, the ORM or the network are wrapped (the original stays
    as ``__cause__``).

Security: ``get_records``/``create_record``/``update_records`` reach only
models in ``BATON_FLOW_MODELS`` and only their exposed fields
(``flows.records.exposed_fields``: never a password or secret; no ``__``
lookups); ``http_request`` calls only hosts in ``BATON_HTTP_ALLOWED_HOSTS``,
over http or https, without following redirects, with a timeout.
"""
from __future__ import annotations

import json
import re

import requests
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from .actions import UnknownAction, get_action, resolve_implementation
from .conf import baton_settings
from .compiled import FlowSpec, VariableSpec
from .durations import parse_duration
from .expressions import (
    ExpressionError, UnstorableValue, evaluate, evaluate_condition, limits, render_merge, to_cel, to_json,
)
from .http import HostPolicy, RefusedURL, check_url, open_session
from .names import assignment_order
from .records import RecordError, exposed_fields, get_model, record_map
from .values import check_inputs, check_variables, clean_value, format_errors, kind_of, scope_value  # noqa: F401 (clean_value: public here too)

MAX_RECORDS = 1000
MAX_UPDATE = 1000
MAX_RESPONSE_BYTES = 1_000_000
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class FlowError(Exception):
    """A flow failed. ``str()`` is a complete message naming flow, element and expression."""

    def __init__(self, message, *, flow="", element="", expression=""):
        self.flow = str(flow) if flow else ""
        self.element = element
        self.expression = expression
        self.detail = message
        parts = [p for p in (f"flow {self.flow}" if self.flow else "", element) if p]
        text = ", ".join(parts)
        text = f"{text}: {message}" if text else message
        if expression and expression not in message:
            text = f"{text} (expression {expression!r})"
        super().__init__(text)


# ---------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------

def as_spec(spec_or_flow):
    """A FlowSpec from a spec, a Flow, a flow id or an api_name (its active version)."""
    if isinstance(spec_or_flow, FlowSpec):
        return spec_or_flow
    if isinstance(spec_or_flow, str):
        return FlowSpec.active(spec_or_flow)
    return FlowSpec.load(spec_or_flow)


def run_flow(spec_or_flow, inputs, *, record=None, user=None):
    """Run an autolaunched or evaluation flow; its outputs as a JSON-storable dict."""
    spec = as_spec(spec_or_flow)
    return _Run(spec, record=record, user=user).run(inputs)


def evaluate_flow(spec_or_flow, inputs, *, record=None, user=None):
    """Run an evaluation flow and return its ``condition_met``."""
    spec = as_spec(spec_or_flow)
    if spec.type != "evaluation":
        raise FlowError(f"is a {spec.type} flow, not an evaluation flow", flow=spec)
    return run_flow(spec, inputs, record=record, user=user)["condition_met"]


class _Run:
    def __init__(self, spec, *, record=None, user=None):
        self.spec = spec
        self.record = record
        self.user = user
        self.vars = {}
        self.element = None

    # -- helpers -------------------------------------------------------------
    def fail(self, message, expression="", cause=None):
        error = FlowError(
            message, flow=self.spec, element=self.element.describe() if self.element else "", expression=expression
        )
        if cause is not None:
            raise error from cause
        raise error

    def scope(self):
        scope = {}
        if self.record is not None:
            scope["record"] = record_map(self.record) if hasattr(self.record, "_meta") else to_cel(self.record)
        scope["now"] = self.now
        scope.update(self.vars)
        return scope

    def eval(self, source, where=""):
        if not isinstance(source, str):
            # A literal in the definition (a number, true/false) stands for itself.
            return to_cel(source)
        try:
            return evaluate(source, self.scope(), where)
        except ExpressionError as exc:
            self.fail(exc.detail if not where else f"{where}: {exc.detail}", expression=source)

    def merge(self, text, where=""):
        try:
            return render_merge(str(text or ""), self.scope(), where)
        except ExpressionError as exc:
            self.fail(f"{where}: {exc.detail}" if where else exc.detail, expression=exc.expression)

    def set(self, name, value):
        if not isinstance(name, str) or not IDENTIFIER.match(name):
            self.fail(f"{name!r} is not a valid variable name")
        self.vars[name] = to_cel(value)

    def cfg(self, key, default=None, required=False):
        value = self.element.config.get(key, default)
        if required and (value is None or value == ""):
            self.fail(f"the element has no {key!r}")
        return value

    # -- the run ---------------------------------------------------------------
    def run(self, inputs):
        spec = self.spec
        if spec.type == "screen":
            raise FlowError("is a screen flow; it runs as a work item, not in the background", flow=spec)
        cleaned, errors = check_inputs(spec, inputs)
        if errors:
            raise FlowError(f"bad inputs: {format_errors(errors)}", flow=spec)
        self.now = timezone.now()
        types_by_name = {v.name: v.type for v in spec.inputs}
        for name, value in cleaned.items():
            self.vars[name] = scope_value(types_by_name.get(name), value)
        if spec.implementation:
            self.run_implementation(cleaned)
        else:
            self.run_elements()
        self.element = None
        return self.outputs()

    def run_implementation(self, cleaned):
        try:
            fn = resolve_implementation(self.spec.implementation)
        except UnknownAction as exc:
            raise FlowError(str(exc), flow=self.spec) from None
        try:
            result = fn(**cleaned)
        except FlowError:
            raise
        except Exception as exc:
            raise FlowError(
                f"implementation {self.spec.implementation!r} raised {type(exc).__name__}: {exc}", flow=self.spec
            ) from exc
        self.take_result(result, f"implementation {self.spec.implementation!r}")

    def take_result(self, result, who):
        if result is None:
            return
        if not isinstance(result, dict):
            self.fail(f"{who} returned {type(result).__name__}, not a dict")
        for key, value in result.items():
            self.set(key, value)

    def run_elements(self):
        elements = self.spec.elements
        labels = self.spec.labels()
        index, steps = 0, 0
        max_elements = limits().flow_max_elements
        while 0 <= index < len(elements):
            steps += 1
            self.element = elements[index]
            if steps > max_elements:
                self.fail(f"ran more than {max_elements} elements; is there a loop that never ends? "
                          "(setting BATON_FLOW_MAX_ELEMENTS)")
            handler = getattr(self, f"do_{self.element.type}", None)
            if handler is None:
                self.fail(f"unknown element type {self.element.type!r}")
            goto = handler()
            if goto is None:
                index += 1
            elif goto == "end":
                break
            elif goto in labels:
                index = labels[goto]
            else:
                self.fail(f"goto {goto!r}: no element has that name (write an element name or end)")

    def outputs(self):
        spec = self.spec
        scope = self.scope()
        raw = {}
        for out in spec.outputs:
            if out.value:
                try:
                    value = evaluate(out.value, scope, f"output {out.name}")
                except ExpressionError as exc:
                    raise FlowError(exc.detail, flow=spec, element=f"output {out.name!r}", expression=out.value) from None
            else:
                value = self.vars.get(out.name)
            try:
                raw[out.name] = to_json(value)
            except UnstorableValue as exc:
                raise FlowError(f"output {out.name}: {exc}", flow=spec) from None
        cleaned, errors = check_variables(
            [VariableSpec(o.name, o.type, o.required, o.default) for o in spec.outputs], raw
        )
        if errors:
            raise FlowError(f"bad outputs: {format_errors(errors)}", flow=spec)
        if spec.type == "evaluation":
            met = cleaned["condition_met"] if spec.output("condition_met") else to_json(self.vars.get("condition_met"))
            if not isinstance(met, bool):
                raise FlowError(
                    f"an evaluation flow must set condition_met to true or false, not {kind_of(met)}", flow=spec
                )
            return {"condition_met": met}
        return cleaned

    # -- elements --------------------------------------------------------------
    def do_assign(self):
        assignments = self.cfg("set", required=True)
        if not hasattr(assignments, "items"):
            self.fail("'set' must map variable names to expressions")
        try:
            order = assignment_order(assignments)
        except ValueError as exc:
            self.fail(f"'set': {exc}")
        for name in order:
            self.set(name, self.eval(assignments[name], f"set {name}"))

    def do_decision(self):
        for i, outcome in enumerate(self.cfg("outcomes", ()) or ()):
            source = outcome.get("condition")
            where = f"outcome {outcome.get('name') or i + 1}"
            if not isinstance(source, str) or not source.strip():
                self.fail(f"{where} has no condition")
            try:
                held = evaluate_condition(source, self.scope(), where)
            except ExpressionError as exc:
                self.fail(f"{where}: {exc.detail}", expression=source)
            if held:
                goto = outcome.get("goto")
                if not goto:
                    self.fail(f"{where} has no goto")
                return goto
        return self.cfg("default") or None

    # records
    def model(self):
        label = self.cfg("model", required=True)
        try:
            return get_model(str(label))
        except RecordError as exc:
            self.fail("; ".join(exc.messages))

    def model_field(self, model, name, what):
        """The concrete field ``name`` (its name or attname) of ``model``; no lookups across relations."""
        if not isinstance(name, str) or "__" in name:
            self.fail(f"{what} {name!r}: only plain field names of {model._meta.label_lower} are allowed")
        if name == "pk":
            return model._meta.pk
        field = next((f for f in model._meta.concrete_fields if name in (f.name, f.attname)), None)
        if field is None:
            self.fail(f"{what} {name!r}: {model._meta.label_lower} has no such field")
        if field.attname not in exposed_fields(model):
            self.fail(f"{what} {name!r}: field of {model._meta.label_lower} not exposed to flows "
                      f"(settings BATON_FLOW_MODELS, BATON_SECRET_FIELDS)")
        return field

    def evaluated_map(self, model, key, what):
        """``{attname: value}`` from the element's ``{field: expression}`` map ``key``."""
        mapping = self.cfg(key) or {}
        if not hasattr(mapping, "items"):
            self.fail(f"{key!r} must map field names to expressions")
        values = {}
        for name, source in mapping.items():
            field = self.model_field(model, name, what)
            values[field.attname] = self.eval(source, f"{key}.{name}")
        return values

    def queryset(self, model):
        filters = self.evaluated_map(model, "filter", "filter on")
        return model._default_manager.filter(**filters).order_by("pk"), filters

    def do_get_records(self):
        model = self.model()
        into = self.cfg("into", required=True)
        limit = self.cfg("limit", MAX_RECORDS)
        if isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit < 1:
            self.fail(f"limit must be a positive number, not {limit!r}")
        limit = min(int(limit), MAX_RECORDS)
        queryset, _ = self.queryset(model)
        try:
            if self.cfg("first", False):
                found = queryset.first()
                self.set(into, record_map(found) if found is not None else None)
            else:
                self.set(into, [record_map(r) for r in queryset[:limit]])
        except (ValueError, TypeError, ValidationError) as exc:
            self.fail(f"cannot read {model._meta.label_lower}: {_exc_text(exc)}", cause=exc)

    def do_create_record(self):
        model = self.model()
        values = self.evaluated_map(model, "values", "value for")
        try:
            with transaction.atomic():
                instance = model(**values)
                instance.full_clean()
                instance.save()
        except ValidationError as exc:
            self.fail(f"cannot create {model._meta.label_lower}: {_exc_text(exc)}", cause=exc)
        except (ValueError, TypeError) as exc:
            self.fail(f"cannot create {model._meta.label_lower}: {exc}", cause=exc)
        into = self.cfg("into")
        if into:
            self.set(into, record_map(instance))

    def do_update_records(self):
        model = self.model()
        if not self.cfg("filter"):
            self.fail("update_records needs a filter (it never updates a whole table)")
        queryset, _ = self.queryset(model)
        values = self.evaluated_map(model, "values", "value for")
        if not values:
            self.fail("update_records has no values to set")
        if model._meta.pk.attname in values:
            self.fail("update_records cannot change a primary key")
        names = list(values)
        count = 0
        try:
            with transaction.atomic():
                records = list(queryset.select_for_update()[: MAX_UPDATE + 1])
                if len(records) > MAX_UPDATE:
                    self.fail(f"the filter matches more than {MAX_UPDATE} records")
                by_attname = {f.attname: f for f in model._meta.concrete_fields}
                fields = [by_attname[n].name for n in names]
                exclude = [f.name for f in model._meta.concrete_fields if f.name not in fields]
                for instance in records:
                    for name, value in values.items():
                        setattr(instance, name, value)
                    instance.clean_fields(exclude=exclude)
                    instance.save(update_fields=fields)
                    count += 1
        except FlowError:
            raise
        except ValidationError as exc:
            self.fail(f"cannot update {model._meta.label_lower}: {_exc_text(exc)}", cause=exc)
        except (ValueError, TypeError) as exc:
            self.fail(f"cannot update {model._meta.label_lower}: {exc}", cause=exc)
        into = self.cfg("into")
        if into:
            self.set(into, count)

    # outside world
    def do_send_email(self):
        to = self.eval(self.cfg("to", required=True), "to")
        recipients = [to] if isinstance(to, str) else to
        if not isinstance(recipients, list) or not recipients:
            self.fail(f"'to' must give an address or a list of addresses, not {kind_of(to)}", expression=self.cfg("to"))
        for address in recipients:
            try:
                validate_email(address)
            except (ValidationError, TypeError):
                self.fail(f"{address!r} is not an email address", expression=self.cfg("to"))
        subject = self.merge(self.cfg("subject", ""), "subject").replace("\n", " ").strip()
        body = self.merge(self.cfg("body", ""), "body")
        from_email = self.merge(self.cfg("from"), "from") if self.cfg("from") else None
        try:
            sent = send_mail(subject, body, from_email, recipients, fail_silently=False)
        except Exception as exc:
            self.fail(f"the mail could not be sent: {type(exc).__name__}: {exc}", cause=exc)
        into = self.cfg("into")
        if into:
            self.set(into, sent)

    def do_http_request(self):
        method = str(self.cfg("method", "GET") or "GET").upper()
        if method not in {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"}:
            self.fail(f"method {method!r} is not allowed")
        url = self.merge(self.cfg("url", required=True), "url").strip()
        policy = HostPolicy.from_settings()
        try:
            check_url(url, policy)
        except RefusedURL as exc:
            self.fail(str(exc))
        default_timeout = float(baton_settings.BATON_HTTP_TIMEOUT)
        timeout = self.cfg("timeout", default_timeout)
        if isinstance(timeout, str):
            try:
                timeout = parse_duration(timeout).total_seconds()
            except Exception:
                self.fail(f"timeout {timeout!r} is not a number of seconds or a duration")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            self.fail(f"timeout {timeout!r} is not a positive number of seconds")
        headers = {}
        for name, text in (self.cfg("headers") or {}).items():
            headers[str(name)] = self.merge(text, f"headers.{name}")
        kwargs = {}
        if self.cfg("body") is not None:
            body = self.eval(self.cfg("body"), "body")
            if isinstance(body, str):
                kwargs["data"] = body.encode()
            else:
                kwargs["json"] = to_json(body)
        try:
            with open_session(policy) as session, session.request(
                method, url, headers=headers, timeout=float(timeout), allow_redirects=False, stream=True, **kwargs
            ) as response:
                content = b""
                for chunk in response.iter_content(65536):
                    content += chunk
                    if len(content) > MAX_RESPONSE_BYTES:
                        self.fail(f"the response of {url!r} is larger than {MAX_RESPONSE_BYTES} bytes")
                status = response.status_code
                encoding = response.encoding or "utf-8"
                content_type = response.headers.get("Content-Type", "")
        except FlowError:
            raise
        except RefusedURL as exc:
            self.fail(str(exc), cause=exc)
        except requests.Timeout as exc:
            self.fail(f"{method} {url} timed out after {timeout} s", cause=exc)
        except requests.RequestException as exc:
            self.fail(f"{method} {url} failed: {type(exc).__name__}: {exc}", cause=exc)
        text = content.decode(encoding, errors="replace")
        data = None
        if "json" in content_type or text[:1] in ("{", "["):
            try:
                data = json.loads(text)
            except ValueError:
                data = None
        into = self.cfg("into")
        if into:
            self.set(into, {"status": status, "ok": 200 <= status < 300, "body": text, "json": data})

    def do_action(self):
        name = self.cfg("action", required=True)
        try:
            fn = get_action(name)
        except UnknownAction as exc:
            self.fail(str(exc))
        arguments = {}
        for param, source in (self.cfg("inputs") or {}).items():
            arguments[param] = self.eval(source, f"inputs.{param}")
        try:
            result = fn(**arguments)
        except FlowError:
            raise
        except Exception as exc:
            self.fail(f"action {name!r} raised {type(exc).__name__}: {exc}", cause=exc)
        self.take_result(result, f"action {name!r}")


def _exc_text(exc):
    if isinstance(exc, ValidationError):
        if hasattr(exc, "error_dict"):
            return "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
        return " ".join(exc.messages)
    return str(exc)
