from django.core.management.base import BaseCommand

from orchestration.children import sweep_orphaned_children
from orchestration.starts import start_leftover_pending
from orchestration.tasks import sweep_stuck_steps


class Command(BaseCommand):
    help = (
        "Start record-triggered runs whose start was interrupted, and re-send background steps left "
        "queued or running past their lease (a lost message, a dead worker), and cancel sub-orchestration runs "
        "whose parent's step no longer waits for them."
    )

    def handle(self, *args, **options):
        started = start_leftover_pending()
        count = sweep_stuck_steps()
        orphans = sweep_orphaned_children()
        self.stdout.write(f"started {started} pending run(s), re-sent {count} step(s), "
                          f"canceled {orphans} orphaned child run(s)")
