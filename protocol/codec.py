"""Frame codecs for the two subprotocols, and the one place client frames are parsed.

Both codecs carry the same maps; JSON rides text frames and msgpack binary frames. Parsing
turns every way a frame can be wrong into a ProtocolError with a code the tab can act on:
nothing a tab sends may raise anything else (a RecursionError or TypeError here would close
the connection with 1011 and log a traceback per frame).

Parsing is defensive about shape before it is strict about content. No client message nests
deeper than four levels, so a frame deeper than `MAX_DEPTH` is refused before the JSON
decoder recurses into it (msgpack's decoder is iterative; its result is checked the same way),
containers and strings are bounded inside the msgpack decoder, and lone UTF-16 surrogates
(which JSON escapes can produce but no encoder downstream accepts) are refused.
"""

import json
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import msgpack
import orjson
from pydantic import BaseModel, ValidationError

from protocol.errors import ErrorCode, ProtocolError
from protocol.messages import (
    CLIENT_MESSAGE,
    ID_MAX_LENGTH,
    ID_PATTERN,
    SERVER_MESSAGE,
    ClientMessage,
    Hello,
    ServerMessage,
)

JSON_SUBPROTOCOL = "switchboard.v1.json"
MSGPACK_SUBPROTOCOL = "switchboard.v1.msgpack"
SUBPROTOCOLS = (JSON_SUBPROTOCOL, MSGPACK_SUBPROTOCOL)

_CLIENT_TYPES = frozenset({"hello", "contact_event", "chat_message", "command", "media_status"})

MAX_DEPTH = 8  # nesting of maps and lists in one client frame (the protocol needs 4)
_MSGPACK_LIMITS = {
    "max_str_len": 64 * 1024,  # the frame size bounds these too; the models bound them tighter
    "max_bin_len": 0,  # no client field is binary
    "max_ext_len": 0,
    "max_array_len": 64,  # no client field is a list
    "max_map_len": 256,  # the largest client map is 200 attributes
}
# A JSON string token (escapes included); brackets inside one are not structure.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_EMPTY_PAIR = re.compile(r"[\[{][\]}]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_VALID_ID = re.compile(ID_PATTERN)
_MAX_ECHO = 80  # characters of a client's value quoted back in an error


def _refuse_constant(name: str) -> Any:
    """Python's JSON decoder accepts NaN and Infinity, which JSON does not have."""
    raise ValueError(f"{name} is not a JSON value")


# Made once: `json.loads` with options builds a new decoder per call. Encoding (the daemon's
# own, trusted maps: every stream entry a tab is sent) is orjson's, several times faster than
# the standard library's, which was a tenth of the daemon's CPU per event; decoding client
# frames stays with the standard decoder, whose failures the checks above are written for.
_decode_json = json.JSONDecoder(parse_constant=_refuse_constant).decode


def _encode_json(data: dict[str, Any]) -> str:
    return orjson.dumps(data).decode()


def json_too_deep(text: str, limit: int = MAX_DEPTH) -> bool:
    """True if the JSON text nests more than `limit` levels, decided without recursion.

    Strings are blanked out, leaving the bracket skeleton; each pass of a regular expression
    removes every innermost pair, i.e. one level of the tree, so a well-formed skeleton
    is empty after exactly as many passes as it is deep. What is left after `limit` passes
    was deeper; unbalanced leftovers count their openers (the decoder reports the rest).
    Text with no more openers than `limit` cannot be deeper: most frames stop there.
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    skeleton = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    passes = 0
    while skeleton:
        reduced = _EMPTY_PAIR.sub("", skeleton)
        if reduced == skeleton:  # unbalanced: only closers then openers are left
            return passes + skeleton.count("[") + skeleton.count("{") > limit
        if passes == limit:
            return True
        skeleton, passes = reduced, passes + 1
    return False


def too_deep(data: Any, limit: int = MAX_DEPTH) -> bool:
    """True if decoded data nests more than `limit` levels; iterative, visits containers only."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value
        for child in children:
            if isinstance(child, dict | list):
                if depth >= limit:
                    return True
                stack.append((child, depth + 1))
    return False


def _too_deep() -> ProtocolError:
    return ProtocolError(ErrorCode.BAD_FRAME, f"nested deeper than {MAX_DEPTH}")


def _shorten(text: str) -> str:
    return text if len(text) <= _MAX_ECHO else text[: _MAX_ECHO - 3] + "..."


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
        return _encode_json(data)

    def encode(self, message: BaseModel) -> str | bytes:
        return self.dumps(message.model_dump(mode="json", exclude_none=True))

    def loads(self, frame: str | bytes) -> Any:
        """Parse a client frame of this subprotocol's kind; the wrong kind is a bad frame.

        Raises only ProtocolError (BAD_FRAME): malformed, too deep, over a container or
        string bound, or a string no encoder downstream could write.
        """
        if self.binary:
            if not isinstance(frame, bytes):
                raise ProtocolError(ErrorCode.BAD_FRAME, "expected a binary msgpack frame")
            try:
                data = msgpack.unpackb(frame, raw=False, strict_map_key=True, **_MSGPACK_LIMITS)
            except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as e:
                raise ProtocolError(ErrorCode.BAD_FRAME, f"malformed msgpack: {e}") from e
            if isinstance(data, dict | list) and too_deep(data):
                raise _too_deep()
            return data
        if not isinstance(frame, str):
            raise ProtocolError(ErrorCode.BAD_FRAME, "expected a text JSON frame")
        if json_too_deep(frame):
            raise _too_deep()
        try:
            data = _decode_json(frame)
        except (ValueError, RecursionError) as e:
            raise ProtocolError(ErrorCode.BAD_FRAME, f"malformed JSON: {e}") from e
        if _SURROGATE_ESCAPE.search(frame) is not None:
            try:
                json.dumps(data, ensure_ascii=False).encode()
            except UnicodeEncodeError as e:
                raise ProtocolError(ErrorCode.BAD_FRAME, "malformed JSON: a lone surrogate") from e
        return data

    def decode_client(self, frame: str | bytes) -> ClientMessage:
        """The client message in `frame`; raises ProtocolError (`loads`, `parse_client_message`).

        Decoding is a pure function of the frame's bytes and its subprotocol, and messages are
        immutable, so a frame seen recently is answered from `RECENT_FRAMES`: an agent's tabs
        each report the same event in the same bytes, and only the first pays for parsing.
        """
        key = (self.subprotocol, frame)
        message = RECENT_FRAMES.get(key)
        if message is None:
            message = parse_client_message(self.loads(frame))
            RECENT_FRAMES.put(key, message)
        return message

    def decode_server(self, frame: str | bytes) -> ServerMessage:
        """The daemon's frames are trusted: no client bounds (a snapshot lists every contact)."""
        if isinstance(frame, bytes):
            return SERVER_MESSAGE.validate_python(msgpack.unpackb(frame, raw=False))
        return SERVER_MESSAGE.validate_python(json.loads(frame))


class RecentFrames:
    """Recently decoded frames and their messages: a bounded, first-in-first-out memo.

    Bounded twice so a hostile client can neither grow it nor make it costly: at most
    `capacity` entries, and only frames of at most `max_frame` characters or bytes are kept
    (a contact report is a few hundred), never a hello (its token). Frames that fail to
    decode are never kept, so every bad frame is refused with its own error. A flood of
    distinct frames only evicts other entries early, which costs their next sender one decode.
    """

    def __init__(self, capacity: int = 1024, max_frame: int = 2048) -> None:
        self.capacity = capacity
        self.max_frame = max_frame
        # Ordered for eviction: `popitem(last=False)` is O(1), where deleting a plain dict's
        # first key costs a scan over every slot deleted before it.
        self._messages: OrderedDict[tuple[str, str | bytes], ClientMessage] = OrderedDict()

    def get(self, key: tuple[str, str | bytes]) -> ClientMessage | None:
        return self._messages.get(key)

    def put(self, key: tuple[str, str | bytes], message: ClientMessage) -> None:
        if len(key[1]) > self.max_frame or isinstance(message, Hello):
            return  # a hello carries a token: kept by no one past its own connection
        self._messages[key] = message
        if len(self._messages) > self.capacity:
            self._messages.popitem(last=False)

    def __len__(self) -> int:
        return len(self._messages)


RECENT_FRAMES = RecentFrames()


def codec_for(subprotocol: str | None) -> Codec | None:
    return Codec(subprotocol) if subprotocol in SUBPROTOCOLS else None


def parse_client_message(data: Any) -> ClientMessage:
    """Validate one decoded client map, naming the first problem in words.

    Error messages quote client values shortened, and echo `ref` only when it is a valid id,
    so a refusal is never bigger than a few hundred bytes whatever the frame held.
    """
    if not isinstance(data, dict):
        raise ProtocolError(ErrorCode.BAD_FRAME, "a message must be a map with a 'type'")
    ref = data.get("ref")
    if not (isinstance(ref, str) and len(ref) <= ID_MAX_LENGTH and _VALID_ID.fullmatch(ref)):
        ref = None
    kind = data.get("type")
    if kind is not None and not isinstance(kind, str):
        raise ProtocolError(
            ErrorCode.INVALID_MESSAGE, f"type must be a string, not {type(kind).__name__}", ref
        )
    if kind not in _CLIENT_TYPES:
        raise ProtocolError(
            ErrorCode.UNKNOWN_TYPE, f"unknown message type: {_shorten(repr(kind))}", ref
        )
    try:
        return CLIENT_MESSAGE.validate_python(data)
    except ValidationError as e:
        first = e.errors(include_url=False, include_context=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"][1:]) or "message"
        raise ProtocolError(
            ErrorCode.INVALID_MESSAGE, f"{kind}: {_shorten(where)}: {first['msg']}", ref
        ) from e
