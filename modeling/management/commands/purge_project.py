from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from labeling.models import Project
from modeling.services.purge import purge_project


class Command(BaseCommand):
    help = (
        "Delete a project with its images, judgments, models and their files, for good. Writes an export first "
        "(scores, comparisons, image tags, raters, gold pairs, model versions with metrics, a manifest) and logs "
        "what it removed. Archive instead to keep the data."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--confirm", required=True, metavar="SLUG", help="The project's slug again, to confirm.")
        parser.add_argument(
            "--export-dir", type=Path, help="Where the export goes (default: var/purged/<slug>-<time>/)."
        )

    def handle(self, *args, slug, confirm, export_dir, **options):
        if confirm != slug:
            raise CommandError(f"--confirm {confirm!r} does not match the project {slug!r}; nothing was deleted.")
        project = Project.objects.filter(slug=slug).first()
        if project is None:
            raise CommandError(f"No project with the slug {slug!r}.")
        export_dir = export_dir or Path(settings.VAR_DIR) / "purged" / f"{slug}-{timezone.now():%Y%m%dT%H%M%S}"
        report = purge_project(project, export_dir)
        self.stdout.write(f"Exported to {report.export_dir}: {report.exported}")
        for label, count in sorted(report.deleted.items()):
            if count:
                self.stdout.write(f"  deleted {count} {label}")
        self.stdout.write(self.style.SUCCESS(f"Purged project {slug!r}; removed {report.files_removed} files."))
