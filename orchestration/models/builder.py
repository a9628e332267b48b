"""The Orchestration Builder's undo stack: the definition as it was before each change.

One row per change made in the builder to a draft, holding the draft's
definition mapping (the import format) from just before it; undo puts the
newest one back and drops it. Only the last ``UNDO_DEPTH`` rows of a version
are kept. Not a ``DefinitionPart``: the stack is a tool's memory, not part of
the definition, and goes with the draft when it is deleted.
"""
from django.db import models
from django.utils import timezone

UNDO_DEPTH = 20


class BuilderSnapshot(models.Model):
    orchestration = models.ForeignKey("orchestration.Orchestration", on_delete=models.CASCADE,
                                      related_name="builder_snapshots")
    created_at = models.DateTimeField(default=timezone.now)
    change = models.CharField(max_length=200, help_text="What the change after this snapshot did.")
    definition = models.JSONField()

    class Meta:
        ordering = ["orchestration", "-id"]
