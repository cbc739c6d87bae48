"""Recording control that happens (issue 12): the owner's pause and resume go to Amazon
Connect's API (the Connect sandbox over HTTP, through the real AWS SDK), the contact view
shows what Connect confirmed, and the ticket says so.

Daemon, real tabs over WebSockets, the Zendesk sandbox and the Connect sandbox over HTTP.
"""

from typing import Any

from aiohttp.test_utils import TestServer

from clients.python.tab import TabClient
from daemon.connect.sandbox import Fault, SandboxContact
from tests.e2e.conftest import (
    CONNECT_USER,
    Rig,
    comments,
    connect_sandbox,
    errors,
    notices,
    report_all,
    settle,
    until,
    voice,
    with_connect,
)

CALL = voice(attributes={"pause_recording": "true"})
CONFIRMED = "(confirmed by Amazon Connect)"


def recording_calls(server: TestServer) -> list[dict[str, Any]]:
    """Calls that reach the recording (the contact's confirmation describes it first)."""
    return [c for c in connect_sandbox(server).calls if "ContactRecording" in c["operation"]]


def transitions(server: TestServer) -> list[str]:
    return [kind for kind, _ in connect_sandbox(server).contacts["c-1"].transitions]


async def call_with_recording_control(
    rig: Rig, server: TestServer, grace_seconds: float = 5.0
) -> list[TabClient]:
    # Contacts are confirmed (an instance is configured): Connect knows the call, routed
    # to the rig's agent, with the flow's attributes.
    connect_sandbox(server).contacts["c-1"] = SandboxContact(
        "c-1", agent_user_id=CONNECT_USER, attributes=CALL["attributes"]
    )
    await rig.start(**with_connect(server), grace_seconds=grace_seconds)
    tabs = [await rig.tab() for _ in range(2)]
    await report_all(tabs, "incoming", "c-1", CALL)
    await until(lambda: all("c-1" in t.contacts for t in tabs))
    await report_all(tabs, "connected", "c-1", CALL)
    await until(lambda: all(t.contacts["c-1"].ticket_id is not None for t in tabs))
    return tabs


async def test_pause_and_resume_reach_connect_once_each_in_order(
    rig: Rig, connect: TestServer
) -> None:
    owner, observer = await call_with_recording_control(rig, connect)
    assert owner.owns("c-1")

    await observer.command("pause_recording", "c-1")  # an observer's never reaches Connect
    await until(lambda: len(errors(observer, "not_owner")) == 1)
    await settle(0.5)
    assert recording_calls(connect) == []

    # The first reply is lost: the SDK asks again, Connect applies it once.
    connect_sandbox(connect).faults.append(Fault("SuspendContactRecording", lose_response=True))
    await owner.command("pause_recording", "c-1")
    await until(lambda: owner.contacts["c-1"].recording_paused)
    await until(lambda: observer.contacts["c-1"].recording_paused)

    # The owner reloads between pause and resume, then resumes.
    position = owner.position
    await owner.close()
    reloaded = await rig.tab(owner.tab_id, resume=position)
    await until(lambda: reloaded.owns("c-1") and reloaded.contacts["c-1"].recording_paused)
    await reloaded.command("resume_recording", "c-1")
    await until(lambda: not reloaded.contacts["c-1"].recording_paused)
    await report_all([reloaded, observer], "ended", "c-1", CALL)
    await rig.finished("c-1")

    assert transitions(connect) == ["suspended", "resumed"]
    (ticket,) = rig.tickets("c-1")
    notes = comments(ticket, starts="Call recording")
    assert [n["body"].split(" by the agent")[0] for n in notes] == [
        "Call recording paused",
        "Call recording resumed",
    ]
    assert all(CONFIRMED in n["body"] for n in notes)


async def test_a_stale_owners_command_never_reaches_connect(rig: Rig, connect: TestServer) -> None:
    old, other = await call_with_recording_control(rig, connect, grace_seconds=0.5)
    position = old.position
    await old.close()
    await until(lambda: other.owns("c-1") and other.contacts["c-1"].epoch == 2)
    back = await rig.tab(old.tab_id, resume=position)  # the old owner's page returns late
    await until(lambda: back.contacts.get("c-1") is not None and not back.owns("c-1"))
    await back.command("pause_recording", "c-1", epoch=1)
    await until(lambda: len(errors(back, "stale_epoch")) == 1)
    await settle(0.5)
    assert recording_calls(connect) == [] and transitions(connect) == []


async def test_connect_refusing_reaches_the_agent_and_nothing_says_paused(
    rig: Rig, connect: TestServer
) -> None:
    owner, observer = await call_with_recording_control(rig, connect)
    connect_sandbox(connect).faults.append(
        Fault("SuspendContactRecording", error="AccessDeniedException")
    )
    await owner.command("pause_recording", "c-1")
    await until(lambda: any(n.code == "recording_failed" for n in notices(owner, "c-1")))
    (notice,) = [n for n in notices(owner, "c-1") if n.code == "recording_failed"]
    assert notice.level == "error" and "AccessDenied" in notice.text
    await report_all([owner, observer], "ended", "c-1", CALL)
    await rig.finished("c-1")
    assert transitions(connect) == []
    for tab in (owner, observer):
        assert not tab.contacts["c-1"].recording_paused
        assert not any(m.contact.recording_paused for m in tab.of_type("contact"))
    (ticket,) = rig.tickets("c-1")
    (note,) = comments(ticket, starts="The agent asked to pause")
    assert "was not paused" in note["body"]


async def test_throttling_is_waited_out_and_then_the_pause_happens(
    rig: Rig, connect: TestServer
) -> None:
    owner, _ = await call_with_recording_control(rig, connect)
    connect_sandbox(connect).faults.append(
        Fault("SuspendContactRecording", times=2, error="ThrottlingException")
    )
    await owner.command("pause_recording", "c-1")
    await until(lambda: owner.contacts["c-1"].recording_paused)
    assert transitions(connect) == ["suspended"]


async def test_without_connect_a_pause_is_refused_not_pretended(rig: Rig) -> None:
    await rig.start()
    owner = await rig.tab()
    await owner.report("incoming", "c-1", **CALL)
    await until(lambda: "c-1" in owner.contacts)
    await owner.report("connected", "c-1", **CALL)
    await owner.command("pause_recording", "c-1")
    await until(lambda: any(n.code == "recording_failed" for n in notices(owner, "c-1")))
    assert not owner.contacts["c-1"].recording_paused
