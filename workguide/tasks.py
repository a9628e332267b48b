"""Celery tasks of the Work Guide.

``send_work_item_mail(item_id, kind="new_work_item", only=None)`` sends a
work item notification (see ``workguide.notifications``); addresses that
fail are retried with exponential backoff (``BATON_MAIL_RETRIES`` times,
default 5), and only those. When the retries are used up the failure is
logged; the item and its step are never affected.

Due-date reminders and escalation live in ``workguide/due.py`` (written
separately); it is imported here when it exists so that Celery's autodiscovery
of ``workguide.tasks`` registers its tasks too. Give them explicit names, e.g.
``@shared_task(name="workguide.tasks.check_due_dates")``, which is what
``CELERY_BEAT_SCHEDULE`` calls.
"""
import importlib
import importlib.util
import logging

from celery import shared_task

from orchestration.conf import baton_settings

log = logging.getLogger(__name__)


def _max_retries():
    return int(baton_settings.BATON_MAIL_RETRIES)


@shared_task(bind=True, name="workguide.tasks.send_work_item_mail", max_retries=None, ignore_result=True)
def send_work_item_mail(self, item_id, kind="new_work_item", only=None):
    from .notifications import deliver

    failed = deliver(item_id, kind, only=only)
    if not failed:
        return []
    if self.request.retries >= _max_retries():
        log.error("work item %s: %s mail to %s failed after %s retries; giving up",
                  item_id, kind, ", ".join(failed), self.request.retries)
        return failed
    countdown = min(3600, 30 * (2 ** self.request.retries))
    log.warning("work item %s: %s mail to %s failed; retry %s in %ss",
                item_id, kind, ", ".join(failed), self.request.retries + 1, countdown)
    raise self.retry(args=(item_id, kind, failed), countdown=countdown)


if importlib.util.find_spec(f"{__package__}.due") is not None:  # the due-date tasks, once written
    importlib.import_module(f"{__package__}.due")


@shared_task(name="workguide.tasks.check_due_dates", ignore_result=True)
def check_due_dates():
    """Beat task: due-date reminders and escalation (see ``workguide/due.py``)."""
    from .due import check_due_dates as run_checks

    return run_checks()
