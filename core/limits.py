"""Limits on what a client may send, shared by the API, the pages and the access layer."""

# Database ids are 64-bit: a larger number from a client would overflow the driver (a 500), not miss (a 404).
MAX_ID = 2**63 - 1
