"""A real browser on the Airflow UI: Debian's Chromium driven by Playwright, logged in through the login page.

Playwright never downloads a browser here (scripts/env.sh sets PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD): it launches
the Chromium that `make setup` installs, headless, with what a sandboxed CI machine needs.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
TIMEOUT_MS = 60_000


def chromium_path() -> str:
    path = os.environ.get("CLICKSTREAM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        raise FileNotFoundError(f"no Chromium at {path}: `make setup` installs Debian's chromium")
    return path


@contextmanager
def browser_page(width: int = 1440, height: int = 1000) -> Iterator[tuple[Any, list[str]]]:
    """A fresh page in a headless Chromium, and the list its uncaught script errors go to; the browser is
    closed afterwards."""
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": width, "height": height})
            context.set_default_timeout(TIMEOUT_MS)
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            yield page, errors
        finally:
            browser.close()


def log_in(page: Any, base: str, username: str, password: str) -> None:
    """Through the real login page (Airflow's simple auth manager), as a person would."""
    page.goto(f"{base}/")
    page.wait_for_url("**/auth/login**")
    page.locator("input[name=username]").fill(username)
    page.locator("input[name=password]").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/auth/login" not in url)


def rows(page: Any, test_id: str, *attributes: str) -> list[dict[str, str]]:
    """Each element with ``data-testid=test_id``, as its ``data-<attribute>`` values."""
    return page.locator(f"[data-testid={test_id}]").evaluate_all(
        "(nodes, names) => nodes.map(n => Object.fromEntries(names.map(a => [a, n.getAttribute('data-' + a)])))",
        list(attributes),
    )


def screenshot_whole(page: Any, selector: str, path: Path) -> None:
    """A screenshot of the page with all of ``selector`` in it: the Airflow UI scrolls its content inside the
    page, so the viewport grows to the element's height first (then goes back)."""
    size = page.viewport_size
    bottom = page.locator(selector).evaluate("(node) => node.getBoundingClientRect().top + node.scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], int(bottom) + 48)})
    page.wait_for_timeout(300)  # the charts follow their boxes' new sizes
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(size)
