"""Heartbeat moved to core (``core/migrations/0001_initial.py``) with its table: state only, no data moves.

Its content type (and so its permissions) moves with it.
"""
from django.db import migrations


def move_content_type(from_app, to_app):
    def move(apps, schema_editor):
        content_types = apps.get_model('contenttypes', 'ContentType').objects
        if not content_types.filter(app_label=to_app, model='heartbeat').exists():
            content_types.filter(app_label=from_app, model='heartbeat').update(app_label=to_app)
    return move


class Migration(migrations.Migration):

    dependencies = [
        ('labeling', '0016_criteria'),
        ('core', '0001_initial'),
        ('contenttypes', '0002_remove_content_type_name'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name='Heartbeat')],
            database_operations=[],
        ),
        migrations.RunPython(move_content_type('labeling', 'core'), move_content_type('core', 'labeling')),
    ]
