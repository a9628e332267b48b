"""Mail for new work items (filled in by the Work Guide work)."""
import logging

log = logging.getLogger(__name__)


def notify_new_work_item(item_id):
    pass
