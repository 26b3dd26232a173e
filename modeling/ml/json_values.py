"""Values as plain JSON: the one cleaner for stored reports, training metrics and checkpoint meta."""
from __future__ import annotations

import math

import numpy as np


def finite(value) -> float | None:
    """A float, or None for None, NaN and infinity."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def plain_json(value):
    """Plain JSON: numpy numbers and arrays become Python numbers and lists, NaN and infinity null."""
    if isinstance(value, dict):
        return {str(key): plain_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_json(item) for item in value]
    if isinstance(value, np.ndarray):
        return plain_json(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return finite(value)
    if isinstance(value, np.generic):
        return value.item()
    return value
