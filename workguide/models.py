"""Work items and queues: where people do their part of a run."""
from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Queue(models.Model):
    name = models.CharField(max_length=100, unique=True)
    email = models.EmailField(blank=True, help_text="Mail for new items goes here; else to each member.")
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="work_queues")
    member_groups = models.ManyToManyField(Group, blank=True, related_name="work_queues")

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class WorkItemStatus(models.TextChoices):
    OPEN = "open", "Open"
    COMPLETED = "completed", "Completed"
    CANCELED = "canceled", "Canceled"


class WorkItem(models.Model):
    USER, GROUP, QUEUE = "user", "group", "queue"

    step_run = models.OneToOneField("orchestration.StepRun", on_delete=models.CASCADE, related_name="work_item")
    run = models.ForeignKey("orchestration.OrchestrationRun", on_delete=models.CASCADE, related_name="work_items")
    label = models.CharField(max_length=200)
    flow = models.ForeignKey("flows.Flow", on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=10, choices=WorkItemStatus.choices, default=WorkItemStatus.OPEN)
    assignee_type = models.CharField(max_length=5, choices=[(USER, "User"), (GROUP, "Group"), (QUEUE, "Queue")])
    assignee_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="assigned_work_items"
    )
    assignee_group = models.ForeignKey(Group, null=True, blank=True, on_delete=models.PROTECT, related_name="work_items")
    assignee_queue = models.ForeignKey(Queue, null=True, blank=True, on_delete=models.PROTECT, related_name="work_items")
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="claimed_work_items"
    )
    record_model = models.CharField(max_length=100, blank=True)
    record_pk = models.CharField(max_length=64, blank=True)
    record_label = models.CharField(max_length=200, blank=True)
    inputs = models.JSONField(default=dict, blank=True)
    progress = models.JSONField(default=dict, blank=True, help_text="Screen reached and values so far.")
    created_at = models.DateTimeField(default=timezone.now)
    due_at = models.DateTimeField(null=True, blank=True)
    priority = models.PositiveSmallIntegerField(default=50, help_text="The step's priority (0 to 100), higher first.")
    reminded_at = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    delegated_from = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="delegated_work_items",
        help_text="The user this item was for, when a delegation gave it to their substitute.",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("manage_workitem", "Can see, reassign and complete any work item")]
        constraints = [
            models.CheckConstraint(
                name="workitem_one_assignee",
                condition=(
                    Q(assignee_type="user", assignee_user__isnull=False, assignee_group__isnull=True, assignee_queue__isnull=True)
                    | Q(assignee_type="group", assignee_group__isnull=False, assignee_user__isnull=True, assignee_queue__isnull=True)
                    | Q(assignee_type="queue", assignee_queue__isnull=False, assignee_user__isnull=True, assignee_group__isnull=True)
                ),
            ),
        ]
        indexes = [
            models.Index(fields=["assignee_user", "status", "-created_at"], name="wi_user_open"),
            models.Index(fields=["assignee_group", "status", "-created_at"], name="wi_group_open"),
            models.Index(fields=["assignee_queue", "status", "-created_at"], name="wi_queue_open"),
            models.Index(fields=["record_model", "record_pk", "status"], name="wi_record_open"),
            models.Index(fields=["status", "due_at"], name="wi_status_due"),
        ]

    def __str__(self):
        return f"{self.label} ({self.status})"

    @property
    def assignee_display(self):
        if self.assignee_type == self.USER:
            return f"user:{self.assignee_user.get_username()}"
        if self.assignee_type == self.GROUP:
            return f"group:{self.assignee_group.name}"
        return f"queue:{self.assignee_queue.name}"

    @property
    def is_open(self):
        return self.status == WorkItemStatus.OPEN

    @property
    def is_overdue(self):
        return self.is_open and self.due_at is not None and self.due_at < timezone.now()

    def complete(self, user, values):
        """Finish the item's screen flow with ``values`` (validated) and complete its step."""
        from .services import complete_work_item

        return complete_work_item(self, user, values)


class Delegation(models.Model):
    """An out-of-office substitute: from ``starts`` until ``ends``, new work for ``user`` goes to ``substitute``.

    Only items given to ``user`` by name are redirected (a group's or queue's
    items stay with the group or queue); the item records ``delegated_from``
    and ``user`` still sees it. One hop: a substitute's own delegation is
    not followed.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="delegations")
    substitute = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                   related_name="delegations_received")
    starts = models.DateTimeField()
    ends = models.DateTimeField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["starts", "id"]
        constraints = [
            models.CheckConstraint(name="delegation_ends_after_start", condition=Q(ends__gt=models.F("starts"))),
            models.CheckConstraint(name="delegation_not_to_self", condition=~Q(substitute=models.F("user"))),
        ]
        indexes = [models.Index(fields=["user", "ends"], name="delegation_user_ends"),
                   models.Index(fields=["substitute", "ends"], name="delegation_substitute_ends")]

    def __str__(self):
        return f"{self.user} → {self.substitute} ({self.starts:%Y-%m-%d} – {self.ends:%Y-%m-%d})"

    def is_active(self, now=None):
        now = now or timezone.now()
        return self.starts <= now < self.ends


class LaunchRequest(models.Model):
    """One rendered launch form, by its one-time token: the run it started, so a resent form starts nothing.

    The launch button puts a fresh random token in every form it renders.
    The first POST with it inserts this row (``token`` is unique) in the
    same transaction that starts the run; a second POST of the same form (a
    double click, a reload) waits for that transaction on the unique index,
    then finds the row and is answered with the first run.
    """

    token = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    run = models.ForeignKey("orchestration.OrchestrationRun", null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self):
        return f"launch {self.token[:8]}… → run {self.run_id}"


class SavedFilter(models.Model):
    """A named set of My Work's filters (its query string), kept for one user."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_work_filters")
    name = models.CharField(max_length=60)
    query = models.CharField(max_length=1000, help_text="My Work's query string, only its known filter names.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["user", "name"], name="savedfilter_user_name")]

    def __str__(self):
        return f"{self.name} ({self.user_id})"
