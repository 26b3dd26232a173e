"""Thin Celery tasks: each calls a service in the apps and holds no business logic."""
from celery import shared_task


@shared_task(name="tagrank.ping", acks_late=True, soft_time_limit=10, time_limit=20)
def ping(payload: str = "pong") -> dict:
    """A round trip through the broker and a worker: used by health checks and tests."""
    import os
    import socket

    return {"payload": payload, "host": socket.gethostname(), "pid": os.getpid()}
