"""Business logic that views, commands and Celery tasks all call."""
