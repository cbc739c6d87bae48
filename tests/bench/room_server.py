"""The floor: the least a coordinator can do with the daemon's traffic, on the same library,
event loop and settings as the daemon and the echo baseline.

A room per agent (named by the hello's token, unverified); every frame is parsed as JSON; a
contact report that is new to the room (its contact and event not seen before) is sent, as
one `contact` message, to every tab of the room; repeats are dropped. No validation, no
state beyond the set of reports seen, no store, no pacing: what is left of the daemon's
per-message cost when everything the daemon decides is taken away. `event_cpu.py` measures
it with the daemon's load, so the daemon's cost can be read against both baselines.
"""

import asyncio
import json
import sys
from collections import defaultdict
from pathlib import Path

from websockets.asyncio.server import ServerConnection, broadcast, serve

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from daemon.cli import _run

ROOMS: defaultdict[str, set[ServerConnection]] = defaultdict(set)
SEEN: defaultdict[str, set[tuple[str, str]]] = defaultdict(set)


async def member(ws: ServerConnection) -> None:
    room = json.loads(await ws.recv())["token"]
    ROOMS[room].add(ws)
    try:
        async for frame in ws:
            message = json.loads(frame)
            contact = message["contact"]
            report = (contact["contact_id"], message["event"])
            if report not in SEEN[room]:
                SEEN[room].add(report)
                view = {"contact_id": report[0], "state": report[1], "type": contact["type"]}
                broadcast(ROOMS[room], json.dumps({"type": "contact", "contact": view}))
    finally:
        ROOMS[room].discard(ws)


async def main(port: int) -> None:
    async with serve(member, "127.0.0.1", port, compression=None, max_queue=32):
        await asyncio.Event().wait()


if __name__ == "__main__":
    _run(main(int(sys.argv[1])))
