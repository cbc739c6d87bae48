"""Page objects for the demo pages, and polling helpers, for the browser tests."""

import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the module imports without playwright (the tests are then skipped)
    from playwright.sync_api import BrowserContext, Frame, Locator, Page

    from tests.browser.daemon_process import Daemon


Screenshot = Callable[..., Path]  # the `screenshot` fixture: (page or locator, name, **options)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def eventually(check: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def settle(check: Callable[[], Any], quiet: float = 2.0, timeout: float = 20.0) -> Any:
    """Poll until `check`'s value has not changed for `quiet` seconds; return it."""
    deadline = time.monotonic() + timeout
    value = check()
    since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = check()
        if now != value:
            value, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return value


class TabPage:
    """`/demo/tab`: one Zendesk tab with the embedded CCP, running the real JS client."""

    def __init__(self, page: "Page") -> None:
        self.page = page

    @classmethod
    def open(cls, context: "BrowserContext", base: str, agent: str, query: str = "") -> "TabPage":
        page = context.new_page()
        page.goto(f"{base}/demo/tab?agent={agent}{query}")
        tab = cls(page)
        tab.wait_open()
        return tab

    def js(self, expression: str, arg: Any = None) -> Any:
        return self.page.evaluate(expression, arg)

    def wait_open(self) -> None:
        self.page.wait_for_function("() => window.sb && window.sb.client.state === 'open'")

    def reload(self) -> None:
        self.page.reload()
        self.wait_open()

    @property
    def tab_id(self) -> str:
        tab_id: str = self.js("sb.client.tabId")
        return tab_id

    @property
    def state(self) -> str:
        state: str = self.js("sb.client.state")
        return state

    def role(self, contact_id: str) -> str | None:
        role: str | None = self.js("id => sb.client.roleFor(id)", contact_id)
        return role

    def contact(self, contact_id: str) -> dict[str, Any] | None:
        view: dict[str, Any] | None = self.js("id => sb.client.contact(id) || null", contact_id)
        return view

    def view(self, contact_id: str) -> dict[str, Any]:
        """The contact as this tab knows it; the tab must know it."""
        view = self.contact(contact_id)
        assert view is not None, f"this tab does not know {contact_id}"
        return view

    def warning_text(self) -> str:
        return self.warning() or ""

    def pops(self) -> list[dict[str, Any]]:
        """The pops this page instance acted on (a reload starts a new list)."""
        pops: list[dict[str, Any]] = self.js(
            "sb.host.pops.map(p => ({target: p.target, id: p.id ?? null, query: p.query ?? null,"
            " contact_id: p.contactId, pos: p.pos ? `${p.pos.epoch}:${p.pos.seq}` : null}))"
        )
        return pops

    def notices(self) -> list[dict[str, Any]]:
        notices: list[dict[str, Any]] = self.js(
            "sb.host.notices.map(n => ({level: n.level, code: n.code, text: n.text,"
            " contact_id: n.contactId ?? null}))"
        )
        return notices

    def warning(self) -> str | None:
        warning: str | None = self.js("sb.host.warning")
        return warning

    def agent_state(self) -> dict[str, Any]:
        state: dict[str, Any] = self.js("sb.driver.agent.getState()")
        return state

    def set_state_calls(self) -> list[str]:
        calls: list[str] = self.js("sb.driver.agent.setStateCalls.map(c => c.state.name)")
        return calls

    def session_storage(self) -> dict[str, str]:
        items: dict[str, str] = self.js("Object.fromEntries(Object.entries(sessionStorage))")
        return items

    def role_shown(self, contact_id: str) -> str:
        """What the page shows the agent: OWNER or observer."""
        return self.page.locator(f'.contact[data-contact-id="{contact_id}"] .role').inner_text()


class ConnectPage:
    """`/demo?tabs=0`: the demo page with no tabs of its own, playing Amazon Connect."""

    def __init__(self, page: "Page") -> None:
        self.page = page

    @classmethod
    def open(
        cls, context: "BrowserContext", base: str, agent: str, query: str = ""
    ) -> "ConnectPage":
        page = context.new_page()
        page.goto(f"{base}/demo?agent={agent}&tabs=0{query}")
        page.wait_for_function("() => window.demo !== undefined")
        return cls(page)

    def place(self, kind: str = "inbound", **options: Any) -> str:
        contact_id: str = self.page.evaluate("o => demo.placeContact(o)", {"kind": kind, **options})
        return contact_id

    def accept(self, contact_id: str) -> None:
        self.page.evaluate("id => demo.accept(id)", contact_id)

    def end(self, contact_id: str) -> None:
        self.page.evaluate("id => demo.end(id)", contact_id)

    def clear(self, contact_id: str) -> None:
        self.page.evaluate("id => demo.clear(id)", contact_id)


def owner_of(tabs: list[TabPage], contact_id: str) -> TabPage:
    owners = eventually(
        lambda: [t for t in tabs if t.role(contact_id) == "owner"], what="an owning tab"
    )
    assert len(owners) == 1, f"{len(owners)} tabs own {contact_id}"
    owner: TabPage = owners[0]
    return owner


def connected_call(
    daemon: "Daemon", connect: ConnectPage, tabs: list[TabPage], number: str
) -> tuple[str, TabPage, dict[str, Any]]:
    """Ring every tab, accept, wait for the ticket and the owner's pop."""
    contact_id = connect.place("inbound", number=number, attributes={"customer_name": "Ada Byron"})
    eventually(lambda: all(t.role(contact_id) for t in tabs), what="every tab sees the call")
    connect.accept(contact_id)
    tickets = eventually(lambda: daemon.tickets_for(contact_id), what="the call's ticket")
    owner = owner_of(tabs, contact_id)
    eventually(owner.pops, what="the owner's pop")
    return contact_id, owner, tickets[0]


class DemoPage:
    """`/demo?tabs=N`: the whole demo page, its Zendesk tabs as iframes (one per slot)."""

    def __init__(self, page: "Page") -> None:
        self.page = page

    @classmethod
    def open(
        cls, context: "BrowserContext", base: str, agent: str, tabs: int, query: str = ""
    ) -> "DemoPage":
        page = context.new_page()
        page.goto(f"{base}/demo?agent={agent}&tabs={tabs}{query}")
        demo = cls(page)
        for slot in range(1, tabs + 1):
            demo.wait_open(str(slot))
        return demo

    def frame(self, slot: str) -> "Frame":
        """The open tab's frame. Waits through the driver: `page.frame(name=…)` only reads
        what the sync API has already processed, so polling it alone never sees a new one."""
        handle = self.page.wait_for_selector(f'.tabframe iframe[name="tab-{slot}"]')
        assert handle is not None
        frame = handle.content_frame()
        assert frame is not None, f"tab {slot} has no frame"
        return frame

    def wait_open(self, slot: str) -> None:
        self.frame(slot).wait_for_function("() => window.sb && window.sb.client.state === 'open'")

    def open_slots(self) -> list[str]:
        slots: list[str] = self.page.evaluate(
            "Array.from(demo.tabs.values()).filter(t => t.frame).map(t => t.slot)"
        )
        return slots

    def role(self, slot: str, contact_id: str) -> str | None:
        role: str | None = self.frame(slot).evaluate("id => sb.client.roleFor(id)", contact_id)
        return role

    def owner_slot(self, contact_id: str) -> str:
        owners = eventually(
            lambda: [s for s in self.open_slots() if self.role(s, contact_id) == "owner"],
            what=f"the tab owning {contact_id}",
        )
        assert len(owners) == 1, f"tabs {owners} own {contact_id}"
        slot: str = owners[0]
        return slot

    def place(self, kind: str = "inbound", **options: Any) -> str:
        contact_id: str = self.page.evaluate("o => demo.placeContact(o)", {"kind": kind, **options})
        return contact_id

    def call(self, contact_id: str, method: str) -> None:
        """`demo.accept(id)`, `demo.end(id)`, …; returns when the events have been fired."""
        self.page.evaluate(f"id => demo.{method}(id)", contact_id)

    def card(self, slot: str, contact_id: str) -> "Locator":
        return self.frame(slot).locator(f'.contact[data-contact-id="{contact_id}"]')

    def workspace(self, slot: str) -> str:
        return self.frame(slot).locator("#zendesk-open").inner_text()

    def owns_badges(self) -> dict[str, str]:
        """The "owns N" badge in each open tab's title bar (absent: owns nothing live)."""
        badges: dict[str, str] = self.page.evaluate(
            "Object.fromEntries(Array.from(document.querySelectorAll('.tabframe'))"
            ".filter(b => b.querySelector('iframe'))"
            ".map(b => [b.dataset.slot, b.querySelector('.badge.owner')?.innerText.trim() || '']))"
        )
        return badges

    def iframe(self, slot: str) -> "Locator":
        return self.page.locator(f'.tabframe[data-slot="{slot}"] iframe')
