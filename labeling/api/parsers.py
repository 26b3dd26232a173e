"""The API's JSON parser: DRF's, with the depth limit of ``labeling/json_safety.py`` (a 400, not a 500)."""
from __future__ import annotations

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from labeling import json_safety


class BoundedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON parse error - nested deeper than {json_safety.MAX_DEPTH} levels.") from None
        try:
            json_safety.require_depth(data)
        except json_safety.TooDeep as exc:
            raise ParseError(f"JSON parse error - {exc.msg}.") from None
        return data
