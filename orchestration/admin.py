"""Admin for orchestration definitions (nested stages → steps and outcomes) and runs.

Definitions share the lifecycle tools of ``flows.admin.DefinitionAdmin``:
Validate, Activate, New version, import and export, and read-only frozen
versions. Runs are shown read-only; operating on them (cancel, retry, skip)
belongs to the monitor and the REST API.
"""
import nested_admin
from django.contrib import admin

from flows.admin import DefinitionAdmin, FrozenAwareInlineMixin

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

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.concrete_fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser and obj is not None and not obj.is_open
