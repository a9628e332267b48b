"""Flow definitions: screen, autolaunched and evaluation flows, versioned.

A flow version is a ``Flow`` row with its parts as rows of their own:
``FlowVariable`` (inputs and outputs), ``Screen`` and ``ScreenField`` for
screen flows, ``FlowElement`` for autolaunched and evaluation flows.
"""
from django.db import models

from .versioning import DefinitionPart, DefinitionStatus, VersionedDefinition

VARIABLE_TYPES = ["text", "number", "boolean", "date", "datetime", "record", "list"]
FIELD_TYPES = [
    "text", "textarea", "number", "boolean", "date", "datetime",
    "choice", "multichoice", "email", "display",
]
ELEMENT_TYPES = [
    "assign", "decision", "get_records", "create_record", "update_records",
    "send_email", "http_request", "action",
]


class FlowType(models.TextChoices):
    SCREEN = "screen", "Screen flow"
    AUTOLAUNCHED = "autolaunched", "Autolaunched flow"
    EVALUATION = "evaluation", "Evaluation flow"


class Flow(VersionedDefinition):
    type = models.CharField(max_length=20, choices=FlowType.choices)
    implementation = models.CharField(
        max_length=200, blank=True,
        help_text="Dotted path of a registered Python function that is the whole flow.",
    )

    class Meta(VersionedDefinition.Meta):
        constraints = VersionedDefinition.versioned_constraints("flow")

    def input_variables(self):
        return [v for v in self.variables.all() if v.direction == FlowVariable.INPUT]

    def output_variables(self):
        return [v for v in self.variables.all() if v.direction == FlowVariable.OUTPUT]


class FlowVariable(DefinitionPart):
    INPUT, OUTPUT = "input", "output"
    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="variables")
    direction = models.CharField(max_length=6, choices=[(INPUT, "Input"), (OUTPUT, "Output")])
    position = models.PositiveIntegerField(default=0)
    name = models.CharField(max_length=100)
    type = models.CharField(max_length=10, choices=[(t, t) for t in VARIABLE_TYPES], default="text")
    required = models.BooleanField(default=False)
    default = models.JSONField(null=True, blank=True, help_text="A literal value used when none is given.")
    value = models.TextField(
        blank=True,
        help_text="Outputs only: an expression giving the output (default: the variable or field of the same name).",
    )

    class Meta:
        ordering = ["flow", "direction", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["flow", "direction", "name"], name="flowvariable_unique_name"),
        ]

    def owning_definition(self):
        return self.flow

    def __str__(self):
        return f"{self.direction} {self.name}: {self.type}"


class Screen(DefinitionPart):
    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="screens")
    position = models.PositiveIntegerField(default=0)
    name = models.CharField(max_length=100)
    label = models.CharField(max_length=200, blank=True)
    validate = models.TextField(blank=True, help_text="Expression that must hold to leave the screen.")
    validate_message = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["flow", "position", "id"]
        constraints = [models.UniqueConstraint(fields=["flow", "name"], name="screen_unique_name")]

    def owning_definition(self):
        return self.flow

    def __str__(self):
        return self.label or self.name


class ScreenField(DefinitionPart):
    screen = models.ForeignKey(Screen, on_delete=models.CASCADE, related_name="fields")
    position = models.PositiveIntegerField(default=0)
    name = models.CharField(max_length=100)
    type = models.CharField(max_length=12, choices=[(t, t) for t in FIELD_TYPES], default="text")
    label = models.CharField(max_length=200, blank=True)
    help_text = models.CharField(max_length=300, blank=True)
    required = models.BooleanField(default=False)
    default = models.TextField(blank=True, help_text="Expression giving the initial value.")
    visible_if = models.TextField(blank=True, help_text="Expression; the field shows only while it holds.")
    choices = models.JSONField(default=list, blank=True, help_text="For choice and multichoice: values or {value, label}.")
    text = models.TextField(blank=True, help_text="For display fields: text with {!expr} merge fields.")

    class Meta:
        ordering = ["screen", "position", "id"]
        constraints = [models.UniqueConstraint(fields=["screen", "name"], name="screenfield_unique_name")]

    def owning_definition(self):
        return self.screen.flow

    def __str__(self):
        return f"{self.name} ({self.type})"


class FlowElement(DefinitionPart):
    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="elements")
    position = models.PositiveIntegerField(default=0)
    name = models.CharField(max_length=100, blank=True, help_text="Label that decisions may jump to.")
    type = models.CharField(max_length=20, choices=[(t, t) for t in ELEMENT_TYPES])
    config = models.JSONField(default=dict, blank=True, help_text="The element's settings, as in the definition file.")

    class Meta:
        ordering = ["flow", "position", "id"]

    def owning_definition(self):
        return self.flow

    def __str__(self):
        return f"{self.position}: {self.type} {self.name}".strip()


__all__ = [
    "DefinitionStatus", "Flow", "FlowType", "FlowVariable", "Screen", "ScreenField", "FlowElement",
    "VARIABLE_TYPES", "FIELD_TYPES", "ELEMENT_TYPES",
]
