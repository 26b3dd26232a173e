import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from labeling.models import Project
from labeling.services.imports import ImportFileError, import_ava


class Command(BaseCommand):
    help = "Import the AVA dataset from its own files: AVA.txt, tags.txt and the image folder."

    def add_arguments(self, parser):
        parser.add_argument("project", help="Project slug")
        parser.add_argument("ava_list", type=Path, help="AVA.txt")
        parser.add_argument("tags_file", type=Path, help="tags.txt")
        parser.add_argument("image_dir", type=Path)
        parser.add_argument("--limit", type=int, default=None, help="Import only the first N rows")

    def handle(self, *args, project, ava_list, tags_file, image_dir, limit, **options):
        target = Project.objects.filter(slug=project).first()
        if target is None:
            raise CommandError(f"no project with slug {project!r}")
        for side_file in (ava_list, tags_file):
            if not side_file.is_file():
                raise CommandError(f"{side_file}: no such file")
        if limit is not None and limit <= 0:
            raise CommandError("--limit must be a positive number")
        started = time.monotonic()

        printed = [0]

        def progress(report, name):  # called per file, but counts move a batch at a time
            if report.seen // 500 > printed[0]:
                printed[0] = report.seen // 500
                self.stderr.write(f"  {report.seen} images: {report.summary()}")

        try:
            report = import_ava(target, ava_list, tags_file, image_dir, limit=limit, progress=progress)
        except ImportFileError as exc:
            raise CommandError(str(exc)) from None
        for name, reason in report.rejected:
            self.stderr.write(self.style.WARNING(f"rejected {name}: {reason}"))
        if report.missing:
            self.stderr.write(self.style.WARNING(f"{len(report.missing)} image(s) listed in {ava_list} not in {image_dir}"))
        self.stdout.write(self.style.SUCCESS(f"{report.summary()} in {time.monotonic() - started:.1f}s"))
