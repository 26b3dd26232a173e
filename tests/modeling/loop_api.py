"""A simulated rater that judges pairs through the REST API, as the rating page does."""
from __future__ import annotations

import uuid


def rate_through_api(client, project, count: int, quality_of) -> list[dict]:
    """Lease ``count`` pairs with GET next-pair and judge each with POST comparisons.

    ``quality_of(image_id)`` is the simulated rater's hidden quality; the higher one wins. Returns the
    API's answers; fails when the API refuses a judgment.
    """
    answers = []
    base = f"/api/v1/projects/{project.slug}"
    for _ in range(count):
        pair = client.get(f"{base}/next-pair/")
        assert pair.status_code == 200, (pair.status_code, pair.content[:300])
        body = pair.json()
        winner = "a" if quality_of(body["a"]["id"]) > quality_of(body["b"]["id"]) else "b"
        stored = client.post(
            f"{base}/comparisons/",
            {"lease": body["lease"], "winner": winner, "client_key": uuid.uuid4().hex, "response_ms": 900},
            content_type="application/json",
        )
        assert stored.status_code == 201, (stored.status_code, stored.content[:300])
        answers.append(stored.json())
    return answers
