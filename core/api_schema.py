"""The OpenAPI schema lists every status each operation can give: a drf-spectacular postprocessing hook.

Besides what each view declares, an operation under /api/ can be answered by the layers in front of it, always
with the API's error (``ErrorSerializer``): 400 when it reads a query string or a body, 401 when it needs a
caller, 404 when its path has parameters (a value that does not match its converter is no route) or it is a
paged list (a page that does not exist), 413 when it
takes a body (``TAGRANK_MAX_REQUEST_BYTES``) and 414 for a URI over ``TAGRANK_MAX_URI_BYTES``.
"""
from __future__ import annotations

ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
METHODS = ("get", "put", "post", "patch", "delete")
DESCRIPTIONS = {
    "400": "The query string or body is not valid.",
    "401": "No valid token or session.",
    "404": "No such route or object.",
    "413": "The request body is over the limit.",
    "414": "The URI is over the limit.",
}


def statuses_of(path: str, operation: dict) -> list[str]:
    parameters = operation.get("parameters", [])
    statuses = ["414"]
    if operation.get("requestBody") or any(p.get("in") == "query" for p in parameters):
        statuses.append("400")
    if operation.get("security", [{}]) != [{}] and {} not in operation.get("security", []):
        statuses.append("401")
    if "{" in path or any(p.get("in") == "query" and p.get("name") in ("page", "cursor") for p in parameters):
        statuses.append("404")  # no route for the value, or no such page of a list
    if operation.get("requestBody"):
        statuses.append("413")
    return statuses


def complete_error_responses(result: dict, generator, request, public) -> dict:
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/"):
            continue
        for method in METHODS:
            operation = operations.get(method)
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            for status in statuses_of(path, operation):
                responses.setdefault(status, {"content": ERROR, "description": DESCRIPTIONS[status]})
    return result
