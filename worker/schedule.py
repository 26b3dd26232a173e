"""Celery beat's schedule: periodic work that reads the database (so a lost message is caught up)."""
BEAT_SCHEDULE: dict[str, dict] = {}
