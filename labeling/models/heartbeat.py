"""When a periodic signal last arrived."""
from django.db import models


class Heartbeat(models.Model):
    """When a periodic signal last arrived (``beat``: the tick beat sends and a worker runs); /healthz/ reads it."""

    name = models.CharField(max_length=40, primary_key=True)
    at = models.DateTimeField()

    def __str__(self):
        return f"{self.name} at {self.at:%Y-%m-%d %H:%M:%S}"
