"""The code's own rules, checked on every run: ruff, and which package may import which.

- ``modeling/ml`` is plain torch/numpy: no Django, DRF, Celery, worker or labeling, and nothing of
  ``modeling`` outside ``modeling.ml``. One stated exception: ``labeling.spreadsheet_safety``, plain
  Python without Django, so that every CSV the project writes (the ML command line's too) is neutralised
  by one helper.
- The dependency between the apps runs one way: modeling builds on labeling, labeling never imports
  modeling.
- Outside ``worker/`` the apps (labeling, modeling, config) import only ``worker.dispatch``, the module of
  named intents. One stated exception: ``config/__init__.py`` loads the Celery app with Django
  (cookiecutter-django's pattern), so that shared tasks bind to it. Tests and benchmarks start workers
  and call tasks directly, so they are not held to this.
- Services raise domain errors without HTTP statuses: the API maps them (``labeling/api/views.py``).
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def python_files(folder: str) -> list[Path]:
    return sorted(p for p in (REPO_ROOT / folder).rglob("*.py") if "migrations" not in p.parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, dotted name) of every import in the file, at any depth; ``from a import b`` gives ``a.b``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the file's package
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def violations(folder: str, forbidden) -> list[str]:
    return [
        f"{path.relative_to(REPO_ROOT)}:{line}: {name}"
        for path in python_files(folder)
        for line, name in imported_modules(path)
        if forbidden(path.relative_to(REPO_ROOT).as_posix(), name)
    ]


def top(name: str) -> str:
    return name.split(".")[0]


def test_ruff_finds_nothing():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_ml_package_imports_no_django_worker_or_app_code():
    def forbidden(path, name):
        if name == "labeling.spreadsheet_safety":
            return False
        if top(name) in {"django", "rest_framework", "drf_spectacular", "celery", "kombu", "worker", "labeling", "config"}:
            return True
        return top(name) == "modeling" and not name.startswith("modeling.ml")

    assert violations("modeling/ml", forbidden) == []


def test_labeling_never_imports_modeling():
    assert violations("labeling", lambda path, name: top(name) == "modeling") == []


def test_only_the_dispatch_module_of_the_worker_is_imported_outside_it():
    def forbidden(path, name):
        if top(name) != "worker" or name in ("worker.dispatch",) or name.startswith("worker.dispatch."):
            return False
        return not (path == "config/__init__.py" and name == "worker.app")

    found = violations("labeling", forbidden) + violations("modeling", forbidden) + violations("config", forbidden)
    assert found == []


def test_the_checks_see_a_violation():
    # The rules above pass only if the import walker finds imports at all, nested ones included.
    names = [name for _, name in imported_modules(REPO_ROOT / "modeling" / "services" / "training_runs.py")]
    assert "worker.dispatch" in names and "modeling.ml.training.TrainConfig" in names  # the latter inside a function
    relative = [name for _, name in imported_modules(REPO_ROOT / "modeling" / "ml" / "synthetic.py")]
    assert any(name.startswith("modeling.ml.encoder.") for name in relative)  # `from .encoder import ...`


def test_service_errors_carry_no_http_status():
    offenders = []
    for folder in ("labeling/services", "modeling/services"):
        for path in python_files(folder):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ClassDef):
                    for statement in node.body:
                        targets = statement.targets if isinstance(statement, ast.Assign) else []
                        if any(isinstance(t, ast.Name) and t.id in ("status", "status_code") for t in targets):
                            offenders.append(f"{path.relative_to(REPO_ROOT)}:{statement.lineno}: {node.name}")
    assert offenders == [], "map the error to an HTTP status in the API (REFUSAL_STATUS), not in the service"
