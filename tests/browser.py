"""Headless Chromium for the browser tests: Debian's `chromium`, driven by Playwright.

Playwright's own browser download is never used (these machines cannot fetch
it); `make browser` installs Debian's package. Without it the tests skip and
say how to get it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

# Flags for a machine with no network beyond loopback and no sandbox for root.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


def chromium_path() -> str | None:
    return (
        os.environ.get("CALLVAULT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )


@contextmanager
def browser_page(width: int = 1280, height: int = 900) -> Iterator[Any]:
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium: `make browser` installs Debian's chromium (or set CALLVAULT_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            yield page
        finally:
            browser.close()
