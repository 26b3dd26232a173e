"""Heartbeat moves here from labeling, with its table: state only, no data is written or moved.

The table ``labeling_heartbeat`` was made by labeling's migration 0003 and stays (``db_table``); labeling's
0017 takes the model out of labeling's state after this one puts it in core's.
"""
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('labeling', '0003_heartbeat_archive_import_jobs_webhooks'),  # made the table
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='Heartbeat',
                    fields=[
                        ('name', models.CharField(max_length=40, primary_key=True, serialize=False)),
                        ('at', models.DateTimeField()),
                    ],
                    options={'db_table': 'labeling_heartbeat'},
                ),
            ],
            database_operations=[],
        ),
    ]
