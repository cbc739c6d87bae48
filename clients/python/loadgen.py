"""Load generator: many agents, several tabs each, every tab reporting every contact event.

This is the duplicate-heavy traffic the daemon exists for (every embedded CCP reports every
event), so it measures deduplication and fan-out, not just socket throughput. Contacts are
`monitoring` calls so the Zendesk workflow stays out of the measurement.

    python -m clients.python.loadgen --url ws://127.0.0.1:8765/ws --secret S --agents 50
"""

import argparse
import asyncio
import json
import statistics
import time
from dataclasses import dataclass
from functools import partial

from clients.python.tab import TabClient
from daemon.server.auth import mint_token
from protocol.messages import ContactMessage, ServerMessage

EVENTS = ("incoming", "connected", "ended")


@dataclass(frozen=True)
class LoadResult:
    tabs: int
    events_sent: int
    seconds: float
    latencies: list[float]  # report of the last event by all tabs -> owner sees "ended"

    @property
    def events_per_second(self) -> float:
        return self.events_sent / self.seconds

    def summary(self) -> dict[str, float]:
        ordered = sorted(self.latencies)
        return {
            "tabs": self.tabs,
            "events": self.events_sent,
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.events_per_second, 1),
            "latency_p50_ms": round(statistics.median(ordered) * 1000, 2),
            "latency_p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 2),
        }


def _ended(contact: str, message: ServerMessage) -> bool:
    return (
        isinstance(message, ContactMessage)
        and message.contact.contact_id == contact
        and message.contact.state == "ended"
    )


async def _drive(clients: list[TabClient], agent: str, contacts: int) -> tuple[int, list[float]]:
    sent, latencies = 0, []
    for n in range(contacts):
        contact = f"{agent}-c{n}"
        started = time.perf_counter()
        for event in EVENTS:
            for client in clients:
                await client.report(event, contact, type="voice", monitoring=True)
                sent += 1
        await clients[0].wait_for(partial(_ended, contact), timeout=60)
        latencies.append(time.perf_counter() - started)
    return sent, latencies


async def run_load(
    url: str, secret: str, *, agents: int, tabs: int, contacts: int, prefix: str = "load"
) -> LoadResult:
    """Connect every tab first, then time only the contact traffic."""
    groups = []
    for a in range(agents):
        token = mint_token(secret, f"{prefix}-{a}")
        groups.append([await TabClient(url, token, reconnect=False).connect() for _ in range(tabs)])
    started = time.perf_counter()
    results = await asyncio.gather(
        *(_drive(clients, f"{prefix}-{a}", contacts) for a, clients in enumerate(groups))
    )
    seconds = time.perf_counter() - started
    for clients in groups:
        for client in clients:
            await client.close()
    return LoadResult(
        tabs=agents * tabs,
        events_sent=sum(sent for sent, _ in results),
        seconds=seconds,
        latencies=[lat for _, lats in results for lat in lats],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--tabs", type=int, default=3)
    parser.add_argument("--contacts", type=int, default=5)
    args = parser.parse_args()
    result = asyncio.run(
        run_load(args.url, args.secret, agents=args.agents, tabs=args.tabs, contacts=args.contacts)
    )
    print(json.dumps(result.summary()))


if __name__ == "__main__":
    main()
