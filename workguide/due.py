"""Due dates: reminders before a work item is due, escalation once it is overdue.

An interactive step with ``due_in`` gives its work item a ``due_at``
(``orchestration/steps.py``). The Celery beat task
``workguide.tasks.check_due_dates`` (every ``BATON_DUE_CHECK_INTERVAL``
seconds) calls ``check_due_dates()``, which

* mails a **reminder** to the assignee of each open item due within
  ``BATON_REMINDER_BEFORE`` seconds, once (``WorkItem.reminded_at``); not
  for an item created already inside that window (due sooner than
  ``BATON_REMINDER_BEFORE`` after it opened): its new-work mail, minutes
  old, gave the due time already, and a "due soon" right behind it is noise;
* **escalates** each open item past its due time, once
  (``WorkItem.escalated_at``):

  - if the step names ``escalate_to`` ("user:NAME", "group:NAME" or
    "queue:NAME"), the item is reassigned there (any claim is dropped), the
    change is recorded as a ``work_item_escalated`` run event, and the new
    assignee gets the escalation mail;
  - otherwise (or when ``escalate_to`` names nobody who exists, or a user
    the step excludes, which is recorded in the event) the current assignee
    is told it is overdue: the user, the group's members, or the queue's
    email (else its members), and a ``work_item_overdue`` event is recorded.

  Separation of duties holds on escalation as everywhere
  (``orchestration.permissions``): a user ``escalate_to`` names whom the
  step's ``assignee.exclude`` excludes is not given the item (it stays where
  it was, ``escalate_to_problem`` says why), and when the new assignee is
  away, a substitute who is excluded is passed over: the item goes to the
  named user (``delegation_skipped`` in the event).

"Once" holds with several beat processes or overlapping runs: each item is
claimed by a compare-and-set update of ``reminded_at`` / ``escalated_at``
before anything is sent. Mail goes out after the claim commits; addresses
that fail are handed to ``workguide.tasks.send_work_item_mail`` to retry.

Pass ``now`` to test with a frozen clock.
"""
import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from orchestration import journal, permissions
from orchestration.conf import baton_settings
from orchestration.exceptions import StepFailure
from orchestration.models import EventKind
from orchestration.plan import Plan

# workguide.tasks imports this module too (its beat task runs the checks);
# only its mail task is used here, at call time.
from . import notifications, tasks
from .models import WorkItem, WorkItemStatus
from .notifications import WorkItemNotification, register
from .services import give_to, lock_run, parse_assignee, skipped_note

log = logging.getLogger(__name__)

BATCH = 500


class _DueMail(WorkItemNotification):
    """A due-date mail: the new-work mail's templates and sending, with the due time in the context."""

    def context(self, greeting):
        context = super().context(greeting)
        now = timezone.now()
        context["due_at"] = self.item.due_at
        context["overdue_by"] = (now - self.item.due_at) if self.item.due_at and self.item.due_at < now else None
        context["due_in"] = (self.item.due_at - now) if self.item.due_at and self.item.due_at >= now else None
        return context


class DueReminder(_DueMail):
    kind = "due_reminder"
    template = "workguide/email/reminder"


class Escalation(_DueMail):
    kind = "escalation"
    template = "workguide/email/escalation"


register(DueReminder.kind, DueReminder)
register(Escalation.kind, Escalation)


def _send(item_id, kind):
    """Send now; hand failed addresses to the retrying mail task. Never raises."""
    try:
        failed = notifications.deliver(item_id, kind)
    except Exception:
        log.exception("work item %s: %s mail failed", item_id, kind)
        return
    if failed:
        try:
            tasks.send_work_item_mail.delay(item_id, kind, failed)
        except Exception:
            log.error("work item %s: %s mail not sent to %s", item_id, kind, ", ".join(failed))


def _open_with_due():
    return WorkItem.objects.filter(status=WorkItemStatus.OPEN, due_at__isnull=False)


def send_reminders(now=None):
    """Remind the assignees of items due soon. Returns how many items were reminded."""
    now = now or timezone.now()
    before = timedelta(seconds=baton_settings.BATON_REMINDER_BEFORE)
    soon = now + before
    ids = list(
        _open_with_due().filter(reminded_at__isnull=True, escalated_at__isnull=True, due_at__gt=now, due_at__lte=soon)
        # Only items that opened before their window began (see the module's docstring).
        .filter(due_at__gt=F("created_at") + before)
        .order_by("due_at").values_list("pk", flat=True)[:BATCH]
    )
    count = 0
    for item_id in ids:
        with transaction.atomic():
            claimed = WorkItem.objects.filter(
                pk=item_id, status=WorkItemStatus.OPEN, reminded_at__isnull=True
            ).update(reminded_at=now)
            if not claimed:
                continue  # someone else reminded it, or it closed meanwhile
            _event(item_id, EventKind.WORK_ITEM_REMINDER_SENT, now)
            transaction.on_commit(lambda item_id=item_id: _send(item_id, DueReminder.kind))
        count += 1
    return count


def escalation_target(item):
    """The step's ``escalate_to`` for ``item`` ("" when it has none)."""
    try:
        plan = Plan.load(item.run.orchestration_id)
        return plan.step(item.step_run.step_name).escalate_to or ""
    except (KeyError, LookupError):
        return ""


def escalate_overdue(now=None):
    """Escalate each overdue item once. Returns how many items were escalated."""
    now = now or timezone.now()
    ids = list(
        _open_with_due().filter(escalated_at__isnull=True, due_at__lte=now)
        .order_by("due_at").values_list("pk", flat=True)[:BATCH]
    )
    count = 0
    for item_id in ids:
        if _escalate(item_id, now):
            count += 1
    return count


def _escalate(item_id, now):
    with transaction.atomic():
        run_id = WorkItem.objects.filter(pk=item_id).values_list("run_id", flat=True).first()
        if run_id is None:
            return False
        lock_run(run_id)  # the run before the item and its event, as the engine does (see lock_run)
        item = (
            WorkItem.objects.select_for_update(of=("self",))
            .select_related("run", "step_run", "assignee_user", "assignee_group", "assignee_queue")
            .filter(pk=item_id, status=WorkItemStatus.OPEN, escalated_at__isnull=True).first()
        )
        if item is None:
            return False
        before = item.assignee_display
        target_text = escalation_target(item)
        problem = ""
        if target_text:
            try:
                kind, target = parse_assignee(target_text)
            except StepFailure as exc:
                problem = str(exc)
                target_text = ""
            else:
                if kind == "user" and permissions.is_excluded(target, item.step_run.excluded_users):
                    problem = (f"escalate_to {target_text!r}: {target.get_username()} is excluded from this step "
                               f"(separation of duties); the item stays with {before}")
                    target_text = ""
        item.escalated_at = now
        if target_text:
            changed, skipped = give_to(item, kind, target)
            item.save(update_fields=["escalated_at", *changed])
            _event(item, EventKind.WORK_ITEM_ESCALATED, now, before=before, after=target_text,
                   due_at=item.due_at.isoformat(), **skipped_note(skipped))
            from . import signals

            signals.send_on_commit(signals.work_item_reassigned, [item.pk], before=before, after=target_text)
        else:
            item.save(update_fields=["escalated_at"])
            data = {"assignee": before, "due_at": item.due_at.isoformat()}
            if problem:
                data["escalate_to_problem"] = problem
            _event(item, EventKind.WORK_ITEM_OVERDUE, now, **data)
        transaction.on_commit(lambda: _send(item_id, Escalation.kind))
    return True


def _event(item_or_id, kind, now, **data):
    item = item_or_id if isinstance(item_or_id, WorkItem) else (
        WorkItem.objects.select_related("step_run").get(pk=item_or_id)
    )
    journal.record(kind, run_id=item.run_id, at=now, stage=journal.stage_name_of(item.step_run),
                   step=item.step_run.step_name, work_item=item.pk, **data)


def check_due_dates(now=None):
    """The beat task's work: reminders, then escalations. Returns the counts."""
    now = now or timezone.now()
    return {"reminded": send_reminders(now), "escalated": escalate_overdue(now)}
