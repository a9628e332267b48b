"""Mail about work items: who gets it, what it says, and how it goes out.

A notification is a small class naming its templates (subject, text and HTML
under ``workguide/templates/workguide/email/``) and its recipients:

- an item for a user mails that user;
- an item for a group mails every active member of the group;
- an item for a queue mails the queue's ``email`` if it has one, else every
  active member (direct members and members of its groups).

Mail goes out after the transaction that opened the item commits (the engine
calls ``notify_new_work_item`` from ``transaction.on_commit``) through the
Celery task ``workguide.tasks.send_work_item_mail``, which retries with
backoff when the mail server fails. Nothing here ever raises into the caller:
a step is never held up or rolled back by mail. The link in each mail is
absolute (scheme and host from ``BATON_BASE_URL``, the path from ``reverse()``,
so any URL prefix works) and goes through login to the item.
"""
import logging
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives, get_connection
from django.template.loader import render_to_string
from django.urls import reverse

from orchestration.conf import baton_settings

log = logging.getLogger(__name__)


def item_link(item_or_id):
    pk = getattr(item_or_id, "pk", item_or_id)
    # BATON_BASE_URL gives only scheme and host: the path, with the prefix the
    # host mounted Baton's urls under, is reverse()'s.
    base = urlsplit(baton_settings.BATON_BASE_URL)
    return f"{base.scheme}://{base.netloc}{reverse('workguide:item', args=[pk])}"


class WorkItemNotification:
    """Base: subclasses set ``template`` (the path prefix of the three templates) and may narrow ``applies``."""

    template = ""

    def __init__(self, item):
        self.item = item

    def applies(self):
        return self.item.is_open

    # -- recipients --------------------------------------------------------
    def recipients(self):
        """``[(address, greeting name)]``, without duplicates, in a stable order.

        Never someone the item's step excludes (separation of duties): a
        group's or queue's members who are excluded are not mailed, and a
        user who is away is told themselves when their substitute is excluded.
        """
        from orchestration import permissions

        item = self.item
        excluded = item.step_run.excluded_users or []
        User = get_user_model()
        users = (User._default_manager.filter(is_active=True).exclude(email="")
                 .exclude(**{f"{User.USERNAME_FIELD}__in": excluded}))
        if item.assignee_type == "user":
            from .services import active_delegation

            delegation = active_delegation(item.assignee_user)  # away: their substitute is told instead
            if delegation is not None and permissions.is_excluded(delegation.substitute, excluded):
                delegation = None  # the item stayed with the user (services.route): so does its mail
            people = users.filter(pk=delegation.substitute_id if delegation else item.assignee_user_id)
        elif item.assignee_type == "group":
            people = users.filter(groups=item.assignee_group_id)
        else:
            queue = item.assignee_queue
            if queue.email:
                return [(queue.email, f"{queue.name} team")]
            people = users.filter(pk__in=queue.members.values("pk")) | users.filter(
                groups__in=queue.member_groups.values("pk")
            )
        seen, result = set(), []
        for user in people.distinct().order_by("pk"):
            if user.email.lower() not in seen:
                seen.add(user.email.lower())
                result.append((user.email, user.get_short_name() or user.get_username()))
        return result

    # -- content -----------------------------------------------------------
    def context(self, greeting):
        item = self.item
        orch = item.run.orchestration
        return {
            "item": item,
            "greeting": greeting,
            "assignee": item.assignee_display,
            "orchestration": orch.label or orch.api_name,
            "link": item_link(item),
        }

    def message(self, address, greeting, connection=None):
        context = self.context(greeting)
        subject = " ".join(render_to_string(f"{self.template}_subject.txt", context).split())
        text = render_to_string(f"{self.template}.txt", context)
        html = render_to_string(f"{self.template}.html", context)
        mail = EmailMultiAlternatives(subject, text, settings.DEFAULT_FROM_EMAIL, [address], connection=connection)
        mail.attach_alternative(html, "text/html")
        return mail

    def send(self, only=None):
        """Send to every recipient (or only to the addresses in ``only``). Returns the addresses that failed."""
        recipients = [(a, g) for a, g in self.recipients() if only is None or a in only]
        if not recipients:
            log.info("work item %s: nobody to mail (%s)", self.item.pk, self.item.assignee_display)
            return []
        failed = []
        connection = get_connection(fail_silently=False)
        try:
            connection.open()
        except Exception:
            log.warning("work item %s: cannot reach the mail server", self.item.pk, exc_info=True)
            return [address for address, _ in recipients]
        try:
            for address, greeting in recipients:
                try:
                    self.message(address, greeting, connection).send()
                except Exception:
                    log.warning("work item %s: mail to %s failed", self.item.pk, address, exc_info=True)
                    failed.append(address)
        finally:
            try:
                connection.close()
            except Exception:
                log.debug("closing the mail connection failed", exc_info=True)
        return failed


class NewWorkItem(WorkItemNotification):
    template = "workguide/email/new_work_item"


class CanceledWorkItem(WorkItemNotification):
    """An item withdrawn because its multi-instance step met its completion rule (the other approvals)."""

    template = "workguide/email/work_item_canceled"

    def applies(self):
        return self.item.status == "canceled"

    def context(self, greeting):
        context = super().context(greeting)
        context["reason"] = ("Enough of the parallel items of this step were finished, "
                             "so the others, this one among them, were withdrawn.")
        return context


# Kinds the mail task knows by name; other modules (e.g. due-date reminders) may add theirs.
NOTIFICATIONS = {"new_work_item": NewWorkItem, "work_item_canceled": CanceledWorkItem}


def register(kind, cls):
    NOTIFICATIONS[kind] = cls
    return cls


def deliver(item_id, kind="new_work_item", only=None):
    """Build and send notification ``kind`` for item ``item_id``. Returns the failed addresses."""
    from .models import WorkItem

    item = (
        WorkItem.objects.select_related("run__orchestration", "step_run", "assignee_user", "assignee_group",
                                        "assignee_queue")
        .filter(pk=item_id).first()
    )
    if item is None:
        log.info("work item %s is gone; no mail", item_id)
        return []
    off = set(baton_settings.BATON_WORK_ITEM_MAILS_OFF or ())
    if "*" in off or item.run.orchestration.api_name in off:
        log.info("work item %s: %s mail off for %s (BATON_WORK_ITEM_MAILS_OFF)", item_id, kind,
                 item.run.orchestration.api_name)
        return []
    notification = NOTIFICATIONS[kind](item)
    if not notification.applies():
        log.info("work item %s is %s; no %s mail", item_id, item.status, kind)
        return []
    return notification.send(only=only)


def notify(item_id, kind="new_work_item"):
    """Hand the mail to the Celery task; never raises. Call it after commit."""
    try:
        from .tasks import send_work_item_mail

        send_work_item_mail.delay(item_id, kind)
    except Exception:
        # No broker: try once in this process rather than lose the mail.
        log.warning("work item %s: cannot queue the %s mail; sending it now", item_id, kind, exc_info=True)
        try:
            failed = deliver(item_id, kind)
            if failed:
                log.error("work item %s: %s mail not sent to %s", item_id, kind, ", ".join(failed))
        except Exception:
            log.exception("work item %s: %s mail failed", item_id, kind)


def notify_new_work_item(item_id):
    """Called on commit when an item is opened or reassigned."""
    notify(item_id, "new_work_item")
