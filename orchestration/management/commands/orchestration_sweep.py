from django.core.management.base import BaseCommand

from orchestration.tasks import sweep_stuck_steps


class Command(BaseCommand):
    help = "Re-send background steps left queued or running past their lease (a lost message, a dead worker)."

    def handle(self, *args, **options):
        count = sweep_stuck_steps()
        self.stdout.write(f"re-sent {count} step(s)")
