"""Admin for orchestration definitions (nested stages → steps and outcomes) and runs.

Definitions share the lifecycle tools of ``flows.admin.DefinitionAdmin``:
Validate, Activate, New version, import and export, and read-only frozen
versions. Runs are shown read-only, with two operator actions (cancel the
selected runs, retry their failed steps); skipping a step with outputs is a
form of the monitor, linked from a run's page here.
"""
import json

import nested_admin
from django import forms
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from flows.admin import (
    DefinitionAdmin, FlowChoiceField, FrozenAwareInlineMixin, KeepUnknownFlowsMixin, KindDependentForm, flow_field,
    rows_only_when, small_textarea, with_article,
)
from flows.models import FlowType

from . import engine
from . import permissions
from .admin_tools import DiagramAdminMixin
from .builder.admin import BuilderAdminMixin
from .models import (
    DecisionOutcome, Orchestration, OrchestrationRun, RunEvent, Stage, StageExit, StageKind, StageRun, StartType, Step,
    StepEntry, StepExit, StepRun, StepType,
)
from .steps import FLOW_TYPE_FOR_STEP

EXPRESSION = {"rows": 1, "cols": 60}
MAPPING = {"rows": 2, "cols": 60}
FLOWS_FOR_STEPS = (FlowType.SCREEN, FlowType.AUTOLAUNCHED)
FLOW_FIELDS = {"flow": FLOWS_FOR_STEPS, "entry_flow": (FlowType.EVALUATION,), "exit_flow": (FlowType.EVALUATION,),
               "condition_flow": (FlowType.EVALUATION,)}


class FlowPickerInlineMixin:
    """Flow names (a step's flow, evaluation flows) are picked from the stored flows of the right type."""

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name in FLOW_FIELDS and db_field.model in (Step, Stage, DecisionOutcome):
            return flow_field(db_field, request, FLOW_FIELDS[db_field.name])
        return super().formfield_for_dbfield(db_field, request, **kwargs)


class StepForm(KeepUnknownFlowsMixin, KindDependentForm):
    kind_fields = {
        "type": {StepType.INTERACTIVE: ["assignee_type", "assignee", "record", "due_in", "escalate_to"],
                 StepType.BACKGROUND: ["retries", "timeout"]},
        "entry_type": {StepEntry.STAGE_START: [], StepEntry.AFTER: ["entry_after"],
                       StepEntry.CONDITION: ["entry_condition"],
                       StepEntry.EVALUATION_FLOW: ["entry_flow", "entry_flow_inputs"]},
        "exit_type": {StepExit.STEP_COMPLETES: [], StepExit.CONDITION: ["exit_condition"],
                      StepExit.EVALUATION_FLOW: ["exit_flow", "exit_flow_inputs"]},
    }

    class Meta:
        widgets = {
            "inputs": small_textarea(**MAPPING), "entry_after": small_textarea(1, 40),
            "entry_condition": small_textarea(**EXPRESSION), "entry_flow_inputs": small_textarea(**MAPPING),
            "exit_condition": small_textarea(**EXPRESSION), "exit_flow_inputs": small_textarea(**MAPPING),
            "record": small_textarea(**EXPRESSION), "position": forms.NumberInput(attrs={"class": "baton-position"}),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "flow" in self.fields:
            # The browser offers only the flows of the step's type (kind_fields.js).
            self.fields["flow"].widget.attrs["data-baton-flow-type-by"] = json.dumps(
                {"selector": "type", "types": {k: str(v) for k, v in FLOW_TYPE_FOR_STEP.items()}})

    def clean(self):
        cleaned = super().clean()
        flow, step_type = cleaned.get("flow"), cleaned.get("type")
        field = self.fields.get("flow")
        if flow and step_type and isinstance(field, FlowChoiceField):
            expected, actual = FLOW_TYPE_FOR_STEP.get(step_type), field.flow_types.get(flow)
            if expected and actual and actual != expected:
                actual_text, expected_text = (FlowType(t).label.lower() for t in (actual, expected))
                self.add_error("flow", f"{flow} is {with_article(actual_text)}; "
                                       f"{with_article(step_type)} step runs {with_article(expected_text)}.")
        return cleaned


class StepInline(FlowPickerInlineMixin, FrozenAwareInlineMixin, nested_admin.NestedStackedInline):
    model = Step
    form = StepForm
    formset = rows_only_when("kind", StageKind.STAGE)
    extra = 0
    sortable_field_name = "position"
    fieldsets = (
        (None, {"fields": (("name", "label", "position"), ("type", "flow"), "inputs")}),
        ("Entry and exit", {"fields": (
            ("entry_type", "exit_type"), "entry_after", "entry_condition", ("entry_flow", "entry_flow_inputs"),
            "exit_condition", ("exit_flow", "exit_flow_inputs"),
        )}),
        ("Interactive step", {"fields": (("assignee_type", "assignee"), ("due_in", "escalate_to"), "record")}),
        ("Background step", {"fields": (("retries", "timeout"),)}),
    )


class DecisionOutcomeForm(KeepUnknownFlowsMixin, forms.ModelForm):
    class Meta:
        widgets = {"condition": small_textarea(1, 30), "condition_flow_inputs": small_textarea(1, 16),
                   "name": forms.TextInput(attrs={"size": 12}), "goto": forms.TextInput(attrs={"size": 12}),
                   "position": forms.NumberInput(attrs={"class": "baton-position"})}


class DecisionOutcomeInline(FlowPickerInlineMixin, FrozenAwareInlineMixin, nested_admin.NestedTabularInline):
    model = DecisionOutcome
    form = DecisionOutcomeForm
    formset = rows_only_when("kind", StageKind.DECISION)
    extra = 0
    sortable_field_name = "position"
    fields = ("position", "name", "condition", "condition_flow", "condition_flow_inputs", "goto")
    verbose_name = "decision outcome"


class StageForm(KeepUnknownFlowsMixin, KindDependentForm):
    kind_fields = {
        "kind": {StageKind.STAGE: ["next", "exit_type", "exit_condition", "exit_flow", "exit_flow_inputs", "@steps"],
                 StageKind.DECISION: ["default_goto", "@outcomes"]},
        "exit_type": {StageExit.ALL_STEPS_COMPLETE: [], StageExit.CONDITION: ["exit_condition"],
                      StageExit.EVALUATION_FLOW: ["exit_flow", "exit_flow_inputs"]},
    }

    class Meta:
        widgets = {"exit_condition": small_textarea(**EXPRESSION), "exit_flow_inputs": small_textarea(**MAPPING),
                   "position": forms.NumberInput(attrs={"class": "baton-position"})}


class StageInline(FlowPickerInlineMixin, FrozenAwareInlineMixin, nested_admin.NestedStackedInline):
    model = Stage
    form = StageForm
    extra = 0
    sortable_field_name = "position"
    fieldsets = (
        (None, {"fields": (("kind", "name", "label", "position"), ("next", "default_goto"))}),
        ("Stage exit", {"fields": ("exit_type", "exit_condition", ("exit_flow", "exit_flow_inputs"))}),
    )
    inlines = [StepInline, DecisionOutcomeInline]


class OrchestrationForm(KindDependentForm):
    kind_fields = {"start_type": {
        StartType.RECORD_TRIGGERED: ["start_model", "start_when", "start_condition", "only_when_changed_to_meet"],
        StartType.AUTOLAUNCHED: [],
    }}

    class Meta:
        widgets = {"description": forms.Textarea(attrs={"rows": 2, "cols": 80}),
                   "start_condition": small_textarea(2, 80), "inputs": small_textarea(3, 80)}


@admin.register(Orchestration)
class OrchestrationAdmin(BuilderAdminMixin, DiagramAdminMixin, DefinitionAdmin):
    form = OrchestrationForm
    # Few, narrow columns with the Builder link early: at 1280 px beside the filters the list showed
    # no further than "start model", and the Builder column docs/builder.md points to was off-screen.
    list_display = ("api_name", "version", "status_text", "builder_link", "label", "start_text")
    list_filter = ("status", "start_type", "api_name")
    inlines = [StageInline]

    @admin.display(description="Start", ordering="start_type")
    def start_text(self, obj):
        """Autolaunched, or Record-triggered with its model under it."""
        if obj.start_type != StartType.RECORD_TRIGGERED:
            return obj.get_start_type_display()
        return format_html("{}<br><small>{}</small>", obj.get_start_type_display(), obj.start_model or "(no model)")
    fieldsets = (
        (None, {"fields": (("api_name", "version", "status"), "label", "description")}),
        ("Start", {"fields": (
            "start_type", ("start_model", "start_when"), "start_condition", "only_when_changed_to_meet",
        )}),
        ("Inputs and limits", {"fields": ("inputs", "max_stage_visits")}),
        ("History", {"fields": (("created_at", "activated_at"),), "classes": ("collapse",)}),
    )


# --- Runs (read-only) ------------------------------------------------------------

class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    skip = ("id", "run")

    def get_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.concrete_fields if f.name not in self.skip]

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class StageRunInline(ReadOnlyInline):
    model = StageRun


class StepRunInline(ReadOnlyInline):
    model = StepRun
    skip = ("id", "run", "traceback", "inputs")


class RunEventInline(ReadOnlyInline):
    model = RunEvent


@admin.register(OrchestrationRun)
class OrchestrationRunAdmin(admin.ModelAdmin):
    list_display = ("id", "orchestration", "status", "record_model", "record_pk", "current_stage", "started_at", "ended_at")
    list_filter = ("status", "orchestration__api_name")
    search_fields = ("id", "record_pk", "orchestration__api_name", "error")
    list_select_related = ("orchestration",)
    date_hierarchy = "started_at"
    inlines = [StageRunInline, StepRunInline, RunEventInline]
    actions = ["cancel_runs", "retry_failed_steps", "pause_runs", "resume_runs"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.concrete_fields] + ["monitor_link"]

    @admin.display(description="Monitor")
    def monitor_link(self, obj):
        return format_html('<a href="{}">Open run {} in the monitor (retry, skip with outputs, cancel)</a>',
                           reverse("monitor:run", args=[obj.pk]), obj.pk)

    def has_operate_permission(self, request):
        return permissions.can_operate_runs(request.user)

    @admin.action(description="Cancel the selected runs", permissions=["operate"])
    def cancel_runs(self, request, queryset):
        self._operate(request, queryset, lambda run: engine.cancel_run(run.pk, user=request.user, reason="admin"),
                      "canceled")

    @admin.action(description="Retry the failed steps of the selected runs", permissions=["operate"])
    def retry_failed_steps(self, request, queryset):
        def retry(run):
            failed = StepRun.objects.filter(run=run, status="error").values_list("step_name", flat=True)
            if not failed:
                raise engine.EngineError(f"run {run.pk} has no step in error")
            for name in dict.fromkeys(failed):
                engine.retry_step(run.pk, name, user=request.user)

        self._operate(request, queryset, retry, "retried")

    # Pause and resume (orchestration/waits.py): recorded with the admin user and the reason "admin".
    @admin.action(description="Pause the selected runs", permissions=["operate"])
    def pause_runs(self, request, queryset):
        from . import waits

        self._operate(request, queryset, lambda run: waits.pause_run(run.pk, user=request.user, reason="admin"),
                      "paused")

    @admin.action(description="Resume the selected paused runs", permissions=["operate"])
    def resume_runs(self, request, queryset):
        from . import waits

        self._operate(request, queryset, lambda run: waits.resume_run(run.pk, user=request.user, reason="admin"),
                      "resumed")

    def _operate(self, request, queryset, action, done_word):
        done = 0
        for run in queryset:
            try:
                action(run)
                done += 1
            except engine.EngineError as exc:
                self.message_user(request, str(exc), messages.WARNING)
        if done:
            self.message_user(request, f"{done} run(s) {done_word}.", messages.SUCCESS)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser and obj is not None and not obj.is_open
