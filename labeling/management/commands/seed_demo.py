from django.core.management.base import BaseCommand

from labeling.services.demo import seed_demo


class Command(BaseCommand):
    help = "Create the demo project from scikit-image's sample photos at graded distortions (idempotent)."

    def handle(self, *args, **options):
        result = seed_demo()
        self.stdout.write(self.style.SUCCESS(f"Project {result.project.slug!r}: {result.report.summary()}"))
        if result.next_project is not None:
            self.stdout.write(self.style.SUCCESS(
                f"Project {result.next_project.slug!r} (the next campaign, to warm-start from the first one's model): "
                f"{result.next_report.summary()}"))
        for role, (username, password) in result.credentials.items():
            self.stdout.write(f"  {role:8s} user: {username:10s} password: {password}")
