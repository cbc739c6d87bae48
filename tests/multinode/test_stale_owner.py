"""A runner that was paused past its lease wakes up: Redis refuses it, Zendesk never hears it.

The pause is real time against a real redis-server; the workflow runs against the sandbox
over HTTP. Then the current holder runs the same contact and its writes all land, once.
"""

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp.test_utils import TestServer

from daemon.core.events import WorkflowReported
from daemon.core.settings import AppSettings
from daemon.core.state import Contact
from daemon.core.workflow.policy import AgentInfo
from daemon.sandbox import SANDBOX_KEY, create_app
from daemon.sandbox.config import SandboxConfig
from daemon.store.redis import RedisStore
from daemon.zendesk.client import ApiTokenAuth, ZendeskClient
from daemon.zendesk.runner import RunnerDeps, run_contact
from tests.redis_servers import RedisServer

AGENT = "agent-stale"
WRITES = ("POST", "PUT")


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    server = RedisServer.start()
    yield server
    server.close()


@pytest.fixture
async def sandbox() -> AsyncIterator[TestServer]:
    server = TestServer(create_app(SandboxConfig()))
    await server.start_server()
    yield server
    await server.close()


def call(contact_id: str) -> Contact:
    return Contact(
        contact_id=contact_id,
        state="ended",
        events_seen=("incoming", "connected", "ended"),
        event_times={"incoming": 1000.0, "connected": 1005.0, "ended": 1065.0},
        customer_endpoint="+447700900555",
        owner_tab="t-1",
        epoch=1,
        created_at=1000.0,
        finished_at=1065.0,
    )


async def test_stale_runner_is_refused_by_redis_and_never_reaches_zendesk(
    redis: RedisServer, sandbox: TestServer
) -> None:
    state = sandbox.app[SANDBOX_KEY]
    agent_user = state.agent_ids()[0]
    paused, current = RedisStore.from_url(redis.url), RedisStore.from_url(redis.url)
    contact = call("c-stale")

    async def load_contact(agent: str, contact_id: str) -> Contact | None:
        return contact

    async def agent_info(agent: str) -> AgentInfo:
        return AgentInfo(user_id=agent_user, name="Agent")

    async def report(agent: str, event: WorkflowReported) -> None:
        return None

    def deps(store: RedisStore, client: ZendeskClient) -> RunnerDeps:
        return RunnerDeps(
            store=store,
            client=client,
            settings=AppSettings(),
            agent_info=agent_info,
            load_contact=load_contact,
            report=report,
        )

    base = str(sandbox.make_url("")).rstrip("/")
    async with (
        ZendeskClient(base, ApiTokenAuth("agent@example.com", "sandbox-token")) as zd_old,
        ZendeskClient(base, ApiTokenAuth("agent@example.com", "sandbox-token")) as zd_new,
    ):
        stale = await paused.claim_lease(AGENT, "runner:c-stale", "node-paused", 0.3)
        assert stale is not None
        await asyncio.sleep(0.5)  # the holder is paused (GC, VM steal, SIGSTOP) past its lease
        fresh = await current.claim_lease(AGENT, "runner:c-stale", "node-current", 10)
        assert fresh is not None and fresh.epoch > stale.epoch

        woke = await run_contact(deps(paused, zd_old), AGENT, "c-stale", stale)
        assert woke.reason == "stale" and not woke.done
        assert sum(state.request_count(method=m) for m in WRITES) == 0
        assert await current.journal_read(AGENT, "c-stale") == {}
        assert not await paused.journal_write(stale, "c-stale", "ticket:create", {"id": 1})

        done = await run_contact(deps(current, zd_new), AGENT, "c-stale", fresh)
        assert done.done
    tickets = [t for t in state.tickets.values() if str(t.external_id).endswith(":c-stale")]
    assert len(tickets) == 1
    assert sum(c.type == "VoiceComment" for c in tickets[0].comments) == 1
    await paused.close()
    await current.close()
