"""cProfile of import_folder, in-process, on a scratch SQLite database.

    .venv/bin/python benchmarks/import_profile.py REPO FOLDER WORKERS

With WORKERS=1 every step (read, decode, thumbnail, hash, files, database) runs in this process, so
the profile shows the whole split; with more workers it shows the main process's share. REPO is the
checkout to profile (this one, or an older one to compare). Make FOLDER with
benchmarks/import_images.py's make_images, e.g.
    PYTHONPATH=benchmarks .venv/bin/python -c "from pathlib import Path; from import_images import make_images; \
        make_images(Path('/tmp/photos300'), 300, 640, 480)"
"""
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

repo, folder, workers = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve(), int(sys.argv[3])
sys.path.insert(0, str(repo))
os.chdir(repo)
os.environ["TAGRANK_VAR_DIR"] = tempfile.mkdtemp()
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
os.environ.setdefault("DEBUG", "true")  # a scratch folder: the development settings
for name in ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "MEDIA_ROOT"):
    os.environ.pop(name, None)

import django  # noqa: E402

django.setup()
from django.core.management import call_command  # noqa: E402

from labeling.models import Project  # noqa: E402
from labeling.services.imports import import_folder  # noqa: E402

call_command("migrate", verbosity=0)
project = Project.objects.create(name="Profile", slug="profile")
profile = cProfile.Profile()
started = time.perf_counter()
profile.enable()
report = import_folder(project, folder, workers=workers)
profile.disable()
print(report.summary(), f"in {time.perf_counter() - started:.1f}s; load average", os.getloadavg())
for order, count in (("cumulative", 35), ("tottime", 20)):
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats(order).print_stats(count)
    print(out.getvalue())
