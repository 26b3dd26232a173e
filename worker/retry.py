"""The one retry policy of every task that touches the database or sends follow-up work.

Tasks are idempotent (they read what is still to do from the database), so retrying is safe. Only
transient failures are retried (a database or broker connection that is briefly away: restart,
failover, SQLite busy), with exponential backoff capped at RETRY_BACKOFF_MAX seconds; a bug is not.
"""
from django.db import InterfaceError as DatabaseInterfaceError
from django.db import OperationalError as DatabaseOperationalError
from kombu.exceptions import OperationalError as BrokerOperationalError

TRANSIENT_ERRORS = (DatabaseOperationalError, DatabaseInterfaceError, BrokerOperationalError, ConnectionError)
RETRY_BACKOFF_MAX = 300
RETRYING = dict(
    acks_late=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=5,
    retry_backoff_max=RETRY_BACKOFF_MAX,
    retry_jitter=True,
    max_retries=8,
)
