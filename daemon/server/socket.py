"""The server side of one tab's WebSocket, as the connection handler uses it."""

import asyncio

from websockets.asyncio.server import ServerConnection, broadcast
from websockets.protocol import State


class TabSocket(ServerConnection):
    """A `websockets` server connection with a bounded close and a send that never waits."""

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close, bounded by `close_timeout` whatever the client does.

        The library's close first waits for the write buffer to drain, with no time limit; a
        client that stops reading would hold it (and a stopping daemon, which closes every
        connection) until the keepalive gives up, tens of seconds later. Past the timeout the
        TCP connection is aborted instead.
        """
        try:
            await asyncio.wait_for(super().close(code, reason), self.close_timeout)
        except TimeoutError:
            self.transport.abort()

    async def closed_within(self, seconds: float) -> None:
        """Return once the connection is closed or after `seconds`, whichever comes first.

        What `wait_for(wait_closed(), seconds)` does without a task to run `wait_closed` and
        a cancellation to end it: this is how a paced frame waits, once per frame while an
        agent is over its rate. Cancelling the caller cancels only the wait.
        """
        await asyncio.wait((self.connection_lost_waiter,), timeout=seconds)

    def frames_buffered(self) -> bool:
        """Whether a frame has arrived that `recv` has not returned yet (so the next `recv`
        returns at once, without a turn of the event loop).

        Reads the library's receive queue (`websockets` 17's `Assembler.frames`; the version
        is pinned); were it missing, the answer is True, which costs only a yield.
        """
        frames = getattr(self.recv_messages, "frames", None)
        return frames is None or len(frames) > 0

    def send_now(self, frame: str | bytes) -> bool:
        """Write one whole message now if the socket takes it at once, else do nothing.

        True: the message was handed to the transport, as `send` would have (text for a
        `str`, binary for `bytes`). False, and nothing written: the connection is not open
        or its write buffer still holds data, i.e. the client is slow; use `send`, which
        waits for the buffer to drain (back-pressure), then. Needs no task and no await, so
        a stream entry reaches every idle tab of an agent in the commit's own turn.
        """
        if self.protocol.state is not State.OPEN or self.transport.get_write_buffer_size():
            return False
        broadcast((self,), frame)
        return True
