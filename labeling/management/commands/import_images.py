import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from labeling.models import Project
from labeling.services.imports import ImportFileError, import_folder


class Command(BaseCommand):
    help = "Import a folder of JPEG/PNG/WebP images (recursively) into a project."

    def add_arguments(self, parser):
        parser.add_argument("project", help="Project slug")
        parser.add_argument("folder", type=Path)
        parser.add_argument("--tags", type=Path, help="CSV: file,tags (tags separated by ; or |)")
        parser.add_argument("--metadata", type=Path, help="JSONL: {file, prompt, external_id, tags, ...parameters}")
        parser.add_argument("--strict", action="store_true", help="Exit with status 1 if any file was rejected")
        parser.add_argument("--workers", type=int, help="Decoding processes (default: one per CPU core)")

    def handle(self, *args, project, folder, tags, metadata, strict, workers=None, **options):
        target = Project.objects.filter(slug=project).first()
        if target is None:
            raise CommandError(f"no project with slug {project!r}")
        for side_file in (tags, metadata):
            if side_file is not None and not side_file.is_file():
                raise CommandError(f"{side_file}: no such file")
        started = time.monotonic()

        printed = [0]

        def progress(report, name):  # called per file, but counts move a batch at a time
            if report.seen // 200 > printed[0]:
                printed[0] = report.seen // 200
                rate = report.seen / max(time.monotonic() - started, 1e-9)
                self.stderr.write(f"  {report.seen} files ({rate:.1f}/s): {report.summary()}")

        try:
            report = import_folder(
                target, folder, tags_csv=tags, metadata_jsonl=metadata, progress=progress, workers=workers
            )
        except ImportFileError as exc:
            raise CommandError(str(exc)) from None
        for name, reason in report.rejected:
            self.stderr.write(self.style.WARNING(f"rejected {name}: {reason}"))
        elapsed = time.monotonic() - started
        self.stdout.write(
            self.style.SUCCESS(f"{report.summary()} in {elapsed:.1f}s ({report.seen / max(elapsed, 1e-9):.1f} files/s)")
        )
        if strict and report.rejected:
            raise CommandError(f"{len(report.rejected)} file(s) rejected")
