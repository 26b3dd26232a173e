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


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_moves_to_core_with_its_table_rows_and_content_type():
    """Heartbeat moved from labeling to core by state only: a row written before the move is read after it."""
    from django.contrib.contenttypes.models import ContentType
    from django.utils import timezone

    from core.models import Heartbeat

    content_type = ContentType.objects.get_for_model(Heartbeat)
    executor = MigrationExecutor(connection)
    executor.migrate([("labeling", "0016_criteria"), ("core", None)])  # before the move
    old_apps = executor.loader.project_state([("labeling", "0016_criteria")]).apps
    with pytest.raises(LookupError):
        old_apps.get_model("core", "Heartbeat")
    at = timezone.now().replace(microsecond=0)
    old_apps.get_model("labeling", "Heartbeat").objects.create(name="beat", at=at)
    assert ContentType.objects.filter(pk=content_type.pk, app_label="labeling", model="heartbeat").exists()

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())  # the move, and everything after it

    assert Heartbeat._meta.db_table == "labeling_heartbeat"
    assert Heartbeat.objects.get(name="beat").at == at
    assert ContentType.objects.get(pk=content_type.pk).app_label == "core"  # its permissions moved with it
    assert MigrationExecutor(connection).migration_plan(executor.loader.graph.leaf_nodes()) == []
