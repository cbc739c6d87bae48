"""Reading Zendesk input objects (``{"ticket": {...}}``, ``{"user": {...}}``).

Zendesk answers a wrongly typed field with 422 ``RecordInvalid`` naming the field; these
getters do the same so a client bug shows up as the error Zendesk would give, not as a crash.
"""

from __future__ import annotations

import html
import re
from typing import Any

from daemon.sandbox.errors import ApiError, invalid

_TAG = re.compile(r"<[^>]+>")
_BREAK = re.compile(r"<br\s*/?>|</p>|</div>", re.IGNORECASE)


def envelope(doc: Any, key: str) -> dict[str, Any]:
    """The object under ``key`` in a request body, or 400 as Zendesk answers a bad body."""
    if not isinstance(doc, dict) or not isinstance(doc.get(key), dict):
        raise ApiError(400, "ParameterMissing", f"param is missing or the value is empty: {key}")
    inner: dict[str, Any] = doc[key]
    return inner


def opt_str(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(key, f"{key}: must be a string")
    return value


def opt_int(obj: dict[str, Any], key: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.isdigit():
            return int(value)
        raise invalid(key, f"{key}: must be an integer")
    return value


def opt_bool(obj: dict[str, Any], key: str) -> bool | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise invalid(key, f"{key}: must be true or false")
    return value


def opt_obj(obj: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid(key, f"{key}: must be an object")
    return value


def opt_str_list(obj: dict[str, Any], key: str) -> list[str] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid(key, f"{key}: must be a list of strings")
    return list(value)


def text_to_html(body: str) -> str:
    """How Zendesk renders a plain-text comment as HTML."""
    escaped = html.escape(body).replace("\n", "<br>")
    return f'<div class="zd-comment" dir="auto">{escaped}</div>'


def html_to_text(markup: str) -> str:
    """A plain-text rendering of an HTML comment (Zendesk's ``plain_body``)."""
    text = _BREAK.sub("\n", markup)
    return html.unescape(_TAG.sub("", text)).strip()
