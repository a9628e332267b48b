"""The version of the trigger index: one row, bumped with every change to a definition.

Each process keeps the active record-triggered orchestrations in memory
(``orchestration/triggers.py``). Every change to an orchestration, stage or
step bumps this counter in the same transaction, and every save of a model
an orchestration may watch reads it (one single-row read) and rebuilds the
index when it moved, so no process starts a save with an index older than
the last committed activation.
"""
from django.db import models


class TriggerIndexVersion(models.Model):
    value = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = "trigger index version"

    def __str__(self):
        return f"trigger index version {self.value}"
