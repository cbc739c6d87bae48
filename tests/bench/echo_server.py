"""The baseline: a bare `websockets` echo server, configured like the daemon (no compression)
and run on the same event loop implementation (`daemon.cli._run`: uvloop when installed)."""

import asyncio
import sys
from pathlib import Path

from websockets.asyncio.server import ServerConnection, serve

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from daemon.cli import _run


async def echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def main(port: int) -> None:
    async with serve(echo, "127.0.0.1", port, compression=None, max_queue=32):
        await asyncio.Event().wait()


if __name__ == "__main__":
    _run(main(int(sys.argv[1])))
