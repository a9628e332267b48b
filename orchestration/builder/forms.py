"""The builder's property panels: one form per kind of element, no JSON typed.

Each form shows only what its element's kind uses (``KindDependentForm``, the
admin's own rule: fields that do not apply are reset on save). A flow is
picked among the active flows of the type the element needs, and its declared
inputs become one expression box each (``mapping_fields``). Names of steps,
stages and decisions follow the definition file's rules and must be unique
where the database requires it, so a bad name is refused with its place
instead of failing on save.
"""
from django import forms
from django.contrib.auth.models import Group

from flows.admin import KindDependentForm
from flows.durations import parse_duration
from flows.models import VARIABLE_TYPES, Flow, FlowType
from flows.versioning import DefinitionStatus

from ..models import (
    END, DecisionOutcome, Orchestration, Stage, StageExit, StartType, Step, StepEntry, StepExit, StepType,
)
from ..validation import IDENTIFIER_NAME, NAME_FORMS, SLUG_NAME

FLOW_TYPE_FOR_STEP = {StepType.INTERACTIVE: FlowType.SCREEN, StepType.BACKGROUND: FlowType.AUTOLAUNCHED}
EXPRESSION_ATTRS = {"rows": 1, "class": "bb-expr", "spellcheck": "false", "autocomplete": "off"}


def expression_widget():
    return forms.Textarea(attrs=dict(EXPRESSION_ATTRS))


def active_flows(flow_type):
    """{api_name: Flow} of the active versions of ``flow_type``, with their variables."""
    rows = Flow.objects.filter(status=DefinitionStatus.ACTIVE, type=flow_type).prefetch_related("variables")
    return {flow.api_name: flow for flow in rows.order_by("api_name")}


def flow_choices(flows, current):
    choices = [("", "— pick a flow —")]
    choices += [(name, f"{name} v{flow.version}" + (f" — {flow.label}" if flow.label else ""))
                for name, flow in flows.items()]
    if current and current not in flows:
        choices.append((current, f"{current} (no active flow of this type)"))
    return choices


def _check_name(value, pattern, what):
    if not pattern.fullmatch(value or ""):
        raise forms.ValidationError(f"{value!r} is not a valid {what} name: use {NAME_FORMS[pattern]}")
    if value == END:
        raise forms.ValidationError("'end' is reserved")
    return value


def _duration(value, what):
    if value:
        try:
            parse_duration(value)
        except Exception as exc:
            raise forms.ValidationError(f"{value!r} is not a duration for {what} (write 30s, 10m, 2h or 3d): {exc}")
    return value


class MappingMixin:
    """Expression boxes for the declared inputs of a chosen flow (``<prefix>__<input>`` fields)."""

    def add_mapping(self, prefix, flow, current):
        current = dict(current or {})
        names = []
        for variable in (flow.input_variables() if flow is not None else []):
            required = variable.required and variable.default is None
            self.fields[f"{prefix}__{variable.name}"] = forms.CharField(
                required=False, label=variable.name, widget=expression_widget(), initial=current.pop(variable.name, ""),
                help_text=f"{variable.type}{' · required' if required else ''}")
            names.append(variable.name)
        for name, source in current.items():  # mapped, but not an input of the flow: shown so it can be cleared
            self.fields[f"{prefix}__{name}"] = forms.CharField(
                required=False, label=name, widget=expression_widget(), initial=source,
                help_text="not an input of this flow: clear it")
            names.append(name)
        self.mappings = getattr(self, "mappings", {})
        self.mappings[prefix] = names

    @property
    def mapping_fields(self):
        """{prefix: [bound fields]} for templates."""
        return {prefix: [self[f"{prefix}__{name}"] for name in names] for prefix, names in self.mappings.items()}

    def collected(self, prefix):
        return {name: self.cleaned_data[f"{prefix}__{name}"].strip()
                for name in self.mappings.get(prefix, []) if (self.cleaned_data.get(f"{prefix}__{name}") or "").strip()}


def _chosen(form, name):
    """The value of field ``name`` as the form will use it (the posted one if bound)."""
    if form.is_bound:
        return form.data.get(form.add_prefix(name), "")
    return form.initial.get(name, getattr(form.instance, name, ""))


# ------------------------------------------------------------------ start

class StartForm(KindDependentForm):
    kind_fields = {"start_type": {
        StartType.RECORD_TRIGGERED: ["start_model", "start_when", "start_condition", "only_when_changed_to_meet"],
        StartType.AUTOLAUNCHED: [],
    }}

    class Meta:
        model = Orchestration
        fields = ["label", "description", "start_type", "start_model", "start_when", "start_condition",
                  "only_when_changed_to_meet", "max_stage_visits"]
        widgets = {"description": forms.Textarea(attrs={"rows": 2}), "start_condition": expression_widget()}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from ..records import allowed_models

        models = sorted(allowed_models())
        current = self.instance.start_model
        if current and current not in models:
            models.append(current)
        self.fields["start_model"] = forms.ChoiceField(
            required=False, choices=[("", "— pick a model —")] + [(m, m) for m in models], label="Model")
        self.fields["start_when"].required = False


class InputVariableForm(forms.Form):
    name = forms.CharField(required=False, max_length=100)
    type = forms.ChoiceField(choices=[(t, t) for t in VARIABLE_TYPES], initial="text")
    required = forms.BooleanField(required=False)
    default = forms.CharField(required=False, max_length=500, help_text="Left empty: no default.")

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        return _check_name(name, IDENTIFIER_NAME, "input") if name else ""

    def clean(self):
        cleaned = super().clean()
        text, kind = (cleaned.get("default") or "").strip(), cleaned.get("type")
        if not text:
            cleaned["default"] = None
        elif kind == "number":
            try:
                cleaned["default"] = int(text) if text.lstrip("-").isdigit() else float(text)
            except ValueError:
                self.add_error("default", f"{text!r} is not a number")
        elif kind == "boolean":
            if text.lower() not in ("true", "false"):
                self.add_error("default", "write true or false")
            else:
                cleaned["default"] = text.lower() == "true"
        return cleaned

    def variable(self):
        data = self.cleaned_data
        return {"name": data["name"], "type": data["type"], "required": bool(data["required"]),
                "default": data["default"]}


InputVariableFormSet = forms.formset_factory(InputVariableForm, extra=1, max_num=100)


def input_rows(orch):
    return [{"name": v.get("name", ""), "type": v.get("type") or "text", "required": bool(v.get("required")),
             "default": "" if v.get("default") is None else str(v.get("default")).lower()
             if isinstance(v.get("default"), bool) else str(v.get("default"))}
            for v in orch.inputs or [] if isinstance(v, dict)]


# ------------------------------------------------------------------ stages and decisions

def goto_choices(orch, exclude=None, blank=None):
    names = [n for n in orch.stages.values_list("name", flat=True) if n != exclude]
    choices = [("", blank)] if blank else []
    return choices + [(n, n) for n in names] + [(END, "end (finish the run)")]


class ElementNameMixin:
    def clean_name(self):
        name = _check_name(self.cleaned_data["name"].strip(), SLUG_NAME, "stage or decision")
        taken = Stage.objects.filter(orchestration=self.instance.orchestration_id, name=name).exclude(pk=self.instance.pk)
        if taken.exists():
            raise forms.ValidationError(f"another stage or decision is named {name}")
        return name


class StageForm(ElementNameMixin, MappingMixin, KindDependentForm):
    kind_fields = {"exit_type": {StageExit.ALL_STEPS_COMPLETE: [], StageExit.CONDITION: ["exit_condition"],
                                 StageExit.EVALUATION_FLOW: ["exit_flow"]}}

    class Meta:
        model = Stage
        fields = ["name", "label", "next", "exit_type", "exit_condition", "exit_flow"]
        widgets = {"exit_condition": expression_widget()}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        orch = self.instance.orchestration
        self.fields["next"] = forms.ChoiceField(required=False, label="Then go to",
                                                choices=goto_choices(orch, self.instance.name, "the next element"))
        self.evaluation_flows = active_flows(FlowType.EVALUATION)
        chosen = _chosen(self, "exit_flow")
        self.fields["exit_flow"] = forms.ChoiceField(required=False, label="Evaluation flow",
                                                     choices=flow_choices(self.evaluation_flows, chosen))
        self.add_mapping("exit_inputs", self.evaluation_flows.get(chosen), self.instance.exit_flow_inputs)

    def save(self, commit=True):
        stage = super().save(commit=False)
        stage.exit_flow_inputs = self.collected("exit_inputs") if stage.exit_type == StageExit.EVALUATION_FLOW else {}
        if commit:
            stage.save()
        return stage


class DecisionForm(ElementNameMixin, forms.ModelForm):
    class Meta:
        model = Stage
        fields = ["name", "label", "default_goto"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["default_goto"] = forms.ChoiceField(
            label="Otherwise go to", choices=goto_choices(self.instance.orchestration, self.instance.name))


class OutcomeForm(forms.ModelForm):
    class Meta:
        model = DecisionOutcome
        fields = ["name", "condition", "goto"]
        widgets = {"condition": expression_widget()}

    def __init__(self, *args, decision=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["goto"] = forms.ChoiceField(label="Go to", choices=goto_choices(decision.orchestration, decision.name))

    def clean_name(self):
        return _check_name(self.cleaned_data["name"].strip(), IDENTIFIER_NAME, "outcome")


class BaseOutcomeFormSet(forms.BaseModelFormSet):
    def clean(self):
        super().clean()
        names = [f.cleaned_data.get("name") for f in self.forms if f.cleaned_data]
        twice = sorted({n for n in names if n and names.count(n) > 1})
        if twice:
            raise forms.ValidationError(f"outcome names must differ: {', '.join(twice)}")


OutcomeFormSet = forms.modelformset_factory(DecisionOutcome, form=OutcomeForm, formset=BaseOutcomeFormSet, extra=0)


def outcome_formset(decision, data=None):
    return OutcomeFormSet(data, queryset=decision.outcomes.order_by("position", "id"), prefix="outcomes",
                          form_kwargs={"decision": decision})


# ------------------------------------------------------------------ steps

class StepForm(MappingMixin, KindDependentForm):
    kind_fields = {
        "type": {StepType.INTERACTIVE: ["assignee_type", "assignee", "record", "due_in", "escalate_to"],
                 StepType.BACKGROUND: ["retries", "timeout"]},
        "entry_type": {StepEntry.STAGE_START: [], StepEntry.AFTER: ["entry_after"],
                       StepEntry.CONDITION: ["entry_condition"], StepEntry.EVALUATION_FLOW: ["entry_flow"]},
        "exit_type": {StepExit.STEP_COMPLETES: [], StepExit.CONDITION: ["exit_condition"],
                      StepExit.EVALUATION_FLOW: ["exit_flow"]},
    }

    class Meta:
        model = Step
        fields = ["name", "label", "type", "flow", "entry_type", "entry_after", "entry_condition", "entry_flow",
                  "exit_type", "exit_condition", "exit_flow", "assignee_type", "assignee", "record", "due_in",
                  "escalate_to", "retries", "timeout"]
        widgets = {"entry_condition": expression_widget(), "exit_condition": expression_widget(),
                   "record": expression_widget(), "entry_type": forms.RadioSelect, "exit_type": forms.RadioSelect}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        step = self.instance
        step_type = _chosen(self, "type") or StepType.BACKGROUND
        self.step_flows = active_flows(FLOW_TYPE_FOR_STEP.get(step_type, FlowType.AUTOLAUNCHED))
        chosen = _chosen(self, "flow")
        self.fields["flow"] = forms.ChoiceField(required=False, label="Flow", choices=flow_choices(self.step_flows, chosen),
                                                help_text="Active flows of the type this step runs.")
        self.add_mapping("inputs", self.step_flows.get(chosen), step.inputs if chosen == step.flow else {})
        others = [s.name for s in step.stage.steps.order_by("position", "id") if s.pk != step.pk]
        self.fields["entry_after"] = forms.MultipleChoiceField(
            required=False, label="After these steps", widget=forms.CheckboxSelectMultiple,
            choices=[(n, n) for n in others + [n for n in (step.entry_after or []) if n not in others]])
        self.evaluation_flows = active_flows(FlowType.EVALUATION)
        for which in ("entry", "exit"):
            chosen_eval = _chosen(self, f"{which}_flow")
            self.fields[f"{which}_flow"] = forms.ChoiceField(
                required=False, label="Evaluation flow", choices=flow_choices(self.evaluation_flows, chosen_eval))
            self.add_mapping(f"{which}_inputs", self.evaluation_flows.get(chosen_eval),
                             getattr(step, f"{which}_flow_inputs"))
        self.fields["assignee_type"].required = False
        self.fields["assignee"].widget.attrs.update({"list": f"bb-assignees-{step.pk}", "autocomplete": "off"})
        self.fields["assignee"].help_text = "Type to search users, groups or queues; for an expression, CEL giving \"user:NAME\"."

    def clean_name(self):
        name = _check_name(self.cleaned_data["name"].strip(), IDENTIFIER_NAME, "step")
        taken = Step.objects.filter(stage__orchestration=self.instance.stage.orchestration_id, name=name)
        if taken.exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError(f"another step of this orchestration is named {name}")
        return name

    def clean_due_in(self):
        return _duration(self.cleaned_data.get("due_in", "").strip(), "due in")

    def clean_timeout(self):
        return _duration(self.cleaned_data.get("timeout", "").strip(), "timeout") or "10m"

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("type") == StepType.INTERACTIVE and cleaned.get("assignee") and not cleaned.get("assignee_type"):
            self.add_error("assignee_type", "say whether the assignee is a user, a group, a queue or an expression")
        return cleaned

    def save(self, commit=True):
        step = super().save(commit=False)
        step.inputs = self.collected("inputs")
        for which in ("entry", "exit"):
            kind = getattr(step, f"{which}_type")
            setattr(step, f"{which}_flow_inputs",
                    self.collected(f"{which}_inputs") if kind == StepEntry.EVALUATION_FLOW else {})
        if step.type != StepType.INTERACTIVE:
            step.assignee_type = step.assignee = ""
        if commit:
            step.save()
        return step


def assignee_options(kind, query, limit=20):
    """(value, description) pairs for the assignee search box."""
    from django.contrib.auth import get_user_model

    query = (query or "").strip()
    if kind == "user":
        User = get_user_model()
        rows = User.objects.filter(is_active=True, username__icontains=query).order_by("username")[:limit]
        return [(u.username, u.get_full_name() or u.username) for u in rows]
    if kind == "group":
        return [(g.name, "group") for g in Group.objects.filter(name__icontains=query).order_by("name")[:limit]]
    if kind == "queue":
        from workguide.models import Queue

        return [(q.name, "queue") for q in Queue.objects.filter(name__icontains=query).order_by("name")[:limit]]
    return []
