"""Redis goes away mid-run: readiness flips, tabs are told, nothing is corrupted, and service
resumes by itself when Redis is back (here: restarted empty, the harder case)."""

import json
from collections.abc import Iterator

import aiohttp
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.daemons import eventually, open_tab, running, token, ws_url
from tests.redis_servers import RedisServer

CALL = {"type": "voice", "direction": "inbound", "customer_endpoint": "+15551230002"}


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    server = RedisServer.start()
    yield server
    server.close()


async def ready(http_port: int) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{http_port}/readyz") as response,
    ):
        return response.status


async def test_redis_restart_mid_run(redis: RedisServer) -> None:
    async with running(redis_url=redis.url, node_ttl_seconds=0.6) as daemon:
        tab = await open_tab(daemon, "alice")
        await tab.report("incoming", "c-1", **CALL)
        await eventually(lambda: tab.owns("c-1"))
        assert await ready(daemon.http_port) == 200

        redis.stop()

        async def not_ready() -> bool:
            return await ready(daemon.http_port) == 503

        await eventually(not_ready, timeout=10)
        notice = await tab.wait_for(lambda m: m.type == "notify" and m.code == "store_unavailable")
        assert notice.level == "warning"
        await tab.report("connected", "c-1", **CALL)
        refused = await tab.wait_for(lambda m: m.type == "error")
        assert refused.code == "unavailable"
        # A new tab is told to come back later with 1013.
        ws = await connect(ws_url(daemon), subprotocols=["switchboard.v1.json"])  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "hello", "token": token("alice")}))
        with pytest.raises(ConnectionClosed):
            while True:
                await ws.recv()
        assert ws.close_code == 1013

        redis.start_again()

        async def is_ready() -> bool:
            return await ready(daemon.http_port) == 200

        await eventually(is_ready, timeout=10)
        await tab.wait_for(lambda m: m.type == "notify" and m.code == "store_recovered", 10)
        # Redis came back empty: the stream's epoch changed, so the tab is given a snapshot.
        first_epoch = tab.welcome.position.epoch
        await tab.wait_for(
            lambda m: m.type == "snapshot" and m.pos is not None and m.pos.epoch != first_epoch,
            10,
        )
        await tab.report("incoming", "c-2", **CALL)
        await eventually(lambda: tab.owns("c-2"), timeout=5)
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{daemon.http_port}/admin/agents/alice"
            async with http.get(url) as response:
                state = await response.json()
        assert [t["tab_id"] for t in state["tabs"]] == [tab.tab_id]
        assert {c["contact_id"] for c in state["contacts"]} == {"c-2"}
        await tab.close()
