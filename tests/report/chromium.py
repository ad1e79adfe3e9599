"""Pages opened in a real headless Chromium, as a user's browser opens them: Debian's Chromium
(CI installs it with apt) driven by Playwright, so no browser is downloaded."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import ConsoleMessage, Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
WINDOW = {"width": 1440, "height": 900}  # a laptop's browser window
IMAGES_JS = (
    "Array.from(document.images, i => "
    "({alt: i.alt, complete: i.complete, width: i.naturalWidth, height: i.naturalHeight}))"
)
# Whether a user sees an element: its centre is in the window and not covered by anything else.
IN_VIEW_JS = """el => {
  const r = el.getBoundingClientRect();
  const x = r.left + r.width / 2, y = r.top + r.height / 2;
  if (r.width === 0 || x < 0 || y < 0 || x > innerWidth || y > innerHeight) return false;
  const top = document.elementFromPoint(x, y);
  return top !== null && (el === top || el.contains(top));
}"""


def chromium_path() -> str | None:
    found = shutil.which("chromium")
    return found or (CHROMIUM if Path(CHROMIUM).exists() else None)


requires_chromium = pytest.mark.skipif(
    chromium_path() is None, reason="chromium is not installed (apt-get install chromium)"
)


@dataclass
class Browsed:
    """A page in the browser, and the errors it logged (console errors, uncaught exceptions)."""

    page: Page
    errors: list[str] = field(default_factory=list)


def _error_of(message: ConsoleMessage) -> str | None:
    return f"console.{message.type}: {message.text}" if message.type in ("error", "assert") else None


@contextmanager
def browser(timeout_ms: float = 60_000) -> Iterator[Browsed]:
    """A fresh browser profile (as a first-time visitor) with one page."""
    binary = chromium_path()
    assert binary is not None, "chromium is not installed"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=binary, args=list(ARGS))
        try:
            page = launched.new_page(viewport=WINDOW)
            page.set_default_timeout(timeout_ms)
            browsed = Browsed(page)
            page.on("console", lambda m: (e := _error_of(m)) and browsed.errors.append(e))
            page.on("pageerror", lambda exc: browsed.errors.append(f"exception: {exc}"))
            yield browsed
        finally:
            launched.close()


def in_view(page: Page, selector_or_locator: Any) -> bool:
    """Whether the element is where the user sees it, without scrolling or clicking."""
    locator = (
        page.locator(selector_or_locator) if isinstance(selector_or_locator, str) else selector_or_locator
    )
    return bool(locator.evaluate(IN_VIEW_JS))


@dataclass
class PageCheck:
    images: list[dict[str, Any]]
    errors: list[str]
    title: str


def check_page(path: Path, screenshot: Path) -> PageCheck:
    """Open a local file; return its images (as decoded) and errors, and save a full-page screenshot."""
    with browser() as browsed:
        page = browsed.page
        page.goto(path.resolve().as_uri(), wait_until="load")
        images = page.evaluate(IMAGES_JS)
        page.screenshot(path=str(screenshot), full_page=True)
        return PageCheck(images, list(browsed.errors), page.title())
