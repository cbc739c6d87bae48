"""Stream entries as WebSocket frames: each entry encoded once per subprotocol.

An agent's stream entry goes to every one of its tabs, and every tab of a subprotocol gets
the same bytes (the entry's message, its position, not replayed). `EntryFrames` keeps the
frames of the most recent entries so the fan-out encodes an entry once per subprotocol, not
once per tab. Replays (a resuming tab's missed entries, marked `replayed`) are one tab's
and are encoded for it alone.
"""

from collections import OrderedDict
from typing import Any

from daemon.store.base import StreamEntry
from protocol.codec import Codec

Frame = str | bytes


def entry_data(entry: StreamEntry, *, replayed: bool) -> dict[str, Any]:
    """The message a tab is sent for a stream entry: the envelope's, with its position."""
    data: dict[str, Any] = dict(entry.envelope.message)
    data["pos"] = {"epoch": entry.epoch, "seq": entry.seq}
    data["replayed"] = replayed
    return data


class EntryFrames:
    """Frames of recent stream entries, by entry and subprotocol; at most `capacity` kept.

    Entries are recognised by identity (the hub hands the same object to every tab), and a
    kept frame holds its entry, so an id is never reused while its frame is kept. The oldest
    frame goes first; a tab that is behind simply encodes again.
    """

    def __init__(self, capacity: int = 512) -> None:
        self.capacity = capacity
        # Ordered for eviction: O(1) `popitem(last=False)` (see `protocol.codec.RecentFrames`).
        self._frames: OrderedDict[tuple[int, str], tuple[StreamEntry, Frame]] = OrderedDict()

    def live(self, entry: StreamEntry, codec: Codec) -> Frame:
        """The entry's frame for `codec`, as sent live (not replayed)."""
        key = (id(entry), codec.subprotocol)
        kept = self._frames.get(key)
        if kept is not None and kept[0] is entry:
            return kept[1]
        frame = codec.dumps(entry_data(entry, replayed=False))
        self._frames[key] = (entry, frame)
        if len(self._frames) > self.capacity:
            self._frames.popitem(last=False)
        return frame

    def __len__(self) -> int:
        return len(self._frames)
