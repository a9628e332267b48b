"""Durable state of wait steps: timers with a due time, and events kept for a run.

A ``Timer`` is a row, not a sleeping task or a long Celery countdown: the
sweeper (beat, and ``manage.py orchestration_sweep``) fires the pending ones
whose time has come (``orchestration/waits.py``), each exactly once. A
``KeptEvent`` is an event sent with ``keep=True`` to a run where no step was
waiting for it yet; the next wait step for that name takes it.
"""
from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .runs import OrchestrationRun, StepRun


class TimerPurpose(models.TextChoices):
    WAIT = "wait", "Wait (for / until)"
    TIMEOUT = "timeout", "Event timeout"


class TimerState(models.TextChoices):
    PENDING = "pending", "Pending"
    FIRED = "fired", "Fired"
    CANCELED = "canceled", "Canceled"


class Timer(models.Model):
    run = models.ForeignKey(OrchestrationRun, on_delete=models.CASCADE, related_name="timers")
    step_run = models.ForeignKey(StepRun, on_delete=models.CASCADE, related_name="timers")
    purpose = models.CharField(max_length=10, choices=TimerPurpose.choices)
    due_at = models.DateTimeField()
    state = models.CharField(max_length=10, choices=TimerState.choices, default=TimerState.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    fired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["due_at", "id"]
        indexes = [
            # The sweeper's look-up: pending timers by due time (fired ones drop out of the index).
            models.Index(fields=["due_at"], condition=Q(state="pending"), name="timer_pending_due"),
        ]
        # The permissions of DESIGN §10 live here, on a model of the waits' own
        # migration (their codenames are app-wide: "orchestration.send_events").
        permissions = [
            ("send_events", "Can send events to runs"),
            ("pause_own_runs", "Can pause and resume runs they started"),
        ]

    def __str__(self):
        return f"{self.purpose} timer of step run {self.step_run_id} due {self.due_at:%Y-%m-%d %H:%M:%S} ({self.state})"


class KeptEvent(models.Model):
    """An event sent with ``keep`` to a run: the next wait step for ``name`` completes with it at once."""

    run = models.ForeignKey(OrchestrationRun, on_delete=models.CASCADE, related_name="kept_events")
    name = models.CharField(max_length=100)
    data = models.JSONField(default=dict, blank=True)
    kept_at = models.DateTimeField(default=timezone.now)
    sent_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="+")
    taken_at = models.DateTimeField(null=True, blank=True)
    taken_by = models.ForeignKey(StepRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                 help_text="The wait step that completed with this event.")

    class Meta:
        ordering = ["kept_at", "id"]
        indexes = [models.Index(fields=["run", "name"], condition=Q(taken_at__isnull=True), name="keptevent_pending")]

    def __str__(self):
        return f"event {self.name} kept for run {self.run_id}"
