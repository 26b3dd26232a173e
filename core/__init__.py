"""The plumbing both apps use: streamed exports, spreadsheet safety, the outbound guard, prepared SQL,
the API's error shape and limits, and the refusal base with the one handler that answers refusals.

A Django app only for its two models (``core/models.py``: the worker-job base and the heartbeat); no
app's data lives here. It imports no app (``labeling``, ``modeling``, ``worker``, ``config``): both apps build
on it, never the reverse (``tests/test_code_rules.py``).
"""
