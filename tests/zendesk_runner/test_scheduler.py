"""The scheduler decides from stored state only: the same on every node.

Two schedulers ("nodes") share one MemoryStore and one sandbox, each with its own runner
dependencies, as two daemons sharing Redis would.
"""

from typing import Any

from daemon.core.state import AgentCommand
from daemon.sandbox import FaultRule
from daemon.server.metrics import Metrics
from daemon.store.base import Lease
from daemon.zendesk.runner import DONE, RunResult, run_contact
from daemon.zendesk.scheduler import WorkflowScheduler
from tests.zendesk_runner.conftest import AGENT, T0, Rig, contact

ATTRS = {"ticket_assignment": "agent", "force_ticket_creation": "no"}


async def node(rig: Rig, name: str) -> WorkflowScheduler:
    deps = rig.deps()
    await deps.client.__aenter__()  # closed with the rig

    async def run(agent: str, contact_id: str, lease: Lease) -> RunResult:
        return await run_contact(deps, agent, contact_id, lease)

    return WorkflowScheduler(rig.store, name, run, Metrics(), lease_seconds=30, clock=rig.clock)


async def settle(*nodes: WorkflowScheduler) -> None:
    for n in nodes:
        await n.idle()


async def ended_without_ticket(rig: Rig, cid: str, on: WorkflowScheduler) -> None:
    rig.contacts[(AGENT, cid)] = contact(contact_id=cid, attributes=ATTRS)
    await rig.store.workflows_add(AGENT, cid)
    on.wake(AGENT, cid)
    await settle(on)
    assert all(c != cid for _, c in await rig.store.workflows_list())
    assert (await rig.store.journal_read(AGENT, cid))[DONE] is True


def command_after_the_end(rig: Rig, cid: str) -> None:
    later = AgentCommand(name="create_ticket", at=T0 + 600)
    rig.contacts[(AGENT, cid)] = contact(contact_id=cid, attributes=ATTRS, commands=[later])


async def test_a_command_after_the_end_runs_on_the_node_that_finished_it_and_on_others(
    rig: Rig,
) -> None:
    rig.customer("Ann Caller", "+447700900123")
    one, two = await node(rig, "node-1"), await node(rig, "node-2")
    try:
        for cid, woken in (("c-1", one), ("c-2", two)):
            await ended_without_ticket(rig, cid, one)  # node-1 ran both to their end
            command_after_the_end(rig, cid)
            woken.wake(AGENT, cid)  # the hub of whichever node took the command
            await settle(one, two)
        tickets = {t.external_id: t for t in rig.tickets()}
        assert set(tickets) == {rig.identity("c-1").external_id, rig.identity("c-2").external_id}
        assert all(c.type == "VoiceComment" for t in tickets.values() for c in t.comments[-1:])
    finally:
        await one.close()
        await two.close()


async def test_a_revived_workflow_is_durable_and_any_node_finishes_it(rig: Rig) -> None:
    rig.customer("Ann Caller", "+447700900123")
    one, two = await node(rig, "node-1"), await node(rig, "node-2")
    try:
        await ended_without_ticket(rig, "c-1", one)
        command_after_the_end(rig, "c-1")
        rig.sandbox.faults.add([FaultRule(kind="error", method="POST", path="*", status=503,
                                          count=None)])  # fmt: skip
        one.wake(AGENT, "c-1")
        await settle(one)
        # back in the durable set: node-1 could die now and another node would find it
        assert (AGENT, "c-1") in await rig.store.workflows_list()
        assert rig.tickets() == []
        retry: dict[str, Any] = (await rig.store.journal_read(AGENT, "c-1"))["~retry"]
        posts = rig.sandbox.request_count("POST")
        await two.scan()  # before the contact's next attempt (the journal's): nothing sent
        await settle(two)
        assert posts > 0 and rig.sandbox.request_count("POST") == posts
        rig.sandbox.faults.clear()
        rig.clock.now = retry["at"]
        await two.scan()
        await settle(two)
        assert len(rig.tickets()) == 1
        assert (AGENT, "c-1") not in await rig.store.workflows_list()
    finally:
        await one.close()
        await two.close()


async def test_a_node_in_backoff_does_not_claim_the_contact_on_every_scan(rig: Rig) -> None:
    rig.customer("Ann Caller", "+447700900123")
    one = await node(rig, "node-1")
    try:
        rig.sandbox.faults.add([FaultRule(kind="error", method="POST", path="*", status=503,
                                          count=None)])  # fmt: skip
        rig.contacts[(AGENT, "c-1")] = contact()
        await rig.store.workflows_add(AGENT, "c-1")
        await one.scan()
        await settle(one)
        sent = rig.requests()
        for _ in range(5):  # five scans within the backoff: no request, no lease
            await one.scan()
            await settle(one)
        assert rig.requests() == sent
        assert await rig.store.claim_lease(AGENT, "runner:c-1", "other", 5) is not None
    finally:
        await one.close()
