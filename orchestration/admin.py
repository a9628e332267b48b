"""Admin for orchestration definitions (nested stages → steps and outcomes) and runs.

Definitions share the lifecycle tools of ``flows.admin.DefinitionAdmin``:
Validate, Activate, New version, import and export, and read-only frozen
versions. Runs are shown read-only, with two operator actions (cancel the
selected runs, retry their failed steps); skipping a step with outputs is a
form of the monitor, linked from a run's page here.
"""
import nested_admin
from django.contrib import admin, messages

from flows.admin import DefinitionAdmin, FrozenAwareInlineMixin

from . import engine
from .admin_tools import DiagramAdminMixin
from .models import DecisionOutcome, Orchestration, OrchestrationRun, RunEvent, Stage, StageRun, Step, StepRun


class StepInline(FrozenAwareInlineMixin, nested_admin.NestedStackedInline):
    model = Step
    extra = 0
    sortable_field_name = "position"
    fieldsets = (
        (None, {"fields": (("name", "label", "position"), ("type", "flow"), "inputs")}),
        ("Entry and exit", {"fields": (
            ("entry_type", "entry_after"), "entry_condition", ("entry_flow", "entry_flow_inputs"),
            "exit_type", "exit_condition", ("exit_flow", "exit_flow_inputs"),
        ), "classes": ("collapse",)}),
        ("Interactive steps", {"fields": (("assignee_type", "assignee"), "record", ("due_in", "escalate_to"))}),
        ("Background steps", {"fields": (("retries", "timeout"),)}),
    )


class DecisionOutcomeInline(FrozenAwareInlineMixin, nested_admin.NestedTabularInline):
    model = DecisionOutcome
    extra = 0
    sortable_field_name = "position"
    fields = ("position", "name", "condition", "condition_flow", "condition_flow_inputs", "goto")
    verbose_name = "decision outcome"


class StageInline(FrozenAwareInlineMixin, nested_admin.NestedStackedInline):
    model = Stage
    extra = 0
    sortable_field_name = "position"
    fieldsets = (
        (None, {"fields": (("kind", "name", "label", "position"), "next")}),
        ("Stage exit", {"fields": ("exit_type", "exit_condition", ("exit_flow", "exit_flow_inputs"))}),
        ("Decision", {"fields": ("default_goto",), "description": "For decisions: where to go when no outcome holds."}),
    )
    inlines = [StepInline, DecisionOutcomeInline]


@admin.register(Orchestration)
class OrchestrationAdmin(DiagramAdminMixin, DefinitionAdmin):
    list_display = (
        "api_name", "version", "status_text", "label", "start_type", "start_model", "created_at", "activated_at",
    )
    list_filter = ("status", "start_type", "api_name")
    inlines = [StageInline]
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
    actions = ["cancel_runs", "retry_failed_steps"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.concrete_fields] + ["monitor_link"]

    @admin.display(description="Monitor")
    def monitor_link(self, obj):
        from django.urls import reverse
        from django.utils.html import format_html

        return format_html('<a href="{}">Open run {} in the monitor (retry, skip with outputs, cancel)</a>',
                           reverse("monitor:run", args=[obj.pk]), obj.pk)

    def has_operate_permission(self, request):
        return request.user.has_perm("orchestration.operate_runs")

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
