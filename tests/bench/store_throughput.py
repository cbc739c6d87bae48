"""Event throughput of the memory store vs the Redis store, measured in the same run.

Usage (from the repository root; starts and stops its own redis-server on a free port)::

    python -m tests.bench.store_throughput                  # 200 agents x 50 events, uvloop
    python -m tests.bench.store_throughput --agents 500 --events 20 --no-uvloop
    python -m tests.bench.store_throughput --cluster         # also a 3-node Redis Cluster
    python -m tests.bench.store_throughput --history 200     # 200 retained contacts per agent

It prints one JSON line per store and a final line with the Redis/memory ratio (the target is
>= 0.5). Not collected by pytest (the file name does not start with `test_`).

What one "event" costs here is what it costs the daemon: the agent's state and version are
cached by the node that owns the agent's tabs (as the daemon does; it reloads only after a
version conflict), so an event is: change one contact, encode it and the ~2 KB head (each
contact is encoded once and kept, as the daemon keeps `Contact.packed`), `commit_agent` with one
or two envelopes, and deliver the committed entries to the node's subscriber for that agent
(Redis: through pub/sub, the way other nodes would get them). All agents run concurrently
(`asyncio.gather`), each agent's events in order. `--history N` gives every agent N retained
finished contacts besides its live ones (the daemon keeps up to a few hundred); each result line
says how many state bytes a commit wrote on average.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from typing import Any

import msgpack

from daemon.core.writes import StateWrite
from daemon.store.base import NEVER_STORED, Envelope, Revision, Store, StreamEntry
from daemon.store.memory import MemoryStore
from daemon.store.redis import RedisStore
from tests.redis_servers import RedisCluster, RedisServer


def contact(cid: str, rng: random.Random, state: str) -> dict[str, Any]:
    return {
        "contact_id": cid,
        "state": state,
        "owner": "tab-1",
        "attributes": {f"attr{j}": rng.randbytes(8).hex() for j in range(8)},
        "counter": 0,
    }


def initial_state(agent: str, size: int, history: int) -> tuple[dict[str, Any], dict[str, bytes]]:
    """A state shaped like the agent aggregate: a head (tabs, padding) and packed contacts, two
    live ones plus `history` finished ones."""
    rng = random.Random(agent)
    live = {f"contact-{i}": contact(f"contact-{i}", rng, "connected") for i in range(2)}
    head: dict[str, Any] = {
        "agent": agent,
        "tabs": {f"tab-{i}": {"role": "embedded", "node": "n1"} for i in range(3)},
        "counter": 0,
        "pad": "",
    }
    head["pad"] = "x" * max(0, size - len(msgpack.packb([head, live])))
    old = {f"old-{i}": contact(f"old-{i}", rng, "ended") for i in range(history)}
    return head, {cid: msgpack.packb(c) for cid, c in {**old, **live}.items()}


def encode(head: dict[str, Any], contacts: dict[str, bytes], changed: str) -> StateWrite:
    """What the daemon commits: the head and the one contact the event changed."""
    return StateWrite(msgpack.packb(head), {changed: contacts[changed]})


async def seed(store: Store, agent: str, shape: tuple[int, int]) -> Revision:
    """Store the agent's whole initial state (not timed: it is there before the events)."""
    head, contacts = initial_state(agent, *shape)
    committed = await store.commit_agent(
        agent, NEVER_STORED, StateWrite(msgpack.packb(head), contacts), []
    )
    assert committed is not None
    return committed.revision


async def run_agent(
    store: Store,
    agent: str,
    revision: Revision,
    events: int,
    shape: tuple[int, int],
    tally: list[int],
) -> int:
    """One agent's event loop as the owning node runs it, from its seeded state; returns the
    conflicts seen. `tally` adds up [entries delivered, commits, state bytes written]."""
    head, contacts = initial_state(agent, *shape)
    conflicts = 0

    def listener(entry: StreamEntry) -> None:
        tally[0] += 1

    subscription = await store.subscribe(agent, listener)
    for n in range(events):
        while True:
            live = f"contact-{n % 2}"
            changed = msgpack.unpackb(contacts[live])
            changed["counter"] += 1
            new_head = {**head, "counter": head["counter"] + 1}
            new_contacts = {**contacts, live: msgpack.packb(changed)}
            state = encode(new_head, new_contacts, live)
            envelopes = [Envelope({"type": "contact", "seq_hint": n, "state": "connected"})]
            if n % 2:
                envelopes.append(Envelope({"type": "pop", "ticket": n}, to_tab="tab-1"))
            committed = await store.commit_agent(agent, revision, state, envelopes)
            if committed is not None:
                revision, head, contacts = committed.revision, new_head, new_contacts
                tally[1] += 1
                tally[2] += state.size
                break
            conflicts += 1
            loaded = await store.load_agent(agent)  # only after a conflict
            assert loaded.head is not None
            revision, head = loaded.revision, msgpack.unpackb(loaded.head)
            contacts = dict(loaded.contacts)
    await subscription.close()
    return conflicts


async def measure(
    name: str, store: Store, agents: int, events: int, shape: tuple[int, int]
) -> dict[str, Any]:
    tally = [0, 0, 0]
    names = [f"bench-{name}-{i}" for i in range(agents)]
    # Warm up connections, scripts and the pub/sub reader outside the timed section.
    warm = [f"warm-{a}" for a in names]
    seeded = await asyncio.gather(*(seed(store, agent, shape) for agent in warm + names))
    await asyncio.gather(
        *(
            run_agent(store, a, r, 2, shape, [0, 0, 0])
            for a, r in zip(warm, seeded[: len(warm)], strict=True)
        )
    )
    started = time.perf_counter()
    conflicts = await asyncio.gather(
        *(
            run_agent(store, agent, revision, events, shape, tally)
            for agent, revision in zip(names, seeded[len(warm) :], strict=True)
        )
    )
    elapsed = time.perf_counter() - started
    total = agents * events
    return {
        "store": name,
        "agents": agents,
        "events": total,
        "seconds": round(elapsed, 3),
        "events_per_s": round(total / elapsed),
        "conflicts": sum(conflicts),
        "delivered_during_run": tally[0],
        "state_bytes_per_commit": round(tally[2] / max(1, tally[1])),
    }


async def main(args: argparse.Namespace) -> None:
    results: list[dict[str, Any]] = []
    shape = (args.state_bytes, args.history)
    memory = MemoryStore()
    results.append(await measure("memory", memory, args.agents, args.events, shape))
    print(json.dumps(results[-1]), flush=True)
    await memory.close()

    with RedisServer.start() as server:
        store = RedisStore.from_url(server.url, max_connections=args.connections)
        results.append(await measure("redis", store, args.agents, args.events, shape))
        print(json.dumps(results[-1]), flush=True)
        await store.close()

    if args.cluster:
        with RedisCluster.start() as cluster:
            store = RedisStore.from_url(cluster.url, cluster=True)
            results.append(await measure("cluster", store, args.agents, args.events, shape))
            print(json.dumps(results[-1]), flush=True)
            await store.close()

    base = results[0]["events_per_s"]
    ratios = {r["store"]: round(r["events_per_s"] / base, 3) for r in results[1:]}
    print(json.dumps({"ratio_vs_memory": ratios, "target": 0.5}), flush=True)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--events", type=int, default=50, help="events per agent")
    parser.add_argument("--state-bytes", type=int, default=2048)
    parser.add_argument("--history", type=int, default=0, help="finished contacts per agent")
    parser.add_argument("--connections", type=int, default=None, help="Redis pool size")
    parser.add_argument("--cluster", action="store_true", help="also measure a 3-node cluster")
    parser.add_argument("--no-uvloop", dest="uvloop", action="store_false")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse(sys.argv[1:])
    if arguments.uvloop:
        try:
            import uvloop
        except ImportError:
            print("uvloop not installed; using asyncio's loop", file=sys.stderr)
        else:
            uvloop.install()
    asyncio.run(main(arguments))
