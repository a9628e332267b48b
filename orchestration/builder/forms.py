"""The builder's property panels: one form per kind of element, no JSON typed.

Each form shows only what its element's kind uses (``KindDependentForm``, the
admin's own rule: fields that do not apply are reset on save). A flow is
picked among the active flows of the type the element needs, and its declared
inputs become one expression box each (``mapping_fields``). Names of steps,
stages and decisions follow the definition file's rules and must be unique
where the database requires it, so a bad name is refused with its place
instead of failing on save.
"""
import json

from django import forms
from django.contrib.auth.models import Group
from django.core.validators import MaxValueValidator

from flows.admin import KindDependentForm
from flows.durations import parse_duration
from flows.models import VARIABLE_TYPES, Flow, FlowType
from flows.versioning import DefinitionStatus

from ..models import (
    END, AssigneeType, DecisionOutcome, Orchestration, Stage, StageExit, StartType, Step, StepEntry, StepExit,
    StepType,
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
    """The active ``flows`` to pick from, and ``current`` (the stored one) even when it is not among them.

    Only the stored name is added: a posted name that is not offered is refused by the form.
    """
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
        except ValueError:  # parse_duration's own message says the same: one sentence, naming the field
            raise forms.ValidationError(f"{value!r} is not a duration for {what} (write 30s, 10m, 2h, 3d or PT30S)")
    return value


class MappingMixin:
    """Expression boxes for the declared inputs of a chosen flow (``<prefix>__<input>`` fields)."""

    def add_mapping(self, prefix, flow, current, declared=None, what="flow"):
        """One box per declared input of ``flow`` (or of ``declared``: (name, type, required) triples)."""
        current = dict(current or {})
        names = []
        if declared is None:
            declared = [(v.name, v.type, v.required and v.default is None)
                        for v in (flow.input_variables() if flow is not None else [])]
        for name, kind, required in declared:
            self.fields[f"{prefix}__{name}"] = forms.CharField(
                required=False, label=name, widget=expression_widget(), initial=current.pop(name, ""),
                help_text=f"{kind}{' · required' if required else ''}")
            names.append(name)
        for name, source in current.items():  # mapped, but not an input of the flow: shown so it can be cleared
            self.fields[f"{prefix}__{name}"] = forms.CharField(
                required=False, label=name, widget=expression_widget(), initial=source,
                help_text=f"not an input of this {what}: clear it")
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
        fields = ["name", "label", "next", "exit_type", "exit_condition", "exit_flow", "on_error_goto"]
        widgets = {"exit_condition": expression_widget()}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        orch = self.instance.orchestration
        self.fields["next"] = forms.ChoiceField(required=False, label="Then go to",
                                                choices=goto_choices(orch, self.instance.name, "the next element"))
        self.fields["on_error_goto"] = forms.ChoiceField(
            required=False, label="When a step fails", choices=goto_choices(orch, self.instance.name,
                                                                            "stop the run in error"),
            help_text="A step that fails after its retries ends the stage and the run goes on there, "
                      "with steps.X.error readable (on_error: {goto: ...}).")
        self.evaluation_flows = active_flows(FlowType.EVALUATION)
        chosen = _chosen(self, "exit_flow")
        self.fields["exit_flow"] = forms.ChoiceField(required=False, label="Evaluation flow",
                                                     choices=flow_choices(self.evaluation_flows, self.instance.exit_flow))
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


OUTCOME_TESTS = [("condition", "A condition"), ("evaluation_flow", "An evaluation flow")]


class OutcomeForm(MappingMixin, forms.ModelForm):
    """One outcome: a condition, or an evaluation flow with its inputs mapped (``condition_test`` picks)."""

    condition_test = forms.ChoiceField(required=False, choices=OUTCOME_TESTS, label="Taken when",
                                       initial="condition", widget=forms.RadioSelect)

    class Meta:
        model = DecisionOutcome
        fields = ["name", "condition", "condition_flow", "goto"]
        widgets = {"condition": expression_widget()}

    def __init__(self, *args, decision=None, evaluation_flows=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["goto"] = forms.ChoiceField(label="Go to", choices=goto_choices(decision.orchestration, decision.name))
        outcome = self.instance
        if not self.is_bound:
            self.initial["condition_test"] = "evaluation_flow" if outcome.condition_flow else "condition"
        self.fields["condition_test"].widget.attrs["data-baton-kind"] = json.dumps(
            {"condition": ["condition"], "evaluation_flow": ["condition_flow"]})
        self.evaluation_flows = evaluation_flows if evaluation_flows is not None else active_flows(FlowType.EVALUATION)
        chosen = _chosen(self, "condition_flow")
        self.fields["condition_flow"] = forms.ChoiceField(
            required=False, label="Evaluation flow", choices=flow_choices(self.evaluation_flows, outcome.condition_flow),
            help_text="Active evaluation flows: the outcome is taken when the flow answers true.")
        self.add_mapping("condition_inputs", self.evaluation_flows.get(chosen),
                         outcome.condition_flow_inputs if chosen == outcome.condition_flow else {})

    def clean_name(self):
        return _check_name(self.cleaned_data["name"].strip(), IDENTIFIER_NAME, "outcome")

    def clean(self):
        cleaned = super().clean()
        test = cleaned.get("condition_test") or ("evaluation_flow" if cleaned.get("condition_flow") else "condition")
        if test == "evaluation_flow":
            if not cleaned.get("condition_flow"):
                self.add_error("condition_flow", "pick the evaluation flow that decides this outcome")
            cleaned["condition"] = ""
        else:
            cleaned["condition_flow"] = ""
        return cleaned

    def save(self, commit=True):
        outcome = super().save(commit=False)
        outcome.condition_flow_inputs = self.collected("condition_inputs") if outcome.condition_flow else {}
        if commit:
            outcome.save()
        return outcome


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
                          form_kwargs={"decision": decision, "evaluation_flows": active_flows(FlowType.EVALUATION)})


# ------------------------------------------------------------------ steps

# Every step type but a wait may run once per element of a list (DESIGN §10).
MULTI_INSTANCE_FIELDS = ["for_each", "completion_rule", "completion_at_least", "completion_percent",
                         "completion_condition", "sequential", "remaining"]
COMPLETION_RULES = [("all", "All instances complete"), ("any", "Any one completes"),
                    ("at_least", "At least N complete"), ("percent", "A percentage completes"),
                    ("condition", "A condition over the instances holds")]
WAIT_KINDS = [("for", "For a time (for)"), ("until", "Until a moment (until)"), ("event", "For an event (event)")]
ASSIGNEE_LIST = "list"  # the panel's word for ``assignees``: one work item per element, in the assignee choice
# Fields of the panel that are no column of Step: the panel turns them into completion, assignee, wait_*.
PANEL_ONLY_FIELDS = {"completion_rule", "completion_at_least", "completion_percent", "completion_condition",
                     "same_as_step", "wait_kind"}


def active_orchestrations():
    """{api_name: Orchestration} of the active versions, for a sub-orchestration step."""
    rows = Orchestration.objects.filter(status=DefinitionStatus.ACTIVE).order_by("api_name")
    return {orch.api_name: orch for orch in rows}


def declared_inputs(orch):
    """(name, type, required) of an orchestration's declared inputs."""
    return [(v["name"], v.get("type") or "text", bool(v.get("required")) and v.get("default") is None)
            for v in (orch.inputs if orch is not None else None) or [] if isinstance(v, dict) and v.get("name")]


class StepForm(MappingMixin, KindDependentForm):
    kind_fields = {
        "type": {StepType.INTERACTIVE: ["flow", "assignee_type", "assignee", "same_as_step", "assignee_exclude",
                                        "assignees", "record", "due_in", "escalate_to", "priority",
                                        *MULTI_INSTANCE_FIELDS],
                 StepType.BACKGROUND: ["flow", "retries", "timeout", *MULTI_INSTANCE_FIELDS],
                 StepType.ORCHESTRATION: ["child_orchestration", *MULTI_INSTANCE_FIELDS],
                 StepType.WAIT: ["wait_kind", "wait_for", "wait_until", "wait_event", "wait_timeout", "on_timeout"]},
        "assignee_type": {AssigneeType.USER: ["assignee"], AssigneeType.GROUP: ["assignee"],
                          AssigneeType.QUEUE: ["assignee"], AssigneeType.EXPR: ["assignee"],
                          AssigneeType.SAME_AS: ["same_as_step"], ASSIGNEE_LIST: ["assignees"]},
        "completion_rule": {"all": [], "any": [], "at_least": ["completion_at_least"],
                            "percent": ["completion_percent"], "condition": ["completion_condition"]},
        "wait_kind": {"for": ["wait_for"], "until": ["wait_until"], "event": ["wait_event", "wait_timeout", "on_timeout"]},
        "entry_type": {StepEntry.STAGE_START: [], StepEntry.AFTER: ["entry_after"],
                       StepEntry.CONDITION: ["entry_condition"], StepEntry.EVALUATION_FLOW: ["entry_flow"]},
        "exit_type": {StepExit.STEP_COMPLETES: [], StepExit.CONDITION: ["exit_condition"],
                      StepExit.EVALUATION_FLOW: ["exit_flow"]},
    }

    completion_rule = forms.ChoiceField(required=False, choices=COMPLETION_RULES, label="The step completes when",
                                        initial="all")
    completion_at_least = forms.IntegerField(required=False, min_value=1, label="N (instances)")
    completion_percent = forms.FloatField(required=False, min_value=0.01, max_value=100, label="Percent")
    completion_condition = forms.CharField(required=False, label="Condition", widget=expression_widget(),
                                           help_text="Reads instances: [{index, item, status, outputs, completed_by}].")
    same_as_step = forms.ChoiceField(required=False, label="The person who completed",
                                     help_text="An interactive step before this one.")
    wait_kind = forms.ChoiceField(required=False, choices=WAIT_KINDS, label="It waits", initial="for",
                                  widget=forms.RadioSelect)

    class Meta:
        model = Step
        fields = ["name", "label", "type", "flow", "child_orchestration", "entry_type", "entry_after",
                  "entry_condition", "entry_flow", "exit_type", "exit_condition", "exit_flow", "assignee_type",
                  "assignee", "assignee_exclude", "assignees", "record", "due_in", "escalate_to", "priority",
                  "retries", "timeout", "for_each", "sequential", "remaining", "wait_for", "wait_until", "wait_event",
                  "wait_timeout", "on_timeout"]
        widgets = {"entry_condition": expression_widget(), "exit_condition": expression_widget(),
                   "record": expression_widget(), "entry_type": forms.RadioSelect, "exit_type": forms.RadioSelect,
                   "for_each": expression_widget(), "assignees": expression_widget(),
                   "assignee_exclude": expression_widget(), "wait_until": expression_widget()}
        labels = {"for_each": "For each element of", "assignees": "Assignees (a list)",
                  "assignee_exclude": "Never assign to", "sequential": "One instance after another",
                  "wait_for": "How long", "wait_until": "Until", "wait_event": "Event name",
                  "wait_timeout": "Give up after", "child_orchestration": "Orchestration"}
        help_texts = {
            "for_each": "An expression giving a list: one instance per element, with item and index in scope "
                        "for its inputs and assignee. Empty: the step runs once.",
            "assignees": 'An expression giving a list of "user:NAME", "group:NAME" or "queue:NAME": '
                         "one work item each, completed as the rule below says.",
            "assignee_exclude": "An expression giving usernames who may never do this step (separation of duties), "
                                "e.g. [steps.request.completed_by].",
            "wait_for": "A duration: 30s, 10m, 2h or 3d.",
            "wait_until": "An expression giving the date and time to wait until.",
            "wait_event": "Delivered by send_event(run, NAME) or POST /api/runs/{id}/events/NAME/; "
                          "its data become the step's outputs.",
            "wait_timeout": "Optional: how long to wait for the event.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        step = self.instance
        step_type = _chosen(self, "type") or StepType.BACKGROUND
        self.step_type = step_type
        orch = step.stage.orchestration
        # What the step runs: a flow of the type it needs, or (sub-orchestration) an active orchestration.
        self.step_flows = active_flows(FLOW_TYPE_FOR_STEP.get(step_type, FlowType.AUTOLAUNCHED))
        chosen = _chosen(self, "flow")
        self.fields["flow"] = forms.ChoiceField(required=False, label="Flow", choices=flow_choices(self.step_flows, step.flow),
                                                help_text="Active flows of the type this step runs.")
        self.children = active_orchestrations() if step_type == StepType.ORCHESTRATION else {}
        child = _chosen(self, "child_orchestration")
        self.fields["child_orchestration"] = forms.ChoiceField(
            required=False, label="Orchestration", choices=self.child_choices(step.child_orchestration),
            help_text="Active orchestrations: the step starts a child run of it, waits for it and completes "
                      "with its outputs.")
        if step_type == StepType.ORCHESTRATION:
            self.add_mapping("inputs", None, step.inputs if child == step.child_orchestration else {},
                             declared=declared_inputs(self.children.get(child)), what="orchestration")
        elif step_type != StepType.WAIT:
            self.add_mapping("inputs", self.step_flows.get(chosen), step.inputs if chosen == step.flow else {})
        else:
            self.mappings = {"inputs": []}
        others = [s.name for s in step.stage.steps.order_by("position", "id") if s.pk != step.pk]
        self.fields["entry_after"] = forms.MultipleChoiceField(
            required=False, label="After these steps", widget=forms.CheckboxSelectMultiple,
            choices=[(n, n) for n in others + [n for n in (step.entry_after or []) if n not in others]])
        self.evaluation_flows = active_flows(FlowType.EVALUATION)
        for which in ("entry", "exit"):
            chosen_eval = _chosen(self, f"{which}_flow")
            self.fields[f"{which}_flow"] = forms.ChoiceField(
                required=False, label="Evaluation flow", choices=flow_choices(self.evaluation_flows, getattr(step, f"{which}_flow")))
            self.add_mapping(f"{which}_inputs", self.evaluation_flows.get(chosen_eval),
                             getattr(step, f"{which}_flow_inputs"))
        self.fields["assignee_type"] = forms.ChoiceField(
            required=False, label="Assignee type",
            choices=[("", "— none —")] + list(AssigneeType.choices) + [(ASSIGNEE_LIST, "A list: one work item each")])
        self.fields["assignee_type"].widget.attrs["data-baton-kind"] = json.dumps(self.kind_fields["assignee_type"])
        self.fields["assignee"].widget.attrs.update({"list": f"bb-assignees-{step.pk}", "autocomplete": "off"})
        self.fields["assignee"].help_text = "Type to search users, groups or queues; for an expression, CEL giving \"user:NAME\"."
        interactive = [s.name for s in Step.objects.filter(stage__orchestration=orch, type=StepType.INTERACTIVE)
                       .exclude(pk=step.pk).order_by("stage__position", "position", "id")]
        if step.assignee_type == AssigneeType.SAME_AS and step.assignee and step.assignee not in interactive:
            interactive.append(step.assignee)
        self.fields["same_as_step"].choices = [("", "— pick a step —")] + [(n, n) for n in interactive]
        self.fields["priority"].required = False
        self.fields["priority"].validators.append(MaxValueValidator(100))
        self.fields["remaining"] = forms.BooleanField(
            required=False, label="Let the other instances go on",
            help_text="When the rule is met the step completes; without this the instances left are discontinued.")
        self.fields["on_timeout"] = forms.ChoiceField(
            required=False, label="When it gives up", choices=[("complete", "complete the step"),
                                                               ("error", "put the step in error")])
        for name in ("wait_for", "wait_timeout", "due_in", "timeout"):
            self.fields[name].widget.attrs.setdefault("placeholder", "e.g. 2h")
        if not self.is_bound:
            self.initial.update(self.panel_initial(step))

    @staticmethod
    def panel_initial(step):
        """The panel's own fields as ``step`` has them."""
        initial = {"completion_rule": "all", "remaining": step.remaining == "continue",
                   "on_timeout": step.on_timeout or "complete"}
        completion = step.completion if step.completion not in (None, "") else "all"
        if isinstance(completion, str):
            initial["completion_rule"] = completion
        elif isinstance(completion, dict) and len(completion) == 1:
            (rule, value), = completion.items()
            initial["completion_rule"] = rule
            initial[f"completion_{rule}"] = value
        if step.assignees:
            initial["assignee_type"] = ASSIGNEE_LIST
        elif step.assignee_type == AssigneeType.SAME_AS:
            initial["same_as_step"] = step.assignee
        initial["wait_kind"] = ("until" if step.wait_until else "event" if step.wait_event else "for")
        return initial

    def child_choices(self, current):
        choices = [("", "— pick an orchestration —")]
        choices += [(name, f"{name} v{child.version}" + (f" — {child.label}" if child.label else ""))
                    for name, child in self.children.items()]
        if current and current not in self.children:
            choices.append((current, f"{current} (no active version)"))
        return choices

    @classmethod
    def fields_not_applying(cls, values):
        # Only Step columns are reset to their model default; the panel's own fields are dropped in clean().
        return super().fields_not_applying(values) - PANEL_ONLY_FIELDS

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

    def clean_wait_for(self):
        return _duration(self.cleaned_data.get("wait_for", "").strip(), "wait for")

    def clean_wait_timeout(self):
        return _duration(self.cleaned_data.get("wait_timeout", "").strip(), "the event's timeout")

    def clean_wait_event(self):
        name = self.cleaned_data.get("wait_event", "").strip()
        if name and (len(name) > 100 or any(c.isspace() or c == "/" for c in name)):
            raise forms.ValidationError(f"{name!r} is not an event name: no spaces or '/', at most 100 characters")
        return name

    def clean_priority(self):
        value = self.cleaned_data.get("priority")
        return 50 if value is None else value

    def clean_remaining(self):
        return "continue" if self.cleaned_data.get("remaining") else ""

    def clean(self):
        cleaned = super().clean()
        for name in super(StepForm, type(self)).fields_not_applying(cleaned) & PANEL_ONLY_FIELDS:
            self._errors.pop(name, None)
            cleaned[name] = None
        kind = cleaned.get("assignee_type")
        if cleaned.get("type") == StepType.WAIT and not cleaned.get("wait_kind"):
            cleaned["wait_kind"] = "for"
        if kind == ASSIGNEE_LIST:
            cleaned["assignee_type"] = ""
            if not (cleaned.get("assignees") or "").strip():
                self.add_error("assignees", "give the expression of the list")
        elif kind == AssigneeType.SAME_AS:
            cleaned["assignee"] = cleaned.get("same_as_step") or ""
            if not cleaned["assignee"]:
                self.add_error("same_as_step", "pick the step whose person does this one too")
        if cleaned.get("type") == StepType.INTERACTIVE and cleaned.get("assignee") and not cleaned.get("assignee_type"):
            self.add_error("assignee_type", "say whether the assignee is a user, a group, a queue or an expression")
        self.completion = self.completion_of(cleaned)
        if not (cleaned.get("for_each") or "").strip() and not (cleaned.get("assignees") or "").strip():
            # Runs once: the instance rules do not apply (the validator would say so of every one).
            self.completion = "all"
            cleaned["sequential"], cleaned["remaining"] = False, ""
        if cleaned.get("type") == StepType.WAIT:
            # Only the chosen kind of wait is kept; a timeout only for an event.
            cleaned["on_timeout"] = cleaned.get("on_timeout") if cleaned.get("wait_timeout") else ""
        return cleaned

    def completion_of(self, cleaned):
        rule = cleaned.get("completion_rule") or "all"
        if rule in ("all", "any"):
            return rule
        value = cleaned.get(f"completion_{rule}")
        if rule == "condition":
            value = (value or "").strip()
        if value in (None, ""):
            self.add_error(f"completion_{rule}", "give it a value")
            return "all"
        if rule == "percent" and float(value).is_integer():
            value = int(value)
        return {rule: value}

    def save(self, commit=True):
        step = super().save(commit=False)
        step.inputs = self.collected("inputs") if step.type != StepType.WAIT else {}
        step.completion = self.completion
        for which in ("entry", "exit"):
            kind = getattr(step, f"{which}_type")
            setattr(step, f"{which}_flow_inputs",
                    self.collected(f"{which}_inputs") if kind == StepEntry.EVALUATION_FLOW else {})
        if step.type != StepType.INTERACTIVE:
            step.assignee_type = step.assignee = ""
        if step.type == StepType.WAIT:
            for attr, kind in (("wait_for", "for"), ("wait_until", "until"), ("wait_event", "event")):
                if self.cleaned_data.get("wait_kind") != kind:
                    setattr(step, attr, "")
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
