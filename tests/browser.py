"""Helpers for the Playwright tests: a headless Chromium and the login form.

The browser is the system's chromium where there is one (Debian's, which `make test` installs with apt-get
as root), else the one Playwright's own installer put in its cache (platform/test-prerequisites.sh)."""
from __future__ import annotations

import shutil
import time
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")  # None: Playwright's own
MISSING = "Chromium is not installed: `make test` installs it (platform/test-prerequisites.sh)"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
OUTPUT = Path(__file__).resolve().parents[1] / "test-output"  # screenshots


@contextmanager
def chromium_page(width: int = 1280, height: int = 900):
    """A fresh headless Chromium page.

    Playwright's sync API runs an event loop in this thread, and Django refuses database calls from a
    thread with a running loop: tests query the database before or after this block, not inside it.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        assert CHROMIUM or Path(playwright.chromium.executable_path).exists(), MISSING
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": width, "height": height})
        # Generous: CI shares two cores between the server, the worker tests and the browser.
        page.set_default_timeout(30_000)
        # Every page runs under the Content-Security-Policy (config/settings.py): anything it refuses (an inline
        # script, a handler attribute, a script from elsewhere) fails the test that loaded the page. Remote
        # images are refused on purpose and break nothing (Redoc's footer links its logo from Redocly's CDN).
        refused = []
        page.on("console", lambda message: refused.append(message.text)
                if "Content Security Policy" in message.text and not message.text.startswith("Loading the image 'https://")
                else None)
        try:
            yield page
            assert not refused, "the Content-Security-Policy refused:\n" + "\n".join(refused)
        finally:
            browser.close()


def log_in(page, base_url: str, username: str, password: str) -> None:
    """Log in through the form; the project list is the landing page."""
    page.goto(f"{base_url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/")


def wait_until(page, predicate: str, arg=None, timeout_s: float = 30.0) -> None:
    """Wait until the JavaScript function ``predicate(arg)`` is true on the page. Playwright's own
    ``wait_for_function`` polls by evaluating a string inside the page, which the Content-Security-Policy
    refuses (no 'unsafe-eval'); ``page.evaluate`` goes over the DevTools protocol, which the policy does
    not govern, so this polls from here."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(predicate, arg):
        if time.monotonic() > deadline:
            raise TimeoutError(f"still false after {timeout_s} s: {predicate}")
        page.wait_for_timeout(50)
