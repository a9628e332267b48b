from django.core.management.base import BaseCommand

from orchestration.children import sweep_orphaned_children
from orchestration.starts import start_leftover_pending
from orchestration.worker import sweep_stuck_steps
from orchestration.waits import fire_due_timers


class Command(BaseCommand):
    help = (
        "Start record-triggered runs whose start was interrupted, and re-send background steps left "
        "queued or running past their lease (a lost message, a dead worker), cancel sub-orchestration runs "
        "whose parent's step no longer waits for them, and fire the wait steps' timers that are due."
    )

    def handle(self, *args, **options):
        started = start_leftover_pending()
        count = sweep_stuck_steps()
        orphans = sweep_orphaned_children()
        fired = fire_due_timers()
        self.stdout.write(f"started {started} pending run(s), re-sent {count} step(s), "
                          f"canceled {orphans} orphaned child run(s), fired {fired} timer(s)")
