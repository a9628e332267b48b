"""The screen flow runner: Django forms built from a screen flow's definition.

Independent of views and HTTP: the Work Guide pages and the REST API both
drive it. Pieces:

``ScreenForm(data=None, *, spec, screen, inputs, values, draft=None)``
    The form of one screen. Field types: ``text``, ``textarea``, ``number``
    (a float), ``boolean`` (a checkbox; ``required`` means it must be ticked,
    as in Django), ``date``, ``datetime``, ``choice``, ``multichoice``,
    ``email`` and ``display`` (read-only text whose ``{!expr}`` merge fields
    are filled in; the text is HTML-escaped when rendered). ``default`` is an
    expression giving the initial value when the field has none yet.
    ``visible_if`` is evaluated over the inputs and the values entered so far
    (including what is being entered on this screen, field by field in
    order); a hidden field is removed from the form: not shown, not required
    and its value not kept. A ``visible_if`` or ``default`` that cannot be
    evaluated (say it reads a value not entered yet) counts as false / no
    default. The screen's ``validate`` expression sees the screen's cleaned
    values and must give true, else its message is a non-field error.

``ScreenFlowState(spec, inputs, progress=None)``
    Where a person is in a flow: ``current_screen``, ``values`` (the cleaned
    values of every screen so far, by field name), ``form(data=None)``,
    ``preview(data)`` (the screen redrawn from what is typed, visibility
    recomputed, no errors: for an htmx refresh on change) and
    ``submit(data, action)`` with action ``next`` (validate, keep, move on;
    on the last screen it finishes), ``back`` (keep what was typed on this
    screen as a draft, unvalidated, and go back) or ``finish`` (validate this
    screen, then every screen again with ``validate_all``). ``progress`` is a
    JSON-serialisable dict to store per work item and pass back to resume.

``validate_all(spec, inputs, values) -> (outputs, errors)``
    The whole flow at once (the API's completion): every screen's form bound
    to ``values``, in order; ``errors`` maps field names (``__all__`` for
    screen-level messages) to lists of messages, the same messages the pages
    show. ``outputs`` is ``None`` when there are errors.

Outputs: every input field (not ``display``) is an output of its own name
(``None`` when hidden); each declared output then overrides or adds: its
``value`` expression, else the field or flow input of the same name, else its
default; declared outputs are type-checked like variables.

Field names are expected to be unique across a flow's screens (values are
kept by field name). Values are JSON-serialisable: dates and datetimes as
ISO text, numbers as floats, multichoice as a list of text.
"""
from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.template.defaultfilters import linebreaksbr
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html

from .compiled import FlowSpec
from .expressions import (
    ExpressionError, UnstorableValue, check_unicode, evaluate, evaluate_condition, render_merge, shown_name, to_json,
)
from .runtime import FlowError, as_spec
from .values import check_inputs, check_variables, format_errors, scope_value

ACTIONS = ("next", "back", "finish")


# ---------------------------------------------------------------------------
# Fields
# ---------------------------------------------------------------------------

class DisplayWidget(forms.Widget):
    """Read-only text, HTML-escaped, line breaks kept."""

    def __init__(self, text="", attrs=None):
        super().__init__(attrs)
        self.text = text

    def render(self, name, value, attrs=None, renderer=None):
        element_id = (attrs or {}).get("id") or f"id_{name}"
        return format_html('<div class="baton-display" id="{}">{}</div>', element_id, linebreaksbr(self.text))

    def value_from_datadict(self, data, files, name):
        return None


class DisplayField(forms.Field):
    widget = DisplayWidget

    def __init__(self, *, text="", **kwargs):
        kwargs.update(required=False, disabled=True)
        super().__init__(widget=DisplayWidget(text), **kwargs)

    @property
    def text(self):
        return self.widget.text


class MultiChoiceField(forms.MultipleChoiceField):
    """A multichoice: each option at most once, so never more values than there are options.

    The count is checked before anything else, so a submission of thousands
    of values is refused at once instead of each being looked up among the
    choices. Both the pages and the API's completion validate through here.
    """

    def validate(self, value):
        limit = len(self.choices)
        if len(value) > limit:
            raise ValidationError(
                "Choose at most %(limit)d option(s); %(count)d were sent.",
                code="too_many", params={"limit": limit, "count": len(value)},
            )
        seen, repeated = set(), []
        for choice in value:
            if choice in seen and choice not in repeated:
                repeated.append(choice)
            seen.add(choice)
        if repeated:
            raise ValidationError(
                "Each option can be chosen once; chosen more than once: %(values)s.",
                code="duplicate", params={"values": ", ".join(f"“{v}”" for v in repeated)},
            )
        super().validate(value)


def _html_datetime(value):
    if isinstance(value, datetime.datetime):
        return timezone.localtime(value).strftime("%Y-%m-%dT%H:%M") if timezone.is_aware(value) else value.strftime(
            "%Y-%m-%dT%H:%M"
        )
    if isinstance(value, str):
        parsed = parse_datetime(value)
        if parsed is not None:
            return _html_datetime(parsed)
    return value


class DateTimeLocalInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def format_value(self, value):
        return _html_datetime(value) if value not in (None, "") else None


class DateInput(forms.DateInput):
    input_type = "date"

    def format_value(self, value):
        if isinstance(value, datetime.date):
            return value.isoformat()
        return value or None


class NumberInput(forms.NumberInput):
    """Shows whole numbers without a trailing ``.0`` (values are kept as floats)."""

    def format_value(self, value):
        if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
            value = int(value)
        return super().format_value(value)


def make_field(fspec, text=""):
    """The Django form field for one FieldSpec (``text`` is a display field's rendered text)."""
    common = {"label": fspec.label, "help_text": fspec.help_text, "required": fspec.required}
    kind = fspec.type
    if kind == "display":
        return DisplayField(text=text, label=fspec.label, help_text=fspec.help_text)
    if kind == "text":
        return forms.CharField(max_length=10_000, **common)
    if kind == "textarea":
        return forms.CharField(max_length=100_000, widget=forms.Textarea(attrs={"rows": 4}), **common)
    if kind == "number":
        return forms.FloatField(widget=NumberInput(attrs={"step": "any"}), **common)
    if kind == "boolean":
        return forms.BooleanField(**common)
    if kind == "date":
        return forms.DateField(widget=DateInput(), **common)
    if kind == "datetime":
        return forms.DateTimeField(widget=DateTimeLocalInput(), **common)
    if kind == "choice":
        # Required choices start blank too: a select showing its first option would submit it
        # untouched (a "Decision" opening on Approve). Blank is then refused as "required".
        blank = ("", "Choose…") if fspec.required else ("", "---------")
        return forms.ChoiceField(choices=[blank, *fspec.choice_pairs()], **common)
    if kind == "multichoice":
        return MultiChoiceField(choices=fspec.choice_pairs(), widget=forms.CheckboxSelectMultiple, **common)
    if kind == "email":
        return forms.EmailField(**common)
    raise FlowError(f"field {fspec.name!r} has an unknown type {kind!r}")


def json_value(fspec, value):
    """A cleaned form value as stored (JSON)."""
    if value is None:
        return None
    if fspec.type == "datetime" and isinstance(value, datetime.datetime):
        if timezone.is_naive(value):
            value = timezone.make_aware(value)
        return value.isoformat()
    if fspec.type in ("text", "textarea", "email", "choice") and value == "":
        return None
    return to_json(value)


def flow_scope(spec, inputs, values, now=None):
    """Names expressions see in a screen flow: ``now``, every input and field (None until set)."""
    scope = {"now": now or timezone.now()}
    for var in spec.inputs:
        scope[var.name] = None
    field_types = {}
    for f in spec.screen_fields():
        if f.is_input:
            scope[f.name] = None
            field_types[f.name] = f.type
    input_types = {v.name: v.type for v in spec.inputs}
    for name, value in (inputs or {}).items():
        scope[name] = scope_value(input_types.get(name, "text"), value)
    for name, value in (values or {}).items():
        if name in field_types:
            scope[name] = scope_value(field_types[name], value)
    return scope


# ---------------------------------------------------------------------------
# The form of one screen
# ---------------------------------------------------------------------------

class ScreenForm(forms.Form):
    """One screen as a form. ``values``: the flow's values so far (other screens included)."""

    def __init__(self, data=None, *, spec, screen, inputs, values=None, draft=None, now=None, check_screen=True,
                 **kwargs):
        super().__init__(data, **kwargs)
        self.check_screen = check_screen
        self.spec = spec
        self.screen = screen
        self.flow_inputs = inputs or {}
        self.flow_values = dict(values or {})
        self.now = now or timezone.now()
        self.specs = {f.name: f for f in screen.fields}
        self.base_scope = flow_scope(spec, self.flow_inputs, self.flow_values, self.now)
        # Values of this screen as entered (bound), drafted or stored, for visibility and merge text.
        tentative, initial = {}, {}
        probe = {}
        for f in screen.input_fields():
            probe[f.name] = make_field(f)
        for f in screen.input_fields():
            if draft is not None and f.name in draft:
                initial[f.name] = draft[f.name]
            elif f.name in self.flow_values:
                initial[f.name] = self.flow_values[f.name]
            elif f.default:
                initial[f.name] = self._default(f)
            if self.is_bound:
                raw = probe[f.name].widget.value_from_datadict(self.data, self.files, self.add_prefix(f.name))
            else:
                raw = initial.get(f.name)
            tentative[f.name] = self._try_clean(f, probe[f.name], raw)
        self.initial = {**initial, **self.initial}
        # Visibility, in field order, each hidden field counted as empty for the ones after it.
        scope = dict(self.base_scope)
        scope.update({k: scope_value(self.specs[k].type, v) for k, v in tentative.items()})
        self.hidden_names = []
        for f in screen.fields:
            if f.visible_if and not self._holds(f.visible_if, scope):
                self.hidden_names.append(f.name)
                if f.is_input:
                    scope[f.name] = None
        self.scope = scope
        for f in screen.fields:
            if f.name in self.hidden_names:
                continue
            text = self._merge(f) if f.type == "display" else ""
            self.fields[f.name] = make_field(f, text)

    # -- expression helpers --------------------------------------------------
    def _place(self, what):
        return f"{self.spec} › {self.screen.name} › {what}"

    def _default(self, f):
        try:
            value = evaluate(f.default, self.base_scope, self._place(f"{f.name}.default"))
            return to_json(value)
        except (ExpressionError, UnstorableValue):
            return None

    def _holds(self, source, scope):
        try:
            return evaluate(source, scope) is True
        except ExpressionError:
            return False

    def _merge(self, f):
        try:
            return render_merge(f.text, self.scope, self._place(f.name))
        except ExpressionError as exc:
            return f"[{exc}]"

    @staticmethod
    def _try_clean(f, django_field, raw):
        try:
            return json_value(f, django_field.clean(raw))
        except (ValidationError, TypeError, ValueError):
            return None

    # -- validation ------------------------------------------------------------
    def clean(self):
        cleaned = super().clean()
        if self.screen.validate and self.check_screen and not self.errors:
            scope = dict(self.base_scope)
            for name, value in self.screen_values(cleaned).items():
                scope[name] = scope_value(self.specs[name].type, value)
            for name in self.hidden_names:
                if self.specs[name].is_input:
                    scope[name] = None
            try:
                held = evaluate_condition(self.screen.validate, scope, self._place("validate"))
            except ExpressionError as exc:
                raise ValidationError(f"This screen cannot be checked: {exc}") from None
            if not held:
                raise ValidationError(self.screen.validate_message or "Please check the values on this screen.")
        return cleaned

    def screen_values(self, cleaned=None):
        """JSON values of the visible input fields (call after is_valid())."""
        cleaned = self.cleaned_data if cleaned is None else cleaned
        return {
            f.name: json_value(f, cleaned.get(f.name))
            for f in self.screen.input_fields()
            if f.name in self.fields and f.name in cleaned
        }

    def raw_values(self):
        """What was typed on this screen, unvalidated but JSON-serialisable (for Back)."""
        raw = {}
        for f in self.screen.input_fields():
            if f.name in self.fields:
                value = self.fields[f.name].widget.value_from_datadict(self.data, self.files, self.add_prefix(f.name))
                raw[f.name] = to_json(value)
        return raw

    def error_dict(self):
        return {name: [str(m) for m in messages] for name, messages in self.errors.items()}


def _as_data(screen, values):
    """Form data for a screen from stored JSON values (booleans and lists kept as they are)."""
    data = {}
    for f in screen.input_fields():
        value = values.get(f.name)
        if value is None:
            continue
        if f.type == "multichoice":
            data[f.name] = [str(v) for v in value] if isinstance(value, (list, tuple)) else value
        else:
            data[f.name] = value
    return data


# ---------------------------------------------------------------------------
# Whole flow
# ---------------------------------------------------------------------------

def _screen_spec(spec):
    spec = as_spec(spec)
    if spec.type != "screen":
        raise FlowError(f"is a {spec.type} flow, not a screen flow", flow=spec)
    if not spec.screens:
        raise FlowError("has no screens", flow=spec)
    return spec


def _clean_inputs(spec, inputs):
    cleaned, errors = check_inputs(spec, inputs)
    if errors:
        raise FlowError(f"bad inputs: {format_errors(errors)}", flow=spec)
    return cleaned


def validate_all(spec, inputs, values, *, _clean=True, now=None):
    """Validate every screen against ``values``; ``(outputs, errors_by_field)``."""
    spec = _screen_spec(spec)
    inputs = _clean_inputs(spec, inputs) if _clean else inputs
    errors = {}
    if not isinstance(values, dict):
        return None, {NON_FIELD_ERRORS: [f"values must be a map of field names to values, not {type(values).__name__}"]}
    known = {f.name: f for f in spec.screen_fields()}
    unstorable = False
    for name, value in values.items():
        if name not in known:
            errors.setdefault(shown_name(name), []).append("Unknown field.")
        try:
            check_unicode(value)
        except UnstorableValue as exc:  # a page cannot send it, a Python caller can
            errors.setdefault(shown_name(name), []).append(f"This value cannot be stored: {exc}.")
            unstorable = True
    if unstorable:
        return None, errors
    kept = {}
    failed = False
    now = now or timezone.now()
    for screen in spec.screens:
        # A screen's validate expression reads earlier values: skip it once an earlier screen failed.
        form = ScreenForm(_as_data(screen, values), spec=spec, screen=screen, inputs=inputs, values=kept, now=now,
                          check_screen=not failed)
        if form.is_valid():
            kept.update(form.screen_values())
        else:
            failed = True
            for name, messages in form.error_dict().items():
                errors.setdefault(name, []).extend(messages)
            kept.update(form.screen_values(getattr(form, "cleaned_data", {})))
    if errors:
        return None, errors
    outputs, output_errors = compute_outputs(spec, inputs, kept, now=now)
    if output_errors:
        return None, {NON_FIELD_ERRORS: output_errors}
    return outputs, {}


def compute_outputs(spec, inputs, values, now=None):
    """``(outputs, messages)`` of a finished screen flow from its kept values."""
    outputs = {f.name: values.get(f.name) for f in spec.screen_fields() if f.is_input}
    if not spec.outputs:
        return outputs, []
    scope = flow_scope(spec, inputs, values, now)
    raw, messages = {}, []
    for out in spec.outputs:
        if out.value:
            try:
                raw[out.name] = to_json(evaluate(out.value, scope, f"{spec} › output {out.name}"))
            except ExpressionError as exc:
                messages.append(f"This flow cannot finish: {exc}")
            except UnstorableValue as exc:
                messages.append(f"This flow cannot finish: {spec} › output {out.name}: {exc}")
        elif out.name in outputs:
            raw[out.name] = outputs[out.name]
        else:
            raw[out.name] = (inputs or {}).get(out.name)
    if messages:
        return None, messages
    cleaned, errors = check_variables(spec.outputs, raw)
    if errors:
        return None, [f"This flow cannot finish: output {name}: {message}" for name, message in errors.items()]
    outputs.update(cleaned)
    return outputs, []


@dataclass
class SubmitResult:
    ok: bool  # the action was carried out
    finished: bool = False
    form: ScreenForm | None = None  # the form to show now (None once finished)
    outputs: dict | None = None
    errors: dict = field(default_factory=dict)


class ScreenFlowState:
    """A person's way through a screen flow; ``progress`` stores and restores it."""

    def __init__(self, spec, inputs, progress=None):
        self.spec: FlowSpec = _screen_spec(spec)
        self.inputs = _clean_inputs(self.spec, inputs)
        progress = progress or {}
        index = progress.get("screen", 0)
        self.index = index if isinstance(index, int) and 0 <= index < len(self.spec.screens) else 0
        self.values = dict(progress.get("values") or {})
        self.drafts = {k: dict(v) for k, v in (progress.get("drafts") or {}).items()}
        self.finished = bool(progress.get("finished"))
        self.outputs = progress.get("outputs")

    # -- where we are -----------------------------------------------------------
    @property
    def current_screen(self):
        return self.spec.screens[self.index]

    @property
    def screen_count(self):
        return len(self.spec.screens)

    @property
    def is_first(self):
        return self.index == 0

    @property
    def is_last(self):
        return self.index == len(self.spec.screens) - 1

    @property
    def progress(self):
        return {
            "screen": self.index,
            "values": self.values,
            "drafts": self.drafts,
            "finished": self.finished,
            "outputs": self.outputs,
        }

    def form(self, data=None, **kwargs):
        """The current screen's form: bound to ``data`` if given, else showing kept values or drafts."""
        screen = self.current_screen
        return ScreenForm(
            data, spec=self.spec, screen=screen, inputs=self.inputs, values=self._values_before(screen),
            draft=self.drafts.get(screen.name), **kwargs,
        )

    def preview(self, data):
        """The current screen redrawn from what is typed, without errors (for a live ``visible_if`` refresh)."""
        raw = self.form(data).raw_values()
        screen = self.current_screen
        draft = {**self.drafts.get(screen.name, {}), **raw}
        form = ScreenForm(spec=self.spec, screen=screen, inputs=self.inputs, values=self.values, draft=draft)
        form.initial_draft = draft  # what to keep as this screen's draft (ScreenFlowState.drafts)
        return form

    def _values_before(self, screen):
        # Everything kept, including this screen's own earlier values (shown as initial).
        return self.values

    # -- moving -------------------------------------------------------------------
    def submit(self, data, action):
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r} (use one of {', '.join(ACTIONS)})")
        if self.finished:
            return SubmitResult(ok=False, finished=True, outputs=self.outputs,
                                errors={NON_FIELD_ERRORS: ["This flow is already finished."]})
        form = self.form(data)
        screen = self.current_screen
        if action == "back":
            self.drafts[screen.name] = form.raw_values()
            self.index = max(0, self.index - 1)
            return SubmitResult(ok=True, form=self.form())
        if not form.is_valid():
            return SubmitResult(ok=False, form=form, errors=form.error_dict())
        self._keep(screen, form)
        if action == "next" and not self.is_last:
            self.index += 1
            return SubmitResult(ok=True, form=self.form())
        return self._finish()

    def _keep(self, screen, form):
        for f in screen.input_fields():
            self.values.pop(f.name, None)
        self.values.update({k: v for k, v in form.screen_values().items()})
        self.drafts.pop(screen.name, None)

    def _finish(self):
        outputs, errors = validate_all(self.spec, self.inputs, self.values, _clean=False)
        if errors:
            # Show the first screen that fails, bound to the kept values so its errors appear.
            for i, screen in enumerate(self.spec.screens):
                names = {f.name for f in screen.fields}
                if names & set(errors) or (NON_FIELD_ERRORS in errors and self._screen_fails(screen)):
                    self.index = i
                    break
            screen = self.current_screen
            form = ScreenForm(_as_data(screen, self.values), spec=self.spec, screen=screen, inputs=self.inputs,
                              values=self.values)
            form.is_valid()
            return SubmitResult(ok=False, form=form, errors=errors)
        self.finished = True
        self.outputs = outputs
        return SubmitResult(ok=True, finished=True, outputs=outputs)

    def _screen_fails(self, screen):
        form = ScreenForm(_as_data(screen, self.values), spec=self.spec, screen=screen, inputs=self.inputs,
                          values=self.values)
        return not form.is_valid()


__all__ = [
    "ScreenForm", "ScreenFlowState", "SubmitResult", "validate_all", "compute_outputs", "make_field",
    "flow_scope", "DisplayField", "DisplayWidget", "MultiChoiceField",
]
