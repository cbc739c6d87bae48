"""Raw WebSocket helpers for tests that send what no well-behaved client would."""

import asyncio
import json
from typing import Any

import aiohttp
import msgpack
from websockets.asyncio.client import ClientConnection, connect

from daemon.app import Daemon
from tests.daemons import token, ws_url


async def raw(daemon: Daemon, *, binary: bool = False, **kw: Any) -> ClientConnection:
    sub = "switchboard.v1.msgpack" if binary else "switchboard.v1.json"
    return await connect(ws_url(daemon), subprotocols=[sub], **kw)  # type: ignore[list-item]


async def greeted(
    daemon: Daemon, agent: str = "mallory", *, binary: bool = False
) -> ClientConnection:
    ws = await raw(daemon, binary=binary)
    hello = {"type": "hello", "token": token(agent)}
    await ws.send(msgpack.packb(hello) if binary else json.dumps(hello))
    welcome = decode(await ws.recv())
    assert welcome["type"] == "welcome"
    assert decode(await ws.recv())["type"] == "snapshot"
    return ws


def decode(frame: str | bytes) -> dict[str, Any]:
    data: dict[str, Any] = msgpack.unpackb(frame) if isinstance(frame, bytes) else json.loads(frame)
    return data


async def next_error(ws: ClientConnection) -> dict[str, Any]:
    while True:
        message = decode(await asyncio.wait_for(ws.recv(), 3))
        if message["type"] == "error":
            return message


async def healthy(daemon: Daemon) -> bool:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{daemon.http_port}/healthz") as r,
    ):
        return r.status == 200
