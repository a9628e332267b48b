"""The API's serializers: orchestration versions (with their path), runs (stages, steps, events), bodies."""
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field, inline_serializer
from rest_framework import serializers

from ..children import parent_of
from ..waits import wait_state
from ..models import Orchestration, OrchestrationRun, RunEvent, StageRun, StepRun
from ..plan import Plan

# ---------------------------------------------------------------------------
# Orchestrations
# ---------------------------------------------------------------------------

class VariableSerializer(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.CharField(help_text="text, number, boolean, date, datetime, record or list")
    required = serializers.BooleanField()
    default = serializers.JSONField(allow_null=True)

    def to_representation(self, instance):
        return {
            "name": instance.get("name", ""), "type": instance.get("type") or "text",
            "required": bool(instance.get("required", False)), "default": instance.get("default"),
        }


class ConditionSerializer(serializers.Serializer):
    condition = serializers.CharField(required=False, help_text="A CEL expression.")
    evaluation_flow = serializers.CharField(required=False, help_text="Or the api_name of an evaluation flow...")
    inputs = serializers.DictField(child=serializers.CharField(), required=False, help_text="...with its inputs.")


def condition_dict(condition):
    if condition is None:
        return None
    if condition.expression:
        return {"condition": condition.expression}
    return {"evaluation_flow": condition.flow, "inputs": dict(condition.flow_inputs)}


class PathStepSerializer(serializers.Serializer):
    name = serializers.CharField()
    label = serializers.CharField()
    type = serializers.ChoiceField(choices=["interactive", "background", "orchestration", "wait"])
    flow = serializers.CharField(help_text="api_name of the flow the step runs (empty for orchestration and wait steps).")
    orchestration = serializers.CharField(source="child_orchestration",
                                          help_text="Sub-orchestration steps: the api_name of the orchestration it runs.")
    for_each = serializers.CharField(help_text="Multi-instance steps: the expression giving the list of elements.")
    assignees = serializers.CharField(help_text="Interactive steps: an expression giving a list of assignees.")
    completion = serializers.JSONField(help_text='"all", "any", {"at_least": N}, {"percent": P} or {"condition": ...}.')
    sequential = serializers.BooleanField()
    remaining = serializers.CharField(help_text='"continue" or empty.')
    wait = serializers.SerializerMethodField(help_text="Wait steps: for, until, event, timeout, on_timeout.")
    inputs = serializers.DictField(child=serializers.CharField(), help_text="flow input → expression")
    entry = serializers.SerializerMethodField(help_text='"stage_start", {"after": [...]}, or a condition.')
    exit = serializers.SerializerMethodField(help_text='"step_completes" or a condition.')
    assignee = serializers.SerializerMethodField(help_text='{"user"|"group"|"queue"|"expr": value}; '
                                                           "interactive steps only.")
    due_in = serializers.CharField()
    priority = serializers.IntegerField(help_text="0 to 100 (default 50); work items copy it, My Work sorts by it.")

    @extend_schema_field(OpenApiTypes.ANY)
    def get_entry(self, step):
        if step.entry == "after":
            return {"after": list(step.after)}
        if step.entry in ("condition", "evaluation_flow"):
            return condition_dict(step.entry_condition)
        return "stage_start"

    @extend_schema_field(OpenApiTypes.ANY)
    def get_exit(self, step):
        return condition_dict(step.exit_condition) if step.exit_condition else "step_completes"

    @extend_schema_field(serializers.DictField(child=serializers.CharField(), allow_null=True))
    def get_assignee(self, step):
        if not step.assignee_type and not step.assignee_exclude:
            return None
        out = {step.assignee_type: step.assignee} if step.assignee_type else {}
        if step.assignee_exclude:
            out["exclude"] = step.assignee_exclude
        return out

    @extend_schema_field(serializers.DictField(child=serializers.CharField(), allow_null=True))
    def get_wait(self, step):
        if not step.is_wait:
            return None
        given = {"for": step.wait_for, "until": step.wait_until, "event": step.wait_event,
                 "timeout": step.wait_timeout, "on_timeout": step.on_timeout}
        return {key: value for key, value in given.items() if value}


class OutcomeSerializer(serializers.Serializer):
    name = serializers.CharField()
    condition = serializers.SerializerMethodField()
    goto = serializers.CharField()

    @extend_schema_field(ConditionSerializer(allow_null=True))
    def get_condition(self, outcome):
        return condition_dict(outcome.condition)


class PathElementSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["stage", "decision"], source="kind")
    name = serializers.CharField()
    label = serializers.CharField()
    next = serializers.CharField(help_text="Stages: where the path goes after it (empty: the next element).")
    exit = serializers.SerializerMethodField(help_text='Stages: "all_steps_complete" or a condition.')
    steps = PathStepSerializer(many=True, help_text="Stages: the steps (they may run in parallel).")
    outcomes = OutcomeSerializer(many=True, help_text="Decisions: outcomes, first that holds wins.")
    default = serializers.CharField(source="default_goto", help_text="Decisions: where to go when no outcome holds.")
    on_error = serializers.CharField(source="on_error_goto",
                                     help_text="Stages: where the run goes when a step fails for good (empty: it stops).")

    @extend_schema_field(OpenApiTypes.ANY)
    def get_exit(self, element):
        if element.is_decision:
            return None
        return condition_dict(element.exit_condition) if element.exit_condition else "all_steps_complete"


class StartSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["record_triggered", "autolaunched"], source="start_type")
    model = serializers.CharField(source="start_model", help_text='"app_label.model" for record-triggered starts.')
    when = serializers.CharField(source="start_when")
    condition = serializers.CharField(source="start_condition")
    only_when_changed_to_meet = serializers.BooleanField()


class OrchestrationSerializer(serializers.ModelSerializer):
    """An orchestration version (summary, as listed)."""

    start = StartSerializer(source="*")
    inputs = serializers.SerializerMethodField(help_text="Variables a launch may give.")

    class Meta:
        model = Orchestration
        fields = ["id", "api_name", "version", "status", "label", "description", "start", "inputs",
                  "created_at", "activated_at"]
        read_only_fields = fields

    @extend_schema_field(VariableSerializer(many=True))
    def get_inputs(self, orch):
        return VariableSerializer([v for v in (orch.inputs or []) if isinstance(v, dict)], many=True).data


class OrchestrationDetailSerializer(OrchestrationSerializer):
    """An orchestration version with its path: stages (with steps) and decisions, in order."""

    path = serializers.SerializerMethodField()
    max_stage_visits = serializers.IntegerField(read_only=True)
    outputs = serializers.DictField(
        child=serializers.CharField(), read_only=True,
        help_text="{name: expression} evaluated when a run completes (a sub-orchestration step's outputs).")

    class Meta(OrchestrationSerializer.Meta):
        fields = OrchestrationSerializer.Meta.fields + ["max_stage_visits", "outputs", "path"]
        read_only_fields = fields

    @extend_schema_field(PathElementSerializer(many=True))
    def get_path(self, orch):
        return PathElementSerializer(Plan.load(orch).elements, many=True).data


class RecordRefSerializer(serializers.Serializer):
    model = serializers.CharField(max_length=100, help_text='"app_label.model", e.g. "demo.employee".')
    pk = serializers.CharField(max_length=64, help_text="The record's primary key (a number or text).")


class LaunchSerializer(serializers.Serializer):
    inputs = serializers.DictField(
        child=serializers.JSONField(), required=False, default=dict,
        help_text="The orchestration's inputs by name; checked against their declared types.",
    )
    record = RecordRefSerializer(
        required=False, allow_null=True, default=None,
        help_text="The record the run is about (required by record-triggered orchestrations).",
    )


# ---------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------

class RunRecordField(serializers.Serializer):
    model = serializers.CharField()
    pk = serializers.CharField()


class RunSerializer(serializers.ModelSerializer):
    """A run (summary, as listed)."""

    orchestration = serializers.CharField(source="orchestration.api_name", help_text="The orchestration's api_name.")
    version = serializers.IntegerField(source="orchestration.version", help_text="The version the run keeps.")
    label = serializers.CharField(source="orchestration.label")
    record = serializers.SerializerMethodField()
    started_by = serializers.SerializerMethodField()
    parent = serializers.SerializerMethodField(help_text="A sub-orchestration's run: its parent run and step.")

    class Meta:
        model = OrchestrationRun
        fields = ["id", "status", "orchestration", "version", "label", "record", "inputs", "started_by",
                  "started_at", "ended_at", "current_stage", "error", "parent", "outputs"]
        read_only_fields = fields

    @extend_schema_field(inline_serializer("ParentRef", {
        "run": serializers.IntegerField(), "step": serializers.CharField()}, allow_null=True))
    def get_parent(self, run):
        return parent_of(run)

    @extend_schema_field(RunRecordField(allow_null=True))
    def get_record(self, run):
        if not run.record_model:
            return None
        return {"model": run.record_model, "pk": run.record_pk}

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_started_by(self, run):
        return run.started_by.get_username() if run.started_by_id else None


class StepRunSerializer(serializers.ModelSerializer):
    name = serializers.CharField(source="step_name")
    flow = serializers.SerializerMethodField(help_text="The flow version the step ran.")
    work_item = serializers.SerializerMethodField(help_text="Interactive steps: the work item's id.")
    wait = serializers.SerializerMethodField(help_text="Wait steps: the event awaited, the timer's due time, and "
                                                       "while it waits for an event, its signed webhook URL.")
    child_runs = serializers.SerializerMethodField(
        help_text="Sub-orchestration steps: the ids of the runs it started, the latest last.")

    class Meta:
        model = StepRun
        fields = ["id", "name", "type", "status", "flow", "inputs", "outputs", "error", "attempts",
                  "work_item", "wait", "started_at", "ended_at", "child_runs", "instance_index", "item", "completed_by"]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.IntegerField()))
    def get_child_runs(self, step_run):
        if step_run.type != "orchestration":
            return []
        return sorted(run.pk for run in step_run.child_runs.all())

    @extend_schema_field(inline_serializer("FlowVersionRef", {
        "api_name": serializers.CharField(), "version": serializers.IntegerField()}, allow_null=True))
    def get_flow(self, step_run):
        if not step_run.flow_id:
            return None
        return {"api_name": step_run.flow.api_name, "version": step_run.flow.version}

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_work_item(self, step_run):
        item = getattr(step_run, "work_item", None)
        return item.pk if item is not None else None

    @extend_schema_field(inline_serializer("WaitState", {
        "event": serializers.CharField(allow_null=True), "due_at": serializers.DateTimeField(allow_null=True),
        "webhook_url": serializers.CharField(allow_null=True)}, allow_null=True))
    def get_wait(self, step_run):
        return wait_state(step_run)


class StageRunSerializer(serializers.ModelSerializer):
    name = serializers.CharField(source="stage_name")
    steps = StepRunSerializer(source="step_runs", many=True)

    class Meta:
        model = StageRun
        fields = ["id", "name", "visit", "status", "started_at", "ended_at", "steps"]
        read_only_fields = fields


class RunEventSerializer(serializers.ModelSerializer):
    actor = serializers.SerializerMethodField()
    stage = serializers.CharField(source="stage_name")
    step = serializers.CharField(source="step_name")

    class Meta:
        model = RunEvent
        fields = ["id", "at", "kind", "actor", "stage", "step", "data"]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_actor(self, event):
        return event.actor.get_username() if event.actor_id else None


class RunDetailSerializer(RunSerializer):
    """A run with its stage visits (each with its steps) and its event log."""

    stages = StageRunSerializer(source="stage_runs", many=True)
    events = RunEventSerializer(many=True)

    class Meta(RunSerializer.Meta):
        fields = RunSerializer.Meta.fields + ["stages", "events"]
        read_only_fields = fields


class CancelSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=1000, default="")


class SkipSerializer(serializers.Serializer):
    outputs = serializers.DictField(child=serializers.JSONField(), required=False, default=dict,
                                    help_text="The step's outputs, by name (checked against the flow's declared types).")
