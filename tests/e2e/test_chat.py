"""Chat through the daemon: several tabs report the same messages; one transcript at the end.

Messages are deduplicated by message_id whichever tab reports them, the transcript is one
private comment written once when the chat ends, and a second chat while one is active is
refused (a notice to the owner, no ticket, no user).
"""

from tests.e2e.conftest import (
    TRANSCRIPT,
    Rig,
    chat,
    details,
    notices,
    report_all,
    settle,
    transcripts,
    until,
)

ANN = chat(attributes={"customer_email": "ann@example.org"})


async def test_transcript_once_with_messages_from_several_tabs(rig: Rig) -> None:
    uid = rig.customer("Ann Chatter", email="ann@example.org")
    await rig.start()
    tabs = [await rig.tab() for _ in range(3)]
    await report_all(tabs, "connecting", "ch-1", ANN)
    await until(lambda: all("ch-1" in t.contacts for t in tabs))
    await report_all(tabs, "connected", "ch-1", ANN)
    await until(lambda: len(rig.tickets("ch-1")) == 1)
    # Every tab's CCP sees (some of) the same messages, at different moments.
    lines = [
        ("m1", "system", "Ann joined the chat"),
        ("m2", "customer", "My parcel is late"),
        ("m3", "agent", "Let me check that for you"),
        ("m4", "bot", "Survey sent"),
    ]
    sent_at = 1_700_000_000.0
    for tab, chosen in zip(tabs, ([0, 1, 2], [1, 2, 3], [0, 3]), strict=True):
        for i in chosen:
            mid, who, text = lines[i]
            await tab.send_raw(
                {"type": "chat_message", "contact_id": "ch-1", "message_id": mid,
                 "participant": who, "text": text, "sent_at": sent_at + i}
            )  # fmt: skip
    await report_all(tabs, "ended", "ch-1", ANN)
    await rig.finished("ch-1")
    await settle()

    (ticket,) = rig.tickets()
    assert ticket["requester_id"] == uid and ticket["subject"] == "Chat with Ann Chatter"
    assert len(details(ticket)) == 1
    (transcript,) = transcripts(ticket)
    assert not transcript["public"]
    body = transcript["body"]
    for _, _, text in lines:
        assert body.count(text) == 1, body
    # in the order they were sent, each once
    positions = [body.index(text) for _, _, text in lines]
    assert positions == sorted(positions)
    assert [c["body"].splitlines()[0] for c in ticket["comments"]] == [
        "Amazon Connect Contact Details",
        TRANSCRIPT,
    ]
    assert [u["id"] for u in rig.end_users()] == [uid]


async def test_second_concurrent_chat_is_refused_with_a_notice(rig: Rig) -> None:
    uid = rig.customer("Ann Chatter", email="ann@example.org")
    await rig.start()
    tabs = [await rig.tab() for _ in range(2)]
    await report_all(tabs, "connected", "ch-1", ANN)
    await until(lambda: len(rig.tickets("ch-1")) == 1)

    bob = chat(attributes={"customer_email": "bob@example.org", "customer_name": "Bob"})
    await report_all(tabs, "connecting", "ch-2", bob)
    await until(lambda: any(n.code == "second_chat" for n in notices(tabs[0], "ch-2")))
    await report_all(tabs, "connected", "ch-2", bob)
    for tab in tabs:
        await tab.chat("ch-2", "b1", "customer", "Hello?")
    await report_all(tabs, "ended", "ch-2", bob)
    await tabs[0].chat("ch-1", "a1", "customer", "Thanks")
    await report_all(tabs, "ended", "ch-1", ANN)
    await rig.finished("ch-1")
    await rig.finished("ch-2", status="none")  # a refused chat gets no Zendesk work
    await settle()

    assert rig.tickets("ch-2") == []
    assert [u["id"] for u in rig.end_users()] == [uid]  # no user made for Bob either
    (ticket,) = rig.tickets()
    (transcript,) = transcripts(ticket)
    assert "Thanks" in transcript["body"] and "Hello?" not in transcript["body"]
    # the notice went to the owner only, once
    assert [(n.code, n.level) for n in notices(tabs[0], "ch-2")] == [("second_chat", "error")]
    assert notices(tabs[1]) == []
    assert tabs[1].contacts["ch-2"].ticket_id is None
