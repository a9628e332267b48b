"""Runtime state: a run, its stage visits, its step runs, and the event log.

The invariants the engine relies on are database constraints, so a bug or a
race shows up as an IntegrityError instead of silently corrupt state:
at most one stage in progress per run, one StepRun per step per stage visit
(and one per instance of a multi-instance step), one StageRun per stage visit.
"""
from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from flows.records import load_record

from .definitions import Orchestration


class RunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    ERROR = "error", "Error"
    CANCELED = "canceled", "Canceled"
    PAUSED = "paused", "Paused"  # DESIGN §10: starts no step, opens no work item until resumed


class StageStatus(models.TextChoices):
    IN_PROGRESS = "in_progress", "In progress"
    COMPLETED = "completed", "Completed"
    DISCONTINUED = "discontinued", "Discontinued"
    ERROR = "error", "Error"


class StepStatus(models.TextChoices):
    WAITING = "waiting", "Waiting"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    IN_PROGRESS = "in_progress", "In progress"
    COMPLETED = "completed", "Completed"
    DISCONTINUED = "discontinued", "Discontinued"
    ERROR = "error", "Error"
    CANCELED = "canceled", "Canceled"


OPEN_STEP_STATUSES = (StepStatus.WAITING, StepStatus.QUEUED, StepStatus.RUNNING, StepStatus.IN_PROGRESS)


class OrchestrationRun(models.Model):
    orchestration = models.ForeignKey(Orchestration, on_delete=models.PROTECT, related_name="runs")
    status = models.CharField(max_length=12, choices=RunStatus.choices, default=RunStatus.RUNNING)
    record_model = models.CharField(max_length=100, blank=True, help_text='"app_label.model"')
    record_pk = models.CharField(max_length=64, blank=True)
    record_prior = models.JSONField(null=True, blank=True)
    inputs = models.JSONField(default=dict, blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    current_stage = models.CharField(max_length=100, blank=True)
    stage_visits = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    # A sub-orchestration's run: the step run that started it (DESIGN §10), how deep it is, and
    # what it gives back when it completes (the orchestration's declared ``outputs``).
    parent_step_run = models.ForeignKey(
        "StepRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="child_runs",
    )
    depth = models.PositiveSmallIntegerField(default=0, help_text="0 for a top-level run; its parent's + 1 for a child.")
    outputs = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["record_model", "record_pk", "status"], name="run_record_status"),
            models.Index(fields=["status", "-started_at"], name="run_status_started"),
            models.Index(fields=["orchestration", "status"], name="run_orch_status"),
        ]

    def __str__(self):
        return f"run {self.pk} of {self.orchestration.api_name} v{self.orchestration.version} ({self.status})"

    @property
    def is_open(self):
        return self.status == RunStatus.RUNNING

    def get_record(self):
        return load_record(self.record_model, self.record_pk)


class PendingStart(models.Model):
    """A record-triggered start, written in the same transaction as the record's save.

    The run itself is started right after that transaction commits, and this
    row is deleted in the run's own transaction, so each start happens
    exactly once. If the process dies between the two (or the start fails),
    the row is still there and the sweeper starts the run: a saved record
    never loses its run.
    """

    orchestration = models.ForeignKey(Orchestration, on_delete=models.CASCADE, related_name="+")
    record_model = models.CharField(max_length=100)
    record_pk = models.CharField(max_length=64)
    record_prior = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    def __str__(self):
        return f"start {self.orchestration_id} for {self.record_model}:{self.record_pk}"


class StageRun(models.Model):
    run = models.ForeignKey(OrchestrationRun, on_delete=models.CASCADE, related_name="stage_runs")
    stage_name = models.CharField(max_length=100)
    position = models.PositiveIntegerField(help_text="The stage's place in the path.")
    visit = models.PositiveIntegerField(default=1, help_text="1 on first entry, 2 after a loop back...")
    status = models.CharField(max_length=12, choices=StageStatus.choices, default=StageStatus.IN_PROGRESS)
    started_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    open_steps = models.IntegerField(
        null=True, blank=True,
        help_text="Steps of this visit still open, for a stage whose steps a worker may complete without the "
                  "run's lock (see worker.complete_background_step); empty for other stages.",
    )

    class Meta:
        ordering = ["run", "started_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["run"], condition=Q(status="in_progress"), name="stagerun_one_in_progress_per_run"
            ),
            models.UniqueConstraint(fields=["run", "stage_name", "visit"], name="stagerun_unique_visit"),
        ]

    def __str__(self):
        return f"{self.stage_name} #{self.visit} ({self.status})"


class StepRun(models.Model):
    run = models.ForeignKey(OrchestrationRun, on_delete=models.CASCADE, related_name="step_runs")
    stage_run = models.ForeignKey(StageRun, on_delete=models.CASCADE, related_name="step_runs")
    step_name = models.CharField(max_length=100)
    type = models.CharField(max_length=20)
    flow = models.ForeignKey(
        "flows.Flow", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="The flow version the step ran (the active one when it started).",
    )
    status = models.CharField(max_length=12, choices=StepStatus.choices, default=StepStatus.WAITING)
    task_id = models.CharField(max_length=64, blank=True, help_text="Celery message that holds the claim.")
    inputs = models.JSONField(default=dict, blank=True)
    outputs = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True, help_text="Queued or running past this: the sweeper re-sends.")
    timeout_seconds = models.PositiveIntegerField(
        default=600, help_text="The step's timeout, copied when it is queued: the claim sets the running lease "
                               "from it without reading the definition.",
    )
    ended_at = models.DateTimeField(null=True, blank=True)
    # A multi-instance step (``for_each`` / ``assignees``, orchestration/instances.py) is one row for
    # the step (``instance_index`` empty) and one row per element, each with its own attempts, error
    # and work item.
    instance_index = models.PositiveIntegerField(
        null=True, blank=True, help_text="This row is instance N of its step (0-based element position).",
    )
    item = models.JSONField(null=True, blank=True, help_text="An instance's element (``item`` in its expressions).")
    completed_by = models.CharField(
        max_length=150, blank=True, help_text="Username of whoever finished the step's work item.",
    )
    instances_to_go = models.IntegerField(
        null=True, blank=True,
        help_text="A multi-instance step with a counted completion rule (all, any, at_least, percent): how many "
                  "more instance completions meet it (see instances.complete_counted).",
    )
    excluded_users = models.JSONField(
        default=list, blank=True,
        help_text="Usernames the assignee rule's exclude gave when the work item opened: they may never claim, "
                  "be given or complete it.",
    )

    class Meta:
        ordering = ["stage_run", "id"]
        constraints = [
            models.UniqueConstraint(fields=["stage_run", "step_name"], condition=Q(instance_index__isnull=True),
                                    name="steprun_one_per_stage_visit"),
            models.UniqueConstraint(fields=["stage_run", "step_name", "instance_index"],
                                    condition=Q(instance_index__isnull=False), name="steprun_one_per_instance"),
        ]
        indexes = [
            # For the sweeper (lease_until < now). Only queued and running steps
            # have a lease, so the condition is on the lease itself and not on the
            # status: with a status condition PostgreSQL would also pick this index
            # for the claim (WHERE id = … AND status = 'queued') and scan every
            # queued step and its dead entries instead of one primary-key look-up.
            models.Index(fields=["lease_until"], condition=Q(lease_until__isnull=False), name="steprun_lease_set"),
            models.Index(fields=["run", "step_name"], name="steprun_run_step"),
        ]

    def __str__(self):
        return f"{self.step_name} ({self.status})"


class EventKind(models.TextChoices):
    """Every kind of ``RunEvent``; the stored strings are part of the API and the monitor."""

    RUN_STARTED = "run_started", "Run started"
    RUN_COMPLETED = "run_completed", "Run completed"
    RUN_CANCELED = "run_canceled", "Run canceled"
    RUN_ERROR = "run_error", "Run error"
    RUN_RESUMED = "run_resumed", "Run resumed"
    DECISION_TAKEN = "decision_taken", "Decision taken"
    STAGE_STARTED = "stage_started", "Stage started"
    STAGE_COMPLETED = "stage_completed", "Stage completed"
    STAGE_DISCONTINUED = "stage_discontinued", "Stage discontinued"
    STAGE_ERROR = "stage_error", "Stage error"
    STAGE_EXIT_CONDITION_MET = "stage_exit_condition_met", "Stage exit condition met"
    STEP_STARTED = "step_started", "Step started"
    STEP_QUEUED = "step_queued", "Step queued"
    STEP_RUNNING = "step_running", "Step running"
    STEP_RETRY_SCHEDULED = "step_retry_scheduled", "Step retry scheduled"
    STEP_RESENT = "step_resent", "Step re-sent"
    STEP_RETRIED = "step_retried", "Step retried"
    STEP_SKIPPED = "step_skipped", "Step skipped"
    STEP_COMPLETED = "step_completed", "Step completed"
    STEP_DISCONTINUED = "step_discontinued", "Step discontinued"
    STEP_ERROR = "step_error", "Step error"
    STEP_EXIT_CONDITION_MET = "step_exit_condition_met", "Step exit condition met"
    COMPLETION_IGNORED = "completion_ignored", "Completion ignored"
    FAILURE_IGNORED = "failure_ignored", "Failure ignored"
    WORK_ITEM_OPENED = "work_item_opened", "Work item opened"
    WORK_ITEM_CLAIMED = "work_item_claimed", "Work item claimed"
    WORK_ITEM_UNCLAIMED = "work_item_unclaimed", "Work item released"
    WORK_ITEM_REASSIGNED = "work_item_reassigned", "Work item reassigned"
    WORK_ITEM_REMINDER_SENT = "work_item_reminder_sent", "Work item reminder sent"
    WORK_ITEM_OVERDUE = "work_item_overdue", "Work item overdue"
    WORK_ITEM_ESCALATED = "work_item_escalated", "Work item escalated"
    COMMENT = "comment", "Comment"
    # Wait steps, events, pause and withdrawal (orchestration/waits.py, DESIGN §10).
    RUN_PAUSED = "run_paused", "Run paused"
    STEP_CANCELED = "step_canceled", "Step withdrawn"
    WAIT_STARTED = "wait_started", "Wait started"
    TIMER_FIRED = "timer_fired", "Timer fired"
    WAIT_TIMED_OUT = "wait_timed_out", "Wait timed out"
    EVENT_RECEIVED = "event_received", "Event received"
    EVENT_KEPT = "event_kept", "Event kept"


class RunEvent(models.Model):
    """Append-only log of every transition: who, what, when, data."""

    run = models.ForeignKey(OrchestrationRun, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(default=timezone.now)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    kind = models.CharField(max_length=40, choices=EventKind.choices)
    stage_name = models.CharField(max_length=100, blank=True)
    step_name = models.CharField(max_length=100, blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["run", "id"]
        indexes = [models.Index(fields=["run", "id"], name="runevent_run_id")]

    def save(self, *args, **kwargs):
        if self.pk and not kwargs.get("force_insert"):
            raise ValueError("run events are append-only")
        super().save(*args, **kwargs)

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.kind} {self.stage_name} {self.step_name}".strip()
