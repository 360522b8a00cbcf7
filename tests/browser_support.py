"""What the Playwright browser tests share: Debian's Chromium, a watched tab, screenshots.

``open_tab`` launches headless Chromium (``chromium_path``) on the live server and yields a
``BaseTab`` (or a subclass) that records what the page logged and fetched; ``assert_clean``
then checks there were no console errors (except the expected error pages), no failed
requests and nothing fetched from another host. ``screenshot`` saves a full-page PNG into
``tmp_path`` and, when ``INFOMEDIARY_SCREENSHOT_DIR`` is set, there too.

pytest does not rewrite the asserts of this helper module, so each one says what it saw.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from playwright.sync_api import (
    ConsoleMessage,
    Error,
    Page,
    Request,
    Response,
    ViewportSize,
    sync_playwright,
)

HOST = "127.0.0.1"
VIEWPORT: ViewportSize = {"width": 1280, "height": 900}
SCREENSHOT_ENV = "INFOMEDIARY_SCREENSHOT_DIR"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: What Chromium logs to the console for every 4xx/5xx response, the main document's too.
HTTP_ERROR_RE = re.compile(r"^Failed to load resource: the server responded with a status of (\d+)")


@dataclass
class BaseTab:
    """One browser page on the live server, with what it logged and fetched."""

    page: Page
    base_url: str
    console_errors: list[tuple[str, str]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    error_statuses: list[tuple[int, str]] = field(default_factory=list)
    expected_statuses: list[int] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base_url + path

    def goto(self, path: str) -> None:
        self.page.goto(self.url(path))

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append((message.text, str(message.location.get("url"))))

    def on_page_error(self, error: Error) -> None:
        self.console_errors.append((f"uncaught {error.name}: {error.message}", self.page.url))

    def on_response(self, response: Response) -> None:
        if response.status >= 400:
            self.error_statuses.append((response.status, response.url))

    def on_request_failed(self, request: Request) -> None:
        # ERR_ABORTED is the browser cancelling a load itself: the favicon when the page
        # navigates away first, or a form response that turns into a download.
        if request.failure == "net::ERR_ABORTED":
            return
        if self.tolerates_failure(request):
            return
        self.failed_requests.append(f"{request.method} {request.url}: {request.failure}")

    def tolerates_failure(self, request: Request) -> bool:
        """Whether a failed request (other than ERR_ABORTED) is expected: none here."""
        return False

    def foreign_requests(self) -> list[str]:
        """Every URL the page asked for from anywhere but this server."""
        server = urlsplit(self.base_url)
        return [
            url
            for url in self.requests
            if (urlsplit(url).hostname, urlsplit(url).port) != (HOST, server.port)
        ]

    def assert_foreign(self, foreign: list[str]) -> None:
        """Nothing fetched from another host (a subclass may allow what it intercepts)."""
        assert foreign == [], foreign

    def assert_clean(self) -> None:
        """No console errors (except the expected error pages), nothing fetched elsewhere."""
        statuses = sorted(status for status, _ in self.error_statuses)
        assert statuses == sorted(self.expected_statuses), (
            f"error responses {self.error_statuses}, expected statuses {self.expected_statuses}"
        )
        unexpected = []
        for text, url in self.console_errors:
            match = HTTP_ERROR_RE.match(text)
            if match is None or (int(match.group(1)), url) not in self.error_statuses:
                unexpected.append(f"{text} ({url})")
        assert unexpected == [], unexpected
        assert self.failed_requests == [], self.failed_requests
        self.assert_foreign(self.foreign_requests())
        # The page really was styled, from this server.
        assert self.url("/static/app.css") in self.requests, self.requests


TabT = TypeVar("TabT", bound=BaseTab)


@contextmanager
def open_tab(
    tab_type: type[TabT], base_url: str, chromium_path: str, extra_args: Sequence[str] = ()
) -> Iterator[TabT]:
    """Chromium with one tab on ``base_url``, its events wired to a ``tab_type``; closed after."""
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium_path, args=[*CHROMIUM_ARGS, *extra_args]
        )
        try:
            context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
            page = context.new_page()
            result = tab_type(page, base_url)
            context.on("request", lambda request: result.requests.append(request.url))
            context.on("requestfailed", result.on_request_failed)
            page.on("console", result.on_console)
            page.on("pageerror", result.on_page_error)
            page.on("response", result.on_response)
            yield result
            context.close()
        finally:
            browser.close()


def screenshot(tab: BaseTab, tmp_path: Path, name: str) -> Path:
    """Full-page PNG into tmp_path, and into $INFOMEDIARY_SCREENSHOT_DIR when set."""
    path = tmp_path / f"{name}.png"
    tab.page.mouse.move(0, 0)  # no hover effect in the picture
    tab.page.screenshot(path=path, full_page=True)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{name}: not a PNG file"
    width, height = struct.unpack(">II", data[16:24])
    assert width == VIEWPORT["width"], f"{name}: the page is {width}px wide, wider than the window"
    assert height >= VIEWPORT["height"] // 2, f"{name}: the page is only {height}px high"
    target = os.environ.get(SCREENSHOT_ENV)
    if target:
        folder = Path(target)
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, folder / f"{name}.png")
    return path


#: A phone's window: every flow is also tested at this width.
NARROW: ViewportSize = {"width": 390, "height": 844}


def assert_fits(page: Page) -> None:
    """Nothing on the page is wider than the window: no sideways scrolling (measured once the
    page is idle, after any request a script of the page makes)."""
    page.wait_for_load_state("networkidle")
    wide = page.evaluate("document.documentElement.scrollWidth")
    window = page.evaluate("window.innerWidth")
    assert wide <= window, f"the page is {wide}px wide in a {window}px window"
