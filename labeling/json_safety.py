"""JSON from clients, parsed with a depth limit: too deep a nesting is a clear error (a 400, or a line named
in an import), never a ``RecursionError`` (a 500).

``json.loads`` recurses once per nesting level and gives up with ``RecursionError`` near the interpreter's
recursion limit; an anonymous ``[``×1000 body used to end there. Here that error, and any nesting deeper than
``MAX_DEPTH`` (far beyond any request, metadata or manifest Tagrank takes), raise :class:`TooDeep`, a
``json.JSONDecodeError``, so every caller that handles bad JSON already handles it.
"""
from __future__ import annotations

import json

MAX_DEPTH = 64


class TooDeep(json.JSONDecodeError):
    def __init__(self, limit: int = MAX_DEPTH):
        super().__init__(f"JSON nested deeper than {limit} levels", "", 0)


def loads(text: str | bytes, max_depth: int = MAX_DEPTH, **options):
    """``json.loads(text, **options)``, refusing a nesting deeper than ``max_depth`` with :class:`TooDeep`."""
    try:
        value = json.loads(text, **options)
    except RecursionError:
        raise TooDeep(max_depth) from None
    require_depth(value, max_depth)
    return value


def require_depth(value, max_depth: int = MAX_DEPTH) -> None:
    """Raise :class:`TooDeep` if lists and objects in ``value`` nest deeper than ``max_depth`` (one level at a
    time, without recursion)."""
    level = [value] if isinstance(value, (dict, list)) else []
    depth = 0
    while level:
        depth += 1
        if depth > max_depth:
            raise TooDeep(max_depth)
        level = [
            child
            for container in level
            for child in (container.values() if isinstance(container, dict) else container)
            if isinstance(child, (dict, list))
        ]
