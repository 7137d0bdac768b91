"""Headless Chromium (Debian's package) driven by Playwright, for the designer's browser tests.

The fixtures `browser` and `page` are registered once, by tests/conftest.py.

No browser is downloaded: Playwright launches /usr/bin/chromium. Without it the tests skip, and
under CI=true they fail. Screenshots go to test-artifacts/ (kept by CI, ignored by git).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
IN_CI = os.environ.get("CI", "").lower() == "true"
# Flags the machine needs: no sandbox as root, and no background calls to Google's hosts,
# which this closed network refuses (see the machine notes).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]


def chromium_path() -> str:
    """The Chromium executable, or skip (fail in CI) when it is not installed."""
    path = os.environ.get("IOC_TEST_CHROMIUM") or shutil.which("chromium")
    if not path:
        message = ("Debian's chromium is not installed (make test installs it as root: "
                   "apt-get install chromium)")
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh page (own cookies) that fails the test on any JavaScript error."""
    context = browser.new_context(viewport={"width": 1500, "height": 1000}, locale="vi-VN")
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.set_default_timeout(15_000)
    yield tab
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def screenshot(tab, name: str) -> Path:
    """Keep a full-page screenshot as a test artifact."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    tab.screenshot(path=str(path), full_page=True)
    return path


def log_in(tab, base_url: str, username: str, password: str = "password-123") -> None:
    """Sign in through the login page."""
    tab.goto(f"{base_url}/login")
    tab.fill("#username", username)
    tab.fill("#password", password)
    tab.click("button[type=submit]")
    tab.wait_for_url(lambda url: "/login" not in url)


PHONE = {"width": 390, "height": 844}


def overflow(tab) -> int:
    """How many pixels the page is wider than the window (0 when nothing scrolls sideways)."""
    return tab.evaluate("document.documentElement.scrollWidth - window.innerWidth")
