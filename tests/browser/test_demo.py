"""The demo page as an agent uses it: grace countdown, takeover, finished contacts, frames,
commands offered, pop counts and the media-less control (issue 10).

Each test drives `/demo?tabs=N` (the Zendesk tabs are iframes of the page, as shown to a
visitor) against a real daemon, and saves the screenshots the README shows.
"""

import re
from functools import partial
from typing import Any

import pytest

from tests.browser.daemon_process import Daemon
from tests.browser.pages import (
    ConnectPage,
    DemoPage,
    Screenshot,
    TabPage,
    connected_call,
    eventually,
    owner_of,
    settle,
)

pytestmark = pytest.mark.browser

GRACE = 8  # long enough to watch the countdown on a loaded machine


def _seconds(text: str) -> int:
    match = re.fullmatch(r"(\d+) s", text.strip())
    assert match, f"not a countdown: {text!r}"
    return int(match.group(1))


def _buttons(card: Any) -> list[str]:
    names: list[str] = card.locator("button").all_inner_texts()
    return [n.strip() for n in names]


def test_closed_owner_counts_down_then_the_heir_shows_the_contact(
    daemon_with: Any, context: Any, agent: str, screenshot: Screenshot
) -> None:
    daemon = daemon_with(grace_seconds=GRACE)
    demo = DemoPage.open(context, daemon.base, agent, tabs=3)
    contact_id = demo.place("inbound", number="+441632960301", attributes={"customer_name": "Ada"})
    demo.call(contact_id, "accept")
    ticket = eventually(lambda: daemon.tickets_for(contact_id), what="the ticket")[0]
    owner = demo.owner_slot(contact_id)
    eventually(lambda: demo.workspace(owner) == f"Ticket #{ticket['id']}", what="the pop")
    survivors = [s for s in demo.open_slots() if s != owner]
    assert [demo.workspace(s) for s in survivors] == ["Home", "Home"]
    demo.page.wait_for_selector(f'.ticket[data-ticket-id="{ticket["id"]}"]')  # for the pictures

    demo.page.evaluate("slot => demo.closeTab(slot)", owner)

    # While the owner is away every survivor, and the daemon view, count the grace down.
    in_tab: list[int] = []
    in_view: list[int] = []
    shot = False
    while not any(demo.role(s, contact_id) == "owner" for s in survivors):
        tab_countdown = demo.card(survivors[0], contact_id).locator(".countdown")
        view_countdown = demo.page.locator(
            f'#daemon-view tr[data-contact-id="{contact_id}"] .countdown'
        )
        if tab_countdown.count():
            in_tab.append(_seconds(tab_countdown.inner_text()))
        if view_countdown.count():
            in_view.append(_seconds(view_countdown.inner_text()))
        if in_tab and in_view and not shot:
            screenshot(demo.page, "demo-grace", full_page=True)
            shot = True
        assert len(in_tab) < 400, "no failover"
        demo.page.wait_for_timeout(200)
    for values in (in_tab, in_view):
        assert len(set(values)) >= 2, f"the countdown did not move: {values}"
        assert values == sorted(values, reverse=True), f"the countdown went up: {values}"
        assert values[0] <= GRACE

    # The heir takes over with a new epoch, and its workspace shows the call's ticket: the
    # daemon popped it to the old owner only, so this is the takeover, not a pop.
    heirs = [s for s in survivors if demo.role(s, contact_id) == "owner"]
    assert len(heirs) == 1
    heir = heirs[0]
    eventually(lambda: demo.workspace(heir) == f"Ticket #{ticket['id']}", what="the heir's ticket")
    assert demo.frame(heir).evaluate("sb.host.pops.length") == 0
    card = demo.card(heir, contact_id)
    eventually(lambda: card.locator(".role").inner_text() == "OWNER", what="OWNER shown")
    assert card.locator(".countdown").count() == 0, "no countdown once taken over"
    assert "Pause recording" in _buttons(card)
    eventually(lambda: demo.owns_badges().get(heir) == "owns 1", what="the heir's owns badge")
    other = next(s for s in survivors if s != heir)
    assert demo.workspace(other) == "Home"
    assert demo.owns_badges()[other] == ""
    eventually(
        lambda: demo.page.locator("#daemon-view .countdown").count() == 0,
        what="the daemon view's countdown to go",
    )
    screenshot(demo.page, "demo-failover", full_page=True)


def test_finished_contacts_are_shown_finished_and_not_counted_as_owned(
    daemon: Daemon, context: Any, agent: str
) -> None:
    demo = DemoPage.open(context, daemon.base, agent, tabs=2)
    first = demo.place("inbound", number="+441632960311")
    demo.call(first, "accept")
    eventually(lambda: daemon.tickets_for(first), what="the first call's ticket")
    demo.call(first, "end")
    second = demo.place("inbound", number="+441632960312")
    demo.call(second, "accept")
    owner = demo.owner_slot(second)

    # The daemon still keeps the finished call (retention), and every tab shows it finished.
    eventually(
        lambda: (
            {c["contact_id"]: c["state"] for c in daemon.agent(agent)["contacts"]}.get(first)
            == "acw"
        ),
        what="the first call in after-call work",
    )
    slots = demo.open_slots()
    eventually(
        lambda: all(demo.card(s, first).locator(".role").inner_text() == "finished" for s in slots),
        what="the first call shown finished in every tab",
    )
    for slot in slots:
        card = demo.card(slot, first)
        assert "finished" in (card.get_attribute("class") or "")
        assert _buttons(card) == [], "no commands on a finished contact"
    assert demo.card(owner, second).locator(".role").inner_text() == "OWNER"
    badges = eventually(
        lambda: (b := demo.owns_badges()) and sorted(b.values()) == ["", "owns 1"] and b,
        what="one live call owned in all",
    )
    assert badges[owner] == "owns 1"

    demo.call(second, "end")
    eventually(lambda: set(demo.owns_badges().values()) == {""}, what="no tab owns a finished call")


def test_tab_frames_grow_with_their_contacts(
    daemon: Daemon, context: Any, agent: str, screenshot: Screenshot
) -> None:
    demo = DemoPage.open(context, daemon.base, agent, tabs=2)
    ids = [demo.place("inbound", number=f"+44163296032{i}") for i in range(5)]
    ids.append(demo.place("chat"))
    demo.call(ids[0], "accept")
    demo.call(ids[0], "end")
    demo.call(ids[-1], "accept")

    def whole(slot: str) -> bool:
        cards = demo.frame(slot).locator(".contact")
        if cards.count() != len(ids):
            return False
        frame_box = demo.iframe(slot).bounding_box()
        last = demo.frame(slot).locator("#log").bounding_box()
        assert frame_box is not None and last is not None
        return last["y"] + last["height"] <= frame_box["y"] + frame_box["height"] + 1

    for slot in demo.open_slots():
        eventually(partial(whole, slot), what=f"tab {slot} shown whole")
        inner = demo.frame(slot).evaluate("document.documentElement.scrollHeight")
        outer = demo.iframe(slot).evaluate("f => f.clientHeight")
        assert inner <= outer + 1, f"tab {slot}: {inner}px of content in a {outer}px frame"
        assert outer > 470, "six contacts do not fit the old fixed height: the frame grew"
    demo.page.wait_for_timeout(300)
    # The tabs column only: the whole page with six contacts is too large a PNG to commit.
    screenshot(demo.page.locator("#tabs-column"), "demo-contacts")


def test_commands_offered_are_those_the_contact_allows(
    daemon: Daemon, context: Any, agent: str
) -> None:
    connect = ConnectPage.open(context, daemon.base, agent)
    tabs = [TabPage.open(context, daemon.base, agent) for _ in range(2)]
    call = connect.place(
        "inbound",
        number="+441632960331",
        attributes={"ticket_assignment": "agent", "pause_recording": "true"},
    )
    eventually(lambda: all(t.role(call) for t in tabs), what="every tab sees the call")
    connect.accept(call)
    chat = connect.place("chat")
    eventually(lambda: all(t.role(chat) for t in tabs), what="every tab sees the chat")
    connect.accept(chat)

    call_owner, chat_owner = owner_of(tabs, call), owner_of(tabs, chat)
    call_card = call_owner.page.locator(f'.contact[data-contact-id="{call}"]')
    chat_card = chat_owner.page.locator(f'.contact[data-contact-id="{chat}"]')
    eventually(lambda: call_owner.view(call)["state"] == "connected", what="the call connected")
    assert "Pause recording" in _buttons(call_card)
    assert "Create ticket" in _buttons(call_card), "agent mode, no ticket yet"
    eventually(lambda: chat_owner.view(chat)["state"] == "connected", what="the chat connected")
    assert not {"Pause recording", "Resume recording"} & set(_buttons(chat_card)), "a chat"
    for t in tabs:  # observers are offered nothing
        for cid in (call, chat):
            if t.role(cid) == "observer":
                assert _buttons(t.page.locator(f'.contact[data-contact-id="{cid}"]')) == []

    call_card.get_by_role("button", name="Create ticket").click()
    eventually(lambda: call_owner.view(call).get("ticket_id"), what="the created ticket")
    eventually(lambda: "Create ticket" not in _buttons(call_card), what="Create ticket to go")
    assert "Pause recording" in _buttons(call_card)
    assert len(settle(lambda: daemon.tickets_for(call), quiet=1.0)) == 1

    # Pausing goes the production path: the embedded Amazon Connect confirms it.
    call_card.get_by_role("button", name="Pause recording").click()
    eventually(lambda: call_owner.view(call).get("recording_paused"), what="Connect's pause")
    eventually(lambda: "Resume recording" in _buttons(call_card), what="the resume button")


def test_sandbox_panel_counts_the_pops_the_tabs_performed(
    daemon: Daemon, context: Any, agent: str
) -> None:
    connect = ConnectPage.open(context, daemon.base, agent)  # the demo page, no tabs of its own
    tabs = [TabPage.open(context, daemon.base, agent) for _ in range(2)]
    contact_id, owner, ticket = connected_call(daemon, connect, tabs, "+441632960341")
    pops = settle(owner.pops)
    assert pops and all(t.pops() == [] for t in tabs if t is not owner)

    count = connect.page.locator("#tab-pops .count")
    eventually(lambda: count.inner_text() == str(len(pops)), what="the panel's pop count")
    panel = connect.page.locator("#tab-pops").inner_text()
    assert f"ticket #{ticket['id']} ({contact_id})" in panel
    # With POP_VIA=tab Zendesk's API sees none, and the panel says so rather than "0 pop(s)".
    assert daemon.zendesk()["pops"] == []
    eventually(
        lambda: (
            "0 pop(s) through Zendesk's API" in connect.page.locator("#zendesk-view").inner_text()
        ),
        what="the API pop count",
    )

    owner.reload()  # a reload resumes without popping again: the count stays
    assert settle(lambda: count.inner_text(), quiet=1.5) == str(len(pops))


def test_media_less_control_says_it_sets_the_whole_agent_and_does(
    daemon: Daemon, context: Any, agent: str
) -> None:
    demo = DemoPage.open(context, daemon.base, agent, tabs=1)
    note = demo.page.locator("#media-less-note").inner_text()
    assert "whole agent" in note and "last tab" in note

    def media_less() -> bool:
        return bool(daemon.agent(agent)["media"]["media_less"])

    def warnings(*slots: str) -> list[str | None]:
        return [demo.frame(s).evaluate("sb.host.warning") for s in slots]

    assert not media_less()
    demo.page.select_option("#media-less", "1")
    assert not media_less(), "choosing changes nothing until a tab says hello"
    demo.page.click("#add-tab")
    demo.wait_open("2")
    eventually(media_less, what="media-less on")
    # As the note says: the earlier tab is media-less too (it warns: no media CCP).
    eventually(lambda: all(warnings("1", "2")), what="the media-less warning in both tabs")
    eventually(lambda: "on" in demo.page.locator("#media-less-now").inner_text(), what="now on")

    demo.page.select_option("#media-less", "0")
    demo.page.click("#add-tab")
    demo.wait_open("3")
    eventually(lambda: not media_less(), what="media-less off: the last hello wins")
    eventually(lambda: warnings("1", "2", "3") == [None, None, None], what="no warning in any tab")
    eventually(lambda: "off" in demo.page.locator("#media-less-now").inner_text(), what="now off")
