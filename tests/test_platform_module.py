"""`platform/` is a deployment folder; the standard library owns the module name `platform`."""
import platform as stdlib_platform
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_platform_folder_is_not_a_package():
    assert (REPO_ROOT / "platform").is_dir()
    assert not (REPO_ROOT / "platform" / "__init__.py").exists()


def test_stdlib_platform_under_django_settings():
    # Run from the repository root, where a package named `platform` would shadow the standard library.
    code = (
        "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings'); django.setup();"
        "import platform, uuid, sysconfig;"
        "assert platform.__file__.startswith(sysconfig.get_paths()['stdlib']), platform.__file__;"
        "print(platform.system(), uuid.uuid4().version)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    system, uuid_version = result.stdout.split()
    assert system == stdlib_platform.system()  # the standard library answered, as it does here
    assert uuid_version == "4"
