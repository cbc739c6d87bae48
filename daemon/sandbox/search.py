"""Zendesk search, including the lag of its index.

Zendesk search is eventually consistent: a new or changed user or ticket shows up in search
results only once indexed, which can take minutes. The index keeps versioned snapshots with the
time each becomes visible, so search answers from the newest *indexed* snapshot: a brand-new
user is invisible, and a user whose phone just changed is still found by the old number until
the new snapshot is visible.

Query syntax supported (the part of Zendesk's syntax the workflow uses): ``key:value`` filters,
``key:"quoted value"``, ``-key:value`` negation, ``*`` wildcards, ``status<solved`` /
``status>new`` comparisons, and bare words matched as
case-insensitive substrings of the text fields. ``phone:`` compares digits only, ``phone:*123``
is a suffix match, and users with a shared phone number are never found by phone (Zendesk keeps
shared numbers out of the identity index).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Literal

from daemon.sandbox.records import TICKET_STATUSES, TicketRecord, UserRecord

Kind = Literal["user", "ticket"]
Doc = UserRecord | TicketRecord

_TOKEN = re.compile(r'(-?)(?:([A-Za-z_]+)([:<>]))?("([^"]*)"|\S+)')
_ALIASES = {
    "requester": "requester_id",
    "assignee": "assignee_id",
    "submitter": "submitter_id",
    "ticket_type": "type",
}


@dataclass(frozen=True)
class Term:
    """One element of a query: ``key:value`` (key None for a bare word)."""

    key: str | None
    value: str
    negate: bool = False
    op: str = ":"


def parse_query(query: str) -> list[Term]:
    """Split a Zendesk search query into terms."""
    terms: list[Term] = []
    for match in _TOKEN.finditer(query):
        negate, key, op, raw, quoted = match.groups()
        value = quoted if quoted is not None else raw
        if key is not None:
            key = _ALIASES.get(key.lower(), key.lower())
        terms.append(Term(key=key, value=value, negate=bool(negate), op=op or ":"))
    return terms


def _digits(text: str | None) -> str:
    return "".join(ch for ch in text or "" if ch.isdigit())


def _phone_matches(user: UserRecord, pattern: str) -> bool:
    if user.shared_phone_number:
        return False
    have = _digits(user.phone)
    want = _digits(pattern)
    if not have or not want:
        return False
    if pattern.startswith("*") and pattern.endswith("*") and len(pattern) > 1:
        return want in have
    if pattern.startswith("*"):
        return have.endswith(want)
    if pattern.endswith("*"):
        return have.startswith(want)
    return have == want


def _text_matches(actual: str, pattern: str) -> bool:
    actual, pattern = actual.lower(), pattern.lower()
    if "*" in pattern:
        return fnmatchcase(actual, pattern)
    return actual == pattern


def _name_matches(name: str, pattern: str) -> bool:
    """A name matches the whole name or a run of whole words in it (case-insensitive)."""
    if "*" in pattern:
        return fnmatchcase(name.lower(), pattern.lower())
    words = name.lower().split()
    wanted = pattern.lower().split()
    if not wanted:
        return False
    return any(words[i : i + len(wanted)] == wanted for i in range(len(words) - len(wanted) + 1))


def _field_text(doc: Doc, key: str) -> str | None:
    value = getattr(doc, key, None)
    if value is None or isinstance(value, list | dict):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _free_text(doc: Doc, word: str) -> bool:
    needle = word.lower().strip("*")
    if isinstance(doc, UserRecord):
        fields = [doc.name, doc.email or "", doc.phone or "", doc.notes, doc.details]
        if _digits(needle) and needle == _digits(needle) and not doc.shared_phone_number:
            return needle in _digits(doc.phone)
    else:
        fields = [doc.subject, doc.description, *(c.body for c in doc.comments)]
    return any(needle in f.lower() for f in fields)


def _term_matches(doc: Doc, kind: Kind, term: Term) -> bool:
    key, value = term.key, term.value
    if key is None:
        return _free_text(doc, value)
    if key == "type":
        return value.lower() == kind
    if key == "phone":
        return isinstance(doc, UserRecord) and _phone_matches(doc, value)
    if key == "name" and isinstance(doc, UserRecord):
        return _name_matches(doc.name, value)
    if key == "status" and term.op in "<>" and isinstance(doc, TicketRecord):
        return _status_compare(doc.status, term.op, value)
    if key == "tags":
        return any(_text_matches(tag, value) for tag in doc.tags)
    actual = _field_text(doc, key)
    if actual is None:
        return value.lower() in ("none", "null")
    return _text_matches(actual, value)


def _status_compare(status: str, op: str, value: str) -> bool:
    """``status<solved``: Zendesk orders statuses new < open < pending < hold < solved < closed."""
    if value.lower() not in TICKET_STATUSES:
        return False
    have, want = TICKET_STATUSES.index(status), TICKET_STATUSES.index(value.lower())
    return have < want if op == "<" else have > want


def matches(doc: Doc, kind: Kind, terms: list[Term]) -> bool:
    """True when every term holds (negated terms must not hold)."""
    return all(_term_matches(doc, kind, t) != t.negate for t in terms)


def query_kind(terms: list[Term]) -> Kind | None:
    """The object type a query is restricted to, if any (``type:user``)."""
    for term in terms:
        if term.key == "type" and not term.negate and term.value.lower() in ("user", "ticket"):
            return "user" if term.value.lower() == "user" else "ticket"
    return None


class SearchIndex:
    """Versioned snapshots of users and tickets, each visible from a given time."""

    def __init__(self) -> None:
        self._versions: dict[tuple[Kind, int], list[tuple[float, Doc]]] = {}

    def clear(self) -> None:
        self._versions.clear()

    def put(self, kind: Kind, doc: Doc, visible_at: float) -> None:
        """Index a snapshot of ``doc`` (copied: later changes need their own ``put``)."""
        snapshot = copy.deepcopy(doc)
        versions = self._versions.setdefault((kind, doc.id), [])
        versions.append((visible_at, snapshot))
        versions.sort(key=lambda v: v[0])

    def visible(self, kind: Kind, now: float) -> list[Doc]:
        """The newest visible snapshot of every indexed object of ``kind``."""
        found: list[Doc] = []
        for (k, _id), versions in self._versions.items():
            if k != kind:
                continue
            current = [doc for at, doc in versions if at <= now]
            if current:
                # Older visible versions are never needed again.
                del versions[: len(current) - 1]
                found.append(current[-1])
        return found

    def search(self, terms: list[Term], now: float, kinds: tuple[Kind, ...]) -> list[Doc]:
        results: list[Doc] = []
        for kind in kinds:
            results.extend(doc for doc in self.visible(kind, now) if matches(doc, kind, terms))
        return results
