"""Media-less mode in real pages: the warning, the routing gate, the urgent media_lost notice.

The media CCP is a separate `/demo/media` page (role `media`), as in production a separate tab
or window carries the audio.
"""

from typing import Any

import pytest

from tests.browser.pages import (
    ConnectPage,
    Screenshot,
    TabPage,
    connected_call,
    eventually,
    settle,
)

pytestmark = pytest.mark.browser


def _open_media(context: Any, base: str, agent: str) -> Any:
    page = context.new_page()
    page.goto(f"{base}/demo/media?agent={agent}")
    page.wait_for_function("() => window.sb && window.sb.client.state === 'open'")
    return page


def test_media_less_warning_and_media_lost_during_a_call(
    daemon_with: Any, context: Any, agent: str, screenshot: Screenshot
) -> None:
    daemon = daemon_with(media_less=True)
    connect = ConnectPage.open(context, daemon.base, agent)
    tabs = [TabPage.open(context, daemon.base, agent) for _ in range(2)]

    # No media CCP: every embedded tab warns; with gate "warn" the agent state is left alone.
    for tab in tabs:
        eventually(tab.warning, what="the media-less warning")
        assert "not open" in tab.warning_text()
        assert tab.page.locator("#media-warning").is_visible()
    assert all(t.set_state_calls() == [] for t in tabs)

    # Opening the media CCP clears the warning.
    media = _open_media(context, daemon.base, agent)
    eventually(lambda: all(t.warning() is None for t in tabs), what="the warning to clear")
    assert not tabs[0].page.locator("#media-warning").is_visible()

    # A connected call: the media CCP is told which contact it carries.
    contact_id, owner, _ = connected_call(daemon, connect, tabs, "+441632960201")
    eventually(
        lambda: media.evaluate("sb.ccp.activeContact") == contact_id,
        what="the media CCP's active contact",
    )
    assert media.evaluate("sb.ccp.status.in_call") is True

    # The media CCP goes away mid-call: the owner gets an urgent notice, once; observers none.
    media.close()
    lost = eventually(
        lambda: [n for n in owner.notices() if n["code"] == "media_lost"],
        what="the urgent media_lost notice",
    )
    assert lost[0]["level"] == "urgent"
    assert lost[0]["contact_id"] == contact_id
    assert owner.page.locator("#urgent").is_visible()
    eventually(owner.warning, what="the warning to come back")
    observers = [t for t in tabs if t is not owner]
    assert settle(lambda: [n for t in observers for n in t.notices()], quiet=1.0) == []
    assert len([n for n in owner.notices() if n["code"] == "media_lost"]) == 1
    screenshot(owner.page, "tab-media-lost", full_page=True)


def test_media_less_block_gate_sets_the_ccp_not_routable_until_ready(
    daemon_with: Any, context: Any, agent: str
) -> None:
    daemon = daemon_with(media_less=True, media_gate="block")
    ConnectPage.open(context, daemon.base, agent)  # plays Connect: shares the agent state
    tabs = [TabPage.open(context, daemon.base, agent) for _ in range(2)]

    for tab in tabs:
        eventually(tab.warning, what="the media-less warning")
        assert "not routable" in tab.warning_text()
    eventually(
        lambda: all(t.agent_state()["type"] == "not_routable" for t in tabs),
        what="the CCP to go not routable",
    )
    calls = [name for t in tabs for name in t.set_state_calls()]
    assert calls and set(calls) == {"Media CCP missing"}, calls

    media = _open_media(context, daemon.base, agent)
    eventually(lambda: all(t.warning() is None for t in tabs), what="the warning to clear")
    eventually(
        lambda: all(t.agent_state()["name"] == "Available" for t in tabs),
        what="the CCP to be routable again",
    )

    # Not ready (microphone withdrawn) blocks again, without closing the page.
    media.evaluate(
        "() => { const box = document.getElementById('microphone'); box.checked = false;"
        " box.dispatchEvent(new Event('change')); }"
    )
    eventually(
        lambda: all(t.agent_state()["type"] == "not_routable" for t in tabs),
        what="the CCP to be blocked again",
    )
    # One tab's setState reaches the others through the CCP before their own media message.
    eventually(lambda: "not ready" in tabs[0].warning_text(), what="the tab to say why")
