"""The baseline: a bare `websockets` echo server, configured like the daemon (no compression)."""

import asyncio
import sys

from websockets.asyncio.server import ServerConnection, serve


async def echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def main(port: int) -> None:
    async with serve(echo, "127.0.0.1", port, compression=None, max_queue=32):
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
