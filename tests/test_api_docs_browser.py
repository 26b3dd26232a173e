"""The API's documentation pages render in Chromium under the Content-Security-Policy (no inline script)."""
from __future__ import annotations

import pytest

from tests.browser import chromium_page, log_in


@pytest.mark.browser
def test_swagger_ui_and_redoc_render_under_the_policy(live_server, transactional_db, make_user):
    make_user("docs-reader", password="docs-pw-123")
    with chromium_page() as page:  # fails on any CSP refusal
        log_in(page, live_server.url, "docs-reader", "docs-pw-123")
        page.goto(f"{live_server.url}/api/schema/swagger/")
        page.wait_for_selector("#swagger-ui .info .title")
        swagger_title = page.locator("#swagger-ui .info .title").text_content()
        page.goto(f"{live_server.url}/api/schema/redoc/")
        page.wait_for_selector("h1")
        redoc_title = page.locator("h1").first.text_content()
    assert "Tagrank API" in swagger_title and "Tagrank API" in redoc_title
