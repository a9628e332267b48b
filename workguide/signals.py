"""Work item signals: a site's hook for routing notifications elsewhere (Slack, Teams, a ticket system).

Each is a ``django.dispatch.Signal`` sent with ``sender=WorkItem``,
``item`` (the ``WorkItem``, read afresh) and ``actor`` (the user who did it,
or None for the engine and the sweeper), after the transaction that made the
change commits: a receiver sees the change, and nothing it does can roll it
back. Receivers are called with ``send_robust``: one that raises is logged
and the others still run.

- ``work_item_opened``: a step opened an item (also ``delegated_from`` set when a delegation redirected it);
- ``work_item_claimed``: someone claimed it;
- ``work_item_reassigned``: a person or an escalation gave it to another assignee (``before``, ``after``);
- ``work_item_completed``: it was finished (by its screen flow or a skip);
- ``work_item_canceled``: its run was canceled or its stage moved on without it.

``BATON_WORK_ITEM_MAILS_OFF`` (a list of orchestration ``api_name``s, or
``["*"]``) turns the default mails off for those orchestrations, so the
signals are the only notification.
"""
import logging

from django.db import transaction
from django.dispatch import Signal

log = logging.getLogger(__name__)

work_item_opened = Signal()
work_item_claimed = Signal()
work_item_reassigned = Signal()
work_item_completed = Signal()
work_item_canceled = Signal()


def send_on_commit(signal, item_ids, actor=None, **extra):
    """Send ``signal`` for each of ``item_ids`` once the current transaction commits. Never raises."""
    ids = list(item_ids)
    if not ids or not signal.has_listeners():
        return

    def send():
        from .models import WorkItem

        items = WorkItem.objects.select_related("run__orchestration", "step_run", "assignee_user", "assignee_group",
                                                "assignee_queue", "claimed_by", "completed_by", "delegated_from")
        for item in items.filter(pk__in=ids).order_by("pk"):
            for receiver, result in signal.send_robust(sender=WorkItem, item=item, actor=actor, **extra):
                if isinstance(result, Exception):
                    log.error("work item %s: receiver %r failed", item.pk, receiver, exc_info=result)

    transaction.on_commit(send)
