from django.core.management.base import BaseCommand

from labeling.services.demo import seed_demo
from labeling.services.generator_demo import seed_generator_demo


class Command(BaseCommand):
    help = (
        "Create the demo projects (idempotent): scikit-image's sample photos at graded distortions, and "
        "generated-looking images of three synthetic text-to-image generators."
    )

    def handle(self, *args, **options):
        result = seed_demo()
        self.stdout.write(self.style.SUCCESS(f"Project {result.project.slug!r}: {result.report.summary()}"))
        if result.next_project is not None:
            self.stdout.write(self.style.SUCCESS(
                f"Project {result.next_project.slug!r} (the next campaign, to warm-start from the first one's model): "
                f"{result.next_report.summary()}"))
        generators = seed_generator_demo()
        self.stdout.write(self.style.SUCCESS(f"Project {generators.project.slug!r}: {generators.report.summary()}"))
        for role, (username, password) in result.credentials.items():
            self.stdout.write(f"  {role:8s} user: {username:10s} password: {password}")
