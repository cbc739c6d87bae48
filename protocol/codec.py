"""Frame codecs for the two subprotocols, and the one place client frames are parsed.

Both codecs carry the same maps; JSON rides text frames and msgpack binary frames. Parsing
turns every way a frame can be wrong into a ProtocolError with a code the tab can act on.
"""

import json
from dataclasses import dataclass
from typing import Any

import msgpack
from pydantic import BaseModel, ValidationError

from protocol.errors import ErrorCode, ProtocolError
from protocol.messages import CLIENT_MESSAGE, SERVER_MESSAGE, ClientMessage, ServerMessage

JSON_SUBPROTOCOL = "switchboard.v1.json"
MSGPACK_SUBPROTOCOL = "switchboard.v1.msgpack"
SUBPROTOCOLS = (JSON_SUBPROTOCOL, MSGPACK_SUBPROTOCOL)

_CLIENT_TYPES = frozenset({"hello", "contact_event", "chat_message", "command", "media_status"})


@dataclass(frozen=True, slots=True)
class Codec:
    """Encodes server messages and decodes client frames for one subprotocol."""

    subprotocol: str

    @property
    def binary(self) -> bool:
        return self.subprotocol == MSGPACK_SUBPROTOCOL

    def dumps(self, data: dict[str, Any]) -> str | bytes:
        if self.binary:
            packed: bytes = msgpack.packb(data, use_bin_type=True)
            return packed
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)

    def encode(self, message: BaseModel) -> str | bytes:
        return self.dumps(message.model_dump(mode="json", exclude_none=True))

    def loads(self, frame: str | bytes) -> Any:
        """Parse a frame of this subprotocol's kind; the wrong frame kind is a bad frame."""
        if self.binary:
            if not isinstance(frame, bytes):
                raise ProtocolError(ErrorCode.BAD_FRAME, "expected a binary msgpack frame")
            try:
                return msgpack.unpackb(frame, raw=False, strict_map_key=True)
            except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as e:
                raise ProtocolError(ErrorCode.BAD_FRAME, f"malformed msgpack: {e}") from e
        if not isinstance(frame, str):
            raise ProtocolError(ErrorCode.BAD_FRAME, "expected a text JSON frame")
        try:
            return json.loads(frame)
        except ValueError as e:
            raise ProtocolError(ErrorCode.BAD_FRAME, f"malformed JSON: {e}") from e

    def decode_client(self, frame: str | bytes) -> ClientMessage:
        return parse_client_message(self.loads(frame))

    def decode_server(self, frame: str | bytes) -> ServerMessage:
        return SERVER_MESSAGE.validate_python(self.loads(frame))


def codec_for(subprotocol: str | None) -> Codec | None:
    return Codec(subprotocol) if subprotocol in SUBPROTOCOLS else None


def parse_client_message(data: Any) -> ClientMessage:
    """Validate one decoded client map, naming the first problem in words."""
    if not isinstance(data, dict):
        raise ProtocolError(ErrorCode.BAD_FRAME, "a message must be a map with a 'type'")
    ref = data.get("ref") if isinstance(data.get("ref"), str) else None
    kind = data.get("type")
    if kind not in _CLIENT_TYPES:
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown message type: {kind!r}", ref)
    try:
        return CLIENT_MESSAGE.validate_python(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"][1:]) or "message"
        raise ProtocolError(
            ErrorCode.INVALID_MESSAGE, f"{kind}: {where}: {first['msg']}", ref
        ) from e
