"""The migrations match the models, and a squashed migration stands in for the ones it replaced."""
import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder


@pytest.mark.django_db
def test_the_models_need_no_new_migration():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)  # exits 1 on a change


@pytest.mark.django_db
def test_a_database_that_applied_the_replaced_migrations_has_nothing_to_apply():
    squashed = {key: m for key, m in MigrationLoader(connection).disk_migrations.items() if m.replaces}
    assert {app for app, _ in squashed} == {"labeling", "modeling"}
    # Record what a database migrated before the squash holds: the old names, not the squashed ones.
    recorder = MigrationRecorder(connection)
    for key, migration in squashed.items():
        recorder.record_unapplied(*key)
        for old in migration.replaces:
            recorder.record_applied(*old)

    executor = MigrationExecutor(connection)
    assert executor.migration_plan(executor.loader.graph.leaf_nodes()) == []
    assert set(squashed) <= set(executor.loader.applied_migrations)
