"""Real Chromium against a real daemon process: the demo pages, the JS client, the sandbox.

The daemon runs as `python -m daemon.cli serve` with its embedded Zendesk sandbox; the pages
come from its ops HTTP app (`/demo`, `/demo/tab`, `/demo/media`, `/js/...`). Chromium is
Debian's `/usr/bin/chromium`, driven by Playwright's Python package (never `playwright
install`). Every test uses its own agent id, so tests sharing a daemon do not see each other.
"""

import importlib.util
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.daemon_process import ROOT, Daemon, start_daemon
from tests.browser.pages import Screenshot

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Committed (the README shows them) and rewritten by every run, so they stay current.
#: The README's pictures, refreshed by `SWITCHBOARD_UPDATE_SCREENSHOTS=1 bash tests/run.sh
#: tests/browser`; an ordinary run writes to artifacts/ so a checkout stays clean.
README_SCREENSHOTS = ROOT / "tests" / "browser" / "screenshots"
SCREENSHOTS = (
    README_SCREENSHOTS
    if os.environ.get("SWITCHBOARD_UPDATE_SCREENSHOTS")
    else ROOT / "artifacts" / "screenshots"
)
SCREENSHOT_MAX_BYTES = 300_000

HAS_PLAYWRIGHT = importlib.util.find_spec("playwright") is not None

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = None
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is absent: install Debian's chromium package to run browser tests"
    elif not HAS_PLAYWRIGHT:
        reason = "the playwright Python package is not installed (pip install playwright)"
    if reason is None:
        return
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon with media-less mode off, shared by the tests that do not change settings."""
    d = start_daemon(tmp_path_factory.mktemp("daemon"))
    yield d
    d.stop()


@pytest.fixture
def daemon_with(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """A daemon of the test's own, with settings (`media_less=True, media_gate="block"`)."""
    started: list[Daemon] = []

    def start(**settings: Any) -> Daemon:
        d = start_daemon(tmp_path, **settings)
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()


# -- the browser --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator["Browser"]:
    """Module-scoped: Playwright's sync API keeps an event loop running in this thread while
    it is open, which would break every asyncio test collected after the browser tests."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def context(browser: "Browser") -> Iterator["BrowserContext"]:
    """One browser profile: its pages share BroadcastChannels, not sessionStorage."""
    ctx = browser.new_context(viewport={"width": 1500, "height": 1000})
    ctx.set_default_timeout(15_000)
    yield ctx
    ctx.close()


@pytest.fixture
def agent() -> str:
    return "agent-" + secrets.token_hex(4)


@pytest.fixture
def screenshot() -> Screenshot:
    """`screenshot(page_or_locator, "name", **options)` saves SCREENSHOTS/name.png. The README
    shows them, so each must stay under SCREENSHOT_MAX_BYTES."""

    def save(target: Any, name: str, **options: Any) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        target.screenshot(path=str(path), **options)
        size = path.stat().st_size
        assert size < SCREENSHOT_MAX_BYTES, f"{path.name} is {size} bytes: show less"
        return path

    return save
