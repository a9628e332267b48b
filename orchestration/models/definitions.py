"""Orchestration definitions: versioned, with the path as rows.

An ``Orchestration`` version holds ``Stage`` rows in path order. A stage row
is either a real stage (``kind=stage``, with ``Step`` rows) or a decision
(``kind=decision``, with ``DecisionOutcome`` rows and a default goto).
Conditions are stored as an expression (``*_condition``) or an evaluation
flow's api_name (``*_flow``) with that flow's input mapping (``*_flow_inputs``).
"""
from django.db import models

from flows.versioning import DefinitionPart, VersionedDefinition

END = "end"


class StartType(models.TextChoices):
    RECORD_TRIGGERED = "record_triggered", "Record-triggered"
    AUTOLAUNCHED = "autolaunched", "Autolaunched"


class StartWhen(models.TextChoices):
    CREATED = "created", "Created"
    UPDATED = "updated", "Updated"
    CREATED_OR_UPDATED = "created_or_updated", "Created or updated"


class Orchestration(VersionedDefinition):
    start_type = models.CharField(max_length=20, choices=StartType.choices, default=StartType.AUTOLAUNCHED)
    start_model = models.CharField(max_length=100, blank=True, help_text='"app_label.model"; record-triggered only.')
    start_when = models.CharField(max_length=20, choices=StartWhen.choices, blank=True)
    start_condition = models.TextField(blank=True)
    only_when_changed_to_meet = models.BooleanField(default=False)
    inputs = models.JSONField(default=list, blank=True, help_text="Input variables: [{name, type, required, default}].")
    max_stage_visits = models.PositiveIntegerField(default=50)
    outputs = models.JSONField(
        default=dict, blank=True,
        help_text="{name: expression} evaluated when a run completes (a sub-orchestration step's outputs).",
    )

    class Meta(VersionedDefinition.Meta):
        constraints = VersionedDefinition.versioned_constraints("orchestration")
        permissions = [
            ("launch_orchestration", "Can launch orchestrations"),
            ("view_runs", "Can view orchestration runs"),
            ("operate_runs", "Can cancel runs and retry or skip steps"),
        ]


class StageKind(models.TextChoices):
    STAGE = "stage", "Stage"
    DECISION = "decision", "Decision"


class StageExit(models.TextChoices):
    ALL_STEPS_COMPLETE = "all_steps_complete", "All steps complete"
    CONDITION = "condition", "Condition"
    EVALUATION_FLOW = "evaluation_flow", "Evaluation flow"


class Stage(DefinitionPart):
    orchestration = models.ForeignKey(Orchestration, on_delete=models.CASCADE, related_name="stages")
    position = models.PositiveIntegerField(default=0)
    kind = models.CharField(max_length=10, choices=StageKind.choices, default=StageKind.STAGE)
    name = models.CharField(max_length=100)
    label = models.CharField(max_length=200, blank=True)
    next = models.CharField(max_length=100, blank=True, help_text="Stage: where to go after it (default: the next element).")
    exit_type = models.CharField(max_length=20, choices=StageExit.choices, default=StageExit.ALL_STEPS_COMPLETE)
    exit_condition = models.TextField(blank=True)
    exit_flow = models.CharField(max_length=100, blank=True)
    exit_flow_inputs = models.JSONField(default=dict, blank=True)
    default_goto = models.CharField(max_length=100, blank=True, help_text="Decision: where to go when no outcome holds.")
    on_error_goto = models.CharField(
        max_length=100, blank=True,
        help_text="Stage: where the run goes when a step of it fails after its retries (default: the run stops in error).",
    )

    class Meta:
        ordering = ["orchestration", "position", "id"]
        constraints = [models.UniqueConstraint(fields=["orchestration", "name"], name="stage_unique_name")]

    def owning_definition(self):
        return self.orchestration

    def __str__(self):
        return self.label or self.name


class DecisionOutcome(DefinitionPart):
    stage = models.ForeignKey(Stage, on_delete=models.CASCADE, related_name="outcomes")
    position = models.PositiveIntegerField(default=0)
    name = models.CharField(max_length=100)
    condition = models.TextField(blank=True)
    condition_flow = models.CharField(max_length=100, blank=True)
    condition_flow_inputs = models.JSONField(default=dict, blank=True)
    goto = models.CharField(max_length=100)

    class Meta:
        ordering = ["stage", "position", "id"]

    def owning_definition(self):
        return self.stage.orchestration

    def __str__(self):
        return f"{self.name} → {self.goto}"


class StepType(models.TextChoices):
    INTERACTIVE = "interactive", "Interactive"
    BACKGROUND = "background", "Background"
    ORCHESTRATION = "orchestration", "Sub-orchestration"
    WAIT = "wait", "Wait"


class StepEntry(models.TextChoices):
    STAGE_START = "stage_start", "When the stage starts"
    AFTER = "after", "After other steps"
    CONDITION = "condition", "When a condition holds"
    EVALUATION_FLOW = "evaluation_flow", "When an evaluation flow says so"


class StepExit(models.TextChoices):
    STEP_COMPLETES = "step_completes", "When the step completes"
    CONDITION = "condition", "When a condition holds"
    EVALUATION_FLOW = "evaluation_flow", "When an evaluation flow says so"


class AssigneeType(models.TextChoices):
    USER = "user", "User"
    GROUP = "group", "Group"
    QUEUE = "queue", "Queue"
    EXPR = "expr", "Expression"
    SAME_AS = "same_as", "Same person as a step"


class Completion:
    """The ``completion`` rules of a multi-instance step (stored as JSON: a word or a one-key mapping)."""

    WORDS = ("all", "any")
    KEYS = ("at_least", "percent", "condition")


def completion_all():
    return "all"


class Step(DefinitionPart):
    stage = models.ForeignKey(Stage, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveIntegerField(default=0)
    name = models.CharField(max_length=100)
    label = models.CharField(max_length=200, blank=True)
    type = models.CharField(max_length=20, choices=StepType.choices, default=StepType.BACKGROUND)
    flow = models.CharField(max_length=100, blank=True, help_text="api_name of the flow the step runs.")
    inputs = models.JSONField(default=dict, blank=True, help_text="{flow_input: expression}")
    entry_type = models.CharField(max_length=20, choices=StepEntry.choices, default=StepEntry.STAGE_START)
    entry_after = models.JSONField(default=list, blank=True)
    entry_condition = models.TextField(blank=True)
    entry_flow = models.CharField(max_length=100, blank=True)
    entry_flow_inputs = models.JSONField(default=dict, blank=True)
    exit_type = models.CharField(max_length=20, choices=StepExit.choices, default=StepExit.STEP_COMPLETES)
    exit_condition = models.TextField(blank=True)
    exit_flow = models.CharField(max_length=100, blank=True)
    exit_flow_inputs = models.JSONField(default=dict, blank=True)
    # Interactive steps
    assignee_type = models.CharField(max_length=10, choices=AssigneeType.choices, blank=True)
    assignee = models.CharField(max_length=300, blank=True, help_text="Username, group or queue name, or an expression.")
    record = models.TextField(blank=True, help_text="Expression giving the record where the Work Guide shows (default: the run's record).")
    due_in = models.CharField(max_length=20, blank=True)
    escalate_to = models.CharField(max_length=300, blank=True, help_text='"user:NAME", "group:NAME" or "queue:NAME".')
    priority = models.PositiveSmallIntegerField(
        default=50, help_text="0 to 100, higher first: My Work can sort its items by it (work items copy it).")
    assignee_exclude = models.TextField(blank=True, help_text="Expression giving usernames who may never do this step.")
    # Background steps
    retries = models.PositiveIntegerField(default=3)
    timeout = models.CharField(max_length=20, default="10m")
    # Multi-instance steps (any type but wait)
    for_each = models.TextField(blank=True, help_text="Expression giving a list: one instance per element.")
    assignees = models.TextField(blank=True, help_text="Interactive: expression giving a list of assignees, one item each.")
    completion = models.JSONField(default=completion_all, blank=True, help_text='"all", "any", {at_least: N}, {percent: P} or {condition: expression}.')
    sequential = models.BooleanField(default=False)
    remaining = models.CharField(max_length=10, blank=True, help_text='"continue": instances left when completion is met go on.')
    # Sub-orchestration steps
    child_orchestration = models.CharField(max_length=100, blank=True, help_text="api_name of the orchestration the step runs.")
    # Wait steps
    wait_for = models.CharField(max_length=20, blank=True, help_text="A duration to wait.")
    wait_until = models.TextField(blank=True, help_text="Expression giving the datetime to wait until.")
    wait_event = models.CharField(max_length=100, blank=True, help_text="The name of the event to wait for.")
    wait_timeout = models.CharField(max_length=20, blank=True, help_text="How long to wait for the event.")
    on_timeout = models.CharField(max_length=10, blank=True, help_text='"complete" (default) or "error".')

    class Meta:
        ordering = ["stage", "position", "id"]
        constraints = [models.UniqueConstraint(fields=["stage", "name"], name="step_unique_name")]

    def owning_definition(self):
        return self.stage.orchestration

    def __str__(self):
        return self.label or self.name
