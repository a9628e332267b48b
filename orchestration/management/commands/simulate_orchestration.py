"""python manage.py simulate_orchestration API_NAME [--version N] [--record MODEL:PK] [--inputs JSON] [--outputs STEP=JSON ...] [--error STEP=MESSAGE ...] [--timeout STEP ...] [--instances STEP=N ...]

A dry run: prints the stages and steps a run would go through, in order,
with the decision taken at each point. Nothing is stored.
"""
from django.core.management.base import BaseCommand, CommandError

from orchestration.simulate import (
    SimulationError, dry_run, find_version, parse_errors, parse_inputs, parse_instances, parse_outputs,
)


class Command(BaseCommand):
    help = "Walk an orchestration's path in memory with given step outputs and print what a run would do."

    def add_arguments(self, parser):
        parser.add_argument("api_name")
        # Django's commands all take --version (print Django's version); here it names the orchestration version.
        parser.conflict_handler = "resolve"
        for group in parser._action_groups:
            group.conflict_handler = "resolve"
        parser.add_argument("--version", type=int, help="The version to walk (default: the active one, else the latest).")
        parser.add_argument("--record", help='The run\'s record, "app_label.model:pk".')
        parser.add_argument("--inputs", default="", help="The run's inputs as a JSON object.")
        parser.add_argument(
            "--outputs", action="append", default=[], metavar="STEP=JSON",
            help='Outputs a step completes with, e.g. review=\'{"decision": "approve"}\'; a JSON list gives one '
                 "object per visit of the step (for loops). Repeat for each step; steps not named complete with {}.",
        )
        parser.add_argument(
            "--error", action="append", default=[], metavar="STEP=MESSAGE",
            help="A step that fails (after its retries) with this message, to walk its stage's error path.",
        )
        parser.add_argument(
            "--timeout", action="append", default=[], metavar="STEP",
            help="A wait step whose timer fires: an event wait times out (on_timeout). Without it, an event "
                 "wait receives its event, with the step's --outputs as the event's data.",
        )
        parser.add_argument(
            "--instances", action="append", default=[], metavar="STEP=N",
            help="How many instances of a multi-instance step complete (default: as many as its completion "
                 "needs); the rest are withdrawn. Its outputs (--outputs) are each instance's.",
        )

    def handle(self, *args, api_name, version=None, record=None, inputs="", outputs=(), error=(), timeout=(),
               instances=(),
               **options):
        try:
            orchestration = find_version(api_name, version)
            result = dry_run(orchestration, record_ref=record, inputs=parse_inputs(inputs),
                             outputs=parse_outputs(outputs), errors=parse_errors(error),
                             timeouts=timeout, instances=parse_instances(instances))
        except SimulationError as exc:
            raise CommandError(str(exc))
        self.stdout.write(result.text())
        if result.result == "error":
            raise CommandError("the dry run found an error (see above)")
