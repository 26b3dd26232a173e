from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from labeling.models import Project
from labeling.services.judgment_imports import JudgmentFileInvalid, import_judgments


class Command(BaseCommand):
    help = (
        "Import judgments from CSV or JSON Lines (image_a, image_b, winner, rater, time[, response_ms]). "
        "Every bad line is reported as file:line; a file with any bad line stores nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("project", help="Project slug")
        parser.add_argument("file", type=Path)
        parser.add_argument("--format", choices=["csv", "jsonl"], help="Default: from the file's suffix")

    def handle(self, *args, project, file, format, **options):
        target = Project.objects.filter(slug=project).first()
        if target is None:
            raise CommandError(f"no project with slug {project!r}")
        if not file.is_file():
            raise CommandError(f"{file}: no such file")
        with open(file, "rb") as handle:
            try:
                report = import_judgments(target, handle, str(file), kind=format)
            except JudgmentFileInvalid as exc:
                for error in exc.errors:
                    self.stderr.write(str(error))
                if exc.total_errors > len(exc.errors):
                    self.stderr.write(f"... and {exc.total_errors - len(exc.errors)} more bad lines")
                raise CommandError(f"{exc.total_errors} bad line(s) in {file}; nothing was imported") from None
        self.stdout.write(f"imported {report.imported} judgments, {report.already_present} already present")
