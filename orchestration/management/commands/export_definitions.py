"""python manage.py export_definitions [API_NAME ...] [--output FILE]"""
from django.core.management.base import BaseCommand, CommandError

from orchestration.definition_files import DefinitionFileError, export_document


class Command(BaseCommand):
    help = (
        "Write flows and orchestrations (the active version of each, else the latest) and the queues "
        "they use as a YAML definition file. With no API_NAME, everything."
    )

    def add_arguments(self, parser):
        parser.add_argument("api_names", nargs="*", metavar="API_NAME")
        parser.add_argument("--output", "-o", help="write to this file instead of standard output")

    def handle(self, *args, **options):
        try:
            text = export_document(options["api_names"] or None)
        except DefinitionFileError as exc:
            raise CommandError("; ".join(str(p) for p in exc.problems))
        if options["output"]:
            with open(options["output"], "w", encoding="utf-8") as handle:
                handle.write(text)
        else:
            self.stdout.write(text, ending="")
