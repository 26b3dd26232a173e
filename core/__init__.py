"""The plumbing both apps use: streamed exports, spreadsheet safety, the outbound guard, prepared SQL,
the API's error shape and limits, and the refusal base with the one handler that answers refusals.

A plain package, not a Django app: it holds no models, templates or migrations, so it needs no app
registry entry. It imports no app (``labeling``, ``modeling``, ``worker``, ``config``): both apps build
on it, never the reverse (``tests/test_code_rules.py``).
"""
