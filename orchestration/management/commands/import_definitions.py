"""python manage.py import_definitions FILE [--activate]"""
import sys

from django.core.management.base import BaseCommand, CommandError

from orchestration.definition_files import DefinitionFileError, import_document


class Command(BaseCommand):
    help = (
        "Import queues, flows and orchestrations from a YAML definition file, all or nothing. "
        "Each flow and orchestration becomes a new draft version; --activate activates them."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="the YAML definition file ('-' reads standard input)")
        parser.add_argument("--activate", action="store_true", help="activate the imported versions (flows first)")

    def handle(self, *args, **options):
        path = options["file"]
        try:
            if path == "-":
                text = sys.stdin.read()
            else:
                with open(path, encoding="utf-8") as handle:
                    text = handle.read()
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror or exc}")
        try:
            report = import_document(text, activate=options["activate"])
        except DefinitionFileError as exc:
            for problem in exc.problems:
                self.stderr.write(f"{path}: {problem}")
            count = len(exc.problems)
            raise CommandError(f"{count} problem{'s' if count != 1 else ''} in {path}; nothing was imported")
        for line in report.lines():
            self.stdout.write(line)
        self.stdout.write(self.style.SUCCESS(
            f"Imported {len(report.queues)} queue(s), {len(report.flows)} flow(s), "
            f"{len(report.orchestrations)} orchestration(s)" + (" and activated them" if report.activated else "")
        ))
