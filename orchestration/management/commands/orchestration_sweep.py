from django.core.management.base import BaseCommand

from orchestration.tasks import sweep


class Command(BaseCommand):
    help = (
        "Run the sweeper once, here: start record-triggered runs whose start was interrupted, re-send "
        "background steps left queued or running past their lease (a lost message, a dead worker), cancel "
        "sub-orchestration runs whose parent's step no longer waits for them, and fire the wait steps' timers "
        "that are due. A job that fails is reported and the others still run."
    )

    def handle(self, *args, **options):
        done = sweep()  # the beat task's own function, called in this process
        failed = [name for name, value in done.items() if value == "error"]
        done = {name: (0 if value == "error" else value) for name, value in done.items()}
        self.stdout.write(f"started {done['started']} pending run(s), re-sent {done['resent']} step(s), "
                          f"canceled {done['children_canceled']} orphaned child run(s), fired {done['timers']} timer(s)")
        if failed:
            self.stderr.write(f"these jobs failed (see the log): {', '.join(failed)}")
