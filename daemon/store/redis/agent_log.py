"""The agent log over Redis: aggregate, stream and pub/sub notification (see `AgentLog`).

Keys of agent A (`<p>` the prefix; `{A}` a hash tag, so one agent's keys share one slot):

====================================  ========  =================================================
`<p>:{A}:state`                       hash      `v` version, `e` the stream epoch it was
                                                written in (with `v`, the `Revision` a commit
                                                must match), `h` the state's head, and
                                                `c:<contact id>` one entry per contact (a
                                                commit sets and deletes only the contacts it
                                                changed); idle TTL
`<p>:{A}:meta`                        hash      `e` stream epoch, `s` last seq, `o` a time (ms)
                                                no later than the oldest entry's append: an
                                                append looks at the stream's front for age
                                                only once `o` is past the max age; idle TTL
`<p>:{A}:stream`                      stream    entry id `<seq>-0`, field `d` = msgpack envelope,
                                                `t` = the committing node's clock (ms);
                                                `XADD MAXLEN ~ stream_max`, and entries older
                                                than `stream_max_age` dropped on append (at
                                                most 100 per commit); idle TTL
`<p>:{A}:commits`                     list      the last 16 commits, `<id>|<epoch>:<v>:<first>`:
                                                a re-sent commit is answered, not re-applied
`<p>:{A}:ch`                          channel   pub/sub (sharded on a cluster); one message
                                                per commit: msgpack `[epoch, first, env...]`
====================================  ========  =================================================

A lost stream (expired, flushed, Redis restarted empty) gets a *new* epoch on the next access,
which tells resuming tabs that they need a snapshot.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from typing import Any

from daemon.core.writes import StateWrite
from daemon.store.base import (
    NEVER_STORED,
    AgentLog,
    Committed,
    Envelope,
    GapListener,
    Resumed,
    Revision,
    StreamEntry,
    StreamListener,
    Subscription,
    Versioned,
)
from daemon.store.redis.common import (
    RedisBase,
    decode_entries,
    encode_envelope,
    to_text,
    translated,
)
from daemon.store.redis.pubsub import PubSubHub

HEADS_BATCH = 500  # HMGETs per pipeline in `stream_heads`
CONTACT = "c:"  # the state hash's field of a contact: `c:<contact id>`


class RedisAgentLog(RedisBase, AgentLog):
    _stream_max: int
    _stream_max_age_ms: int
    _publish: str
    _pubsub: PubSubHub
    _commit: Any  # registered scripts (see RedisStore.__init__)
    _commit_call: Any
    _head: Any
    _heads: Any
    _read: Any
    _resume: Any

    async def load_agent(self, agent: str) -> Versioned:
        """One HGETALL: the revision, the head and every contact entry, read together."""
        with translated():
            await self._ready()
            fields: dict[bytes, bytes] = await self._client.hgetall(self._key(agent, "state"))
        version, epoch = fields.pop(b"v", None), fields.pop(b"e", None)
        if version is None:
            return Versioned(NEVER_STORED, None)
        head = fields.pop(b"h", None)
        prefix = CONTACT.encode()
        contacts = {
            name[len(prefix) :].decode(): entry
            for name, entry in fields.items()
            if name.startswith(prefix)
        }
        return Versioned(_revision(version, epoch), head, contacts)

    async def load_revision(self, agent: str) -> Revision:
        with translated():
            await self._ready()
            version, epoch = await self._client.hmget(self._key(agent, "state"), ["v", "e"])
        return NEVER_STORED if version is None else _revision(version, epoch)

    async def commit_agent(
        self,
        agent: str,
        expected: Revision,
        state: StateWrite,
        envelopes: Sequence[Envelope],
        *,
        commit_id: str | None = None,
    ) -> Committed | None:
        encoded = [encode_envelope(envelope) for envelope in envelopes]
        puts = [part for cid, entry in state.put.items() for part in (CONTACT + cid, entry)]
        drops = [CONTACT + cid for cid in state.dropped]
        with translated():
            await self._ready()
            result = await self._commit_call(
                [
                    self._key(agent, "state"),
                    self._key(agent, "meta"),
                    self._key(agent, "stream"),
                    self._key(agent, "commits"),
                ],
                [
                    expected.version,
                    expected.epoch or "",
                    state.head,
                    secrets.token_hex(8),
                    self._stream_max,
                    self._idle_ttl,
                    self._publish,
                    self._channel(agent),
                    commit_id or secrets.token_hex(12),
                    self._stream_max_age_ms,
                    int(time.time() * 1000),
                    len(state.put),
                    len(drops),
                    *puts,
                    *drops,
                    *encoded,
                ],
            )
        if result is None:
            return None
        epoch, version, first = to_text(result).split(":")
        return Committed(
            Revision(epoch, int(version)),
            [StreamEntry(epoch, int(first) + i, envelope) for i, envelope in enumerate(envelopes)],
        )

    async def _commit_direct(self, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        return await self._commit(keys=keys, args=args)

    async def stream_head(self, agent: str) -> tuple[str, int]:
        with translated():
            await self._ready()
            epoch, seq = await self._head(
                keys=[self._key(agent, "meta"), self._key(agent, "stream")],
                args=[secrets.token_hex(8), self._idle_ttl],
            )
        return to_text(epoch), int(seq)

    async def stream_heads(self, agents: Sequence[str]) -> list[tuple[str, int] | None]:
        """One script per `HEADS_BATCH` agents on a single server (one command instead of
        hundreds: redis-py's per-command cost is what dominates); a pipeline of HMGETs on a
        cluster, where one script cannot read keys of several slots."""
        heads: list[tuple[str, int] | None] = []
        with translated():
            await self._ready()
            for start in range(0, len(agents), HEADS_BATCH):
                keys = [self._key(agent, "meta") for agent in agents[start : start + HEADS_BATCH]]
                if self._cluster:
                    pipe = self._client.pipeline(transaction=False)
                    for key in keys:
                        pipe.hmget(key, ["e", "s"])
                    replies = await pipe.execute()
                else:
                    replies = await self._heads(keys=keys)
                for epoch, seq in replies:
                    heads.append((to_text(epoch), int(seq or 0)) if epoch else None)
        return heads

    async def read_stream(self, agent: str, epoch: str, after: int) -> list[StreamEntry] | None:
        with translated():
            await self._ready()
            result = await self._read(
                keys=[self._key(agent, "meta"), self._key(agent, "stream")],
                args=[epoch, after],
            )
        return None if result is None else decode_entries(epoch, result)

    async def resume(self, agent: str, epoch: str | None, after: int) -> Resumed:
        with translated():
            await self._ready()
            head_epoch, head, missed = await self._resume(
                keys=[self._key(agent, "meta"), self._key(agent, "stream")],
                args=[secrets.token_hex(8), self._idle_ttl, epoch or "", after],
            )
        return Resumed(
            to_text(head_epoch),
            int(head),
            None if missed is None or epoch is None else decode_entries(epoch, missed),
        )

    async def subscribe(
        self, agent: str, listener: StreamListener, *, on_gap: GapListener | None = None
    ) -> Subscription:
        with translated():
            await self._ready()
        return await self._pubsub.add(self._channel(agent), listener, on_gap)

    def subscriptions(self, agent: str) -> int:
        return self._pubsub.count(self._channel(agent))


def _revision(version: bytes, epoch: bytes | None) -> Revision:
    return Revision(None if epoch is None else to_text(epoch), int(version))
