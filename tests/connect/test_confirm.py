"""The contact check's questions to Connect (`ContactConfirmer.ask`): the real client against
the Connect sandbox over HTTP; whose contact it is; what Connect's answer carries; and that
Connect unable to say within the bounded wait is "cannot say", not a refusal."""

import time
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestServer

from daemon.connect.client import ConnectClient, Instance
from daemon.connect.confirm import CHECK_BURST, ContactConfirmer
from daemon.connect.sandbox import ConnectSandbox, Fault, SandboxContact
from daemon.core.confirmation import ConnectDenied, ConnectFacts, ConnectUnavailable
from daemon.core.events import ContactReported, Rules
from daemon.server.auth import AgentIdentity
from daemon.server.hub import AgentHub
from daemon.server.metrics import Metrics
from daemon.store.memory import MemoryStore
from daemon.zendesk.retry import ZendeskError
from protocol.errors import ErrorCode, ProtocolError
from protocol.messages import ContactEvent, ContactSnapshot
from tests.connect.conftest import ARN

ALICE = AgentIdentity("agent-alice", zendesk_user_id=11)
EMAILS = {11: "Alice@Acme.example", 12: "bob@acme.example"}


@pytest.fixture
async def confirmer(server: TestServer, sandbox: ConnectSandbox) -> AsyncIterator[ContactConfirmer]:
    """Contacts c-1 (Alice's, u-1, attributes a=1) and c-2 (u-2's transfer of c-1)."""
    client = ConnectClient(Instance.from_arn(ARN), endpoint_url=str(server.make_url("")))
    await client.start()

    async def email(user_id: int) -> str | None:
        return EMAILS.get(user_id)

    hub = AgentHub(MemoryStore(), Rules(), "n1", Metrics())
    confirmer = ContactConfirmer(client, hub, email, wait_seconds=1.0)
    yield confirmer
    await confirmer.close()
    await client.close()


async def test_the_agents_own_contact_carries_connects_facts(confirmer: ContactConfirmer) -> None:
    answer = await confirmer.ask(ALICE, "c-1")  # u-1's email is alice@acme.example
    assert answer == ConnectFacts(
        agent_is_reporter=True, attributes={"a": "1"}, customer_endpoint="+447700900123"
    )


async def test_a_transfer_names_its_initial_contact_and_another_agent_is_not_the_tab(
    confirmer: ContactConfirmer, sandbox: ConnectSandbox
) -> None:
    sandbox.users["u-2"] = {"username": "bob", "email": "bob@acme.example"}
    answer = await confirmer.ask(ALICE, "c-2")
    assert isinstance(answer, ConnectFacts)
    assert not answer.agent_is_reporter and answer.initial_contact_id == "c-1"
    assert answer.attributes == {}  # not read for a contact that is not the agent's
    bob = AgentIdentity("agent-bob", zendesk_user_id=12)
    assert await confirmer.ask(bob, "c-2") == ConnectFacts(
        agent_is_reporter=True, attributes={}, initial_contact_id="c-1"
    )


async def test_the_agent_is_matched_by_username_agent_id_or_the_configured_map(
    confirmer: ContactConfirmer, sandbox: ConnectSandbox
) -> None:
    users = {
        "u-sso": {"username": "agent-alice", "email": ""},  # SSO: the token's sub
        "u-corp": {"username": "a.smith", "email": "alice.smith@corp.example"},
    }
    for user_id, user in users.items():
        sandbox.users[user_id] = user
        sandbox.contacts[f"c-{user_id}"] = SandboxContact(f"c-{user_id}", agent_user_id=user_id)
    assert await _mine(confirmer, ALICE, "c-u-sso")
    assert not await _mine(confirmer, ALICE, "c-u-corp")  # neither name is Alice's
    confirmer.agent_map = {"a.smith": 11}
    assert await _mine(confirmer, ALICE, "c-u-corp")
    confirmer.agent_map = {"a.smith": 99, "agent-alice": 99}  # the map decides for its names
    assert not await _mine(confirmer, ALICE, "c-u-corp")
    assert not await _mine(confirmer, ALICE, "c-u-sso")


async def test_unknown_contacts_and_users(
    confirmer: ContactConfirmer, sandbox: ConnectSandbox
) -> None:
    answer = await confirmer.ask(ALICE, "c-nowhere")
    assert isinstance(answer, ConnectDenied) and "not found" in answer.reason
    sandbox.contacts["c-3"] = SandboxContact("c-3", agent_user_id="u-deleted")
    assert not await _mine(confirmer, ALICE, "c-3")  # a user Connect does not know: nobody's
    sandbox.contacts["c-4"] = SandboxContact("c-4")  # queued: no agent yet
    assert isinstance(await confirmer.ask(ALICE, "c-4"), ConnectUnavailable)


async def test_connect_or_zendesk_unable_to_say_is_cannot_say_within_the_wait(
    confirmer: ContactConfirmer, sandbox: ConnectSandbox
) -> None:
    sandbox.faults.append(Fault("DescribeContact", times=100, error="ThrottlingException"))
    started = time.monotonic()
    answer = await confirmer.ask(ALICE, "c-1")
    assert isinstance(answer, ConnectUnavailable) and time.monotonic() - started < 1.5
    sandbox.faults.clear()
    sandbox.faults.append(Fault("DescribeUser", error="AccessDeniedException"))
    assert isinstance(await confirmer.ask(ALICE, "c-1"), ConnectUnavailable)

    async def zendesk_down(_user_id: int) -> str | None:
        raise ZendeskError(None)

    confirmer.agent_email = zendesk_down
    assert isinstance(await confirmer.ask(ALICE, "c-1"), ConnectUnavailable)


async def _mine(confirmer: ContactConfirmer, who: AgentIdentity, contact_id: str) -> bool:
    answer = await confirmer.ask(who, contact_id)
    assert isinstance(answer, ConnectFacts), answer
    return answer.agent_is_reporter


async def test_an_agent_reporting_made_up_contacts_spends_only_its_own_budget(
    confirmer: ContactConfirmer, sandbox: ConnectSandbox
) -> None:
    """An attacker's tab invents contact ids: Connect is asked for its burst only, then its
    reports are refused with a typed error; repeats of an answered id cost nothing; another
    agent's new contact is still checked."""
    confirmer.checks_per_minute = 0.001  # no refill within the test

    def reported(contact_id: str) -> ContactReported:
        snapshot = ContactSnapshot(contact_id=contact_id, type="voice", direction="inbound")
        return ContactReported("tab-1", ContactEvent(event="incoming", contact=snapshot))

    for n in range(int(CHECK_BURST)):
        checked = await confirmer.check("agent-alice", ALICE, reported(f"made-up-{n}"))
        assert isinstance(checked.answer, ConnectDenied)
    with pytest.raises(ProtocolError) as refused:
        await confirmer.check("agent-alice", ALICE, reported("made-up-more"))
    assert refused.value.code == ErrorCode.AGENT_RATE_LIMITED
    again = await confirmer.check("agent-alice", ALICE, reported("made-up-0"))
    assert isinstance(again.answer, ConnectDenied)  # answered before: from the cache
    asked = [c["params"]["ContactId"] for c in sandbox.calls if c["operation"] == "DescribeContact"]
    assert sorted(asked) == sorted(f"made-up-{n}" for n in range(int(CHECK_BURST)))

    bob = AgentIdentity("agent-bob", zendesk_user_id=12)
    sandbox.users["u-2"] = {"username": "bob", "email": "bob@acme.example"}
    checked = await confirmer.check("agent-bob", bob, reported("c-2"))
    assert isinstance(checked.answer, ConnectFacts) and checked.answer.agent_is_reporter
