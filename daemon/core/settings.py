"""Workflow settings: the app settings, overridden per contact by contact attributes.

The administrator guide promises a table of settings, each with a default, sometimes an app
setting, and an attribute a contact flow may set to override it. `effective_settings` folds
the three into one `EffectiveSettings` for one contact, applying the value rules of the
original app exactly:

- ``''``, ``-``, ``none``, ``empty``, ``ignore``, ``timeout`` (any case, trimmed) mean "not
  set": the default applies and nothing is reported (contact flows use them as placeholders);
- booleans accept ``true t 1 yes y`` / ``false f 0 no n``;
- numbers must be numeric; phone numbers may contain spaces, dots, brackets and dashes, which
  are stripped; ``dialed_number`` must be E.164;
- an invalid value gives a warning for the agent ("Expecting a phone number in attribute
  customer_number, got: …") and the default applies. Never an exception: a typo in a contact
  flow must not cost the customer their ticket.

Pure: no I/O, no clock. The policy calls it on every plan, so a contact flow that changes an
attribute mid-contact is honoured from then on (decisions already journaled stay made).
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

AssignmentMode = Literal["auto", "agent"]
SpeechAnalysis = Literal["transcript", "comprehend", "sentiment"]

NOT_SET = frozenset({"", "-", "none", "empty", "ignore", "timeout"})
TRUE_WORDS = frozenset({"true", "t", "1", "yes", "y"})
FALSE_WORDS = frozenset({"false", "f", "0", "no", "n"})
LANGUAGES: tuple[str, ...] = (
    "en", "es", "fr", "de", "it", "pt", "ar", "hi", "ja", "ko", "zh", "zh-TW",
)  # fmt: skip
SPEECH_ANALYSIS: tuple[SpeechAnalysis, ...] = ("transcript", "comprehend", "sentiment")

# Attributes that configure the workflow rather than describe the customer: they are left out
# of the attributes comment (an agent reading the ticket has no use for "voice_comment: true").
# The data attributes (zendesk_user, customer_number, customer_name, customer_email,
# dialed_number and the ticket-number attribute) stay: they tell the agent what the IVR learnt.
CONFIG_ATTRIBUTES: frozenset[str] = frozenset(
    {
        "recent_ticket_timeout",
        "ticket_assignment",
        "pop_incoming",
        "voice_comment",
        "download_recording",
        "customer_language",
        "force_ticket_creation",
        "speech_analysis",
        "pause_recording",
        "all_outbound",
        "chat_transcript",
    }
)

_PHONE_JUNK = re.compile(r"[\s.()\[\]\-]")
_PHONE = re.compile(r"\+?[0-9]+")
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?")
_INTEGER = re.compile(r"[0-9]+")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")


def is_not_set(value: str | None) -> bool:
    """True for a missing attribute or one of the placeholder values contact flows use."""
    return value is None or value.strip().lower() in NOT_SET


def normalise_phone(value: str) -> str | None:
    """Strip the separators people type; None unless what is left is ``+``? digits."""
    stripped = _PHONE_JUNK.sub("", value.strip())
    return stripped if _PHONE.fullmatch(stripped) else None


class AppSettings(BaseModel):
    """The app settings an administrator configures once for the whole account."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    instance_url: str = Field(
        default="", description="Amazon Connect instance URL, e.g. https://acme.my.connect.aws"
    )
    country_prefix: str = Field(
        default="", description="Default country prefix (e.g. +44) stripped before a phone search"
    )
    default_dialed_number: str | None = Field(
        default=None, description="Default entry point / outbound caller id number (E.164)"
    )
    ticket_attribute: str = Field(
        default="zendesk_ticket",
        min_length=1,
        description="Attribute holding the Zendesk ticket number",
    )
    recent_ticket_timeout: float = Field(
        default=0,
        ge=0,
        description="Create ticket after minutes: reuse a recent ticket (0 = never)",
    )
    compact_attributes: bool = Field(
        default=False, description="One-line layout for attribute comments"
    )
    ctr_time_zone: str | None = Field(
        default=None, description="Time zone for contact trace record links"
    )
    upload_recordings: bool = Field(
        default=False, description="Upload recordings to Zendesk so links do not expire"
    )
    talk_partner: bool = Field(
        default=True, description="Talk Partner Edition is available (voice tickets, via 45/46)"
    )
    excluded_attributes: tuple[str, ...] = Field(
        default=(), description="More system attributes to leave out of the attributes comment"
    )
    media_less: bool = Field(
        default=False,
        description="Media-less mode: the app's embedded CCPs carry no audio (softphone off); "
        "the media CCP page does. Not a workflow rule: the app page starts from it",
    )

    @field_validator("instance_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.strip().rstrip("/")

    @field_validator("default_dialed_number")
    @classmethod
    def _e164(cls, value: str | None) -> str | None:
        if value is None or is_not_set(value):
            return None
        phone = normalise_phone(value)
        if phone is None or not _E164.fullmatch(phone):
            raise ValueError(f"expecting a phone number in E.164 format, got: {value}")
        return phone

    @field_validator("country_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        value = _PHONE_JUNK.sub("", value.strip())
        if value and not _PHONE.fullmatch(value):
            raise ValueError(f"expecting a country prefix such as +44, got: {value}")
        return value


@dataclass(frozen=True, slots=True)
class EffectiveSettings:
    """Every setting of the guide's table, resolved for one contact."""

    recent_ticket_timeout: float  # minutes; 0 = never reuse a recent ticket
    ticket_assignment: AssignmentMode
    pop_incoming: bool
    voice_comment: bool
    download_recording: bool
    dialed_number: str | None
    zendesk_ticket: int | None  # 0: the customer asked for a new ticket
    zendesk_user: int | None
    customer_number: str | None
    customer_name: str | None
    customer_email: str | None
    customer_language: str
    force_ticket_creation: bool
    speech_analysis: frozenset[SpeechAnalysis]
    pause_recording: bool
    all_outbound: bool
    chat_transcript: bool
    ticket_attribute: str  # the attribute name the ticket number was read from


def system_attributes(app: AppSettings) -> frozenset[str]:
    """Attribute names left out of the attributes comment."""
    return CONFIG_ATTRIBUTES | frozenset(app.excluded_attributes)


class _Reader:
    """Reads attributes one rule at a time, collecting warnings instead of raising."""

    def __init__(self, attributes: Mapping[str, str]) -> None:
        self.attributes = attributes
        self.warnings: list[str] = []

    def raw(self, name: str) -> str | None:
        value = self.attributes.get(name)
        return None if is_not_set(value) else str(value).strip()

    def warn(self, expecting: str, name: str, value: str) -> None:
        self.warnings.append(f"Expecting {expecting} in attribute {name}, got: {value}")

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        word = value.lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        self.warn("true or false", name, value)
        return default

    def number(self, name: str, default: float) -> float:
        value = self.raw(name)
        if value is None:
            return default
        if _NUMBER.fullmatch(value):
            return float(value)
        self.warn("a number", name, value)
        return default

    def integer(self, name: str) -> int | None:
        value = self.raw(name)
        if value is None:
            return None
        if _INTEGER.fullmatch(value):
            return int(value)
        self.warn("a number", name, value)
        return None

    def phone(self, name: str, *, e164: bool = False) -> str | None:
        value = self.raw(name)
        if value is None:
            return None
        phone = normalise_phone(value)
        if phone is not None and (not e164 or _E164.fullmatch(phone)):
            return phone
        self.warn("a phone number in E.164 format" if e164 else "a phone number", name, value)
        return None

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.raw(name)
        if value is None:
            return default
        for choice in choices:
            if value.lower() == choice.lower():
                return choice
        self.warn(" or ".join(choices) if len(choices) == 2 else "one of " + ", ".join(choices),
                  name, value)  # fmt: skip
        return default

    def text(self, name: str) -> str | None:
        return self.raw(name)

    def email(self, name: str) -> str | None:
        value = self.raw(name)
        if value is None:
            return None
        if _EMAIL.fullmatch(value):
            return value
        self.warn("an email address", name, value)
        return None

    def analysis(self, name: str) -> frozenset[SpeechAnalysis]:
        value = self.raw(name)
        if value is None:
            return frozenset()
        chosen: set[SpeechAnalysis] = set()
        for item in value.split(","):
            word = item.strip().lower()
            if not word:
                continue
            match = next((a for a in SPEECH_ANALYSIS if a == word), None)
            if match is None:
                self.warn("a comma list of transcript, comprehend, sentiment", name, value)
                return frozenset()
            chosen.add(match)
        return frozenset(chosen)


def effective_settings(
    app: AppSettings, attributes: Mapping[str, str]
) -> tuple[EffectiveSettings, list[str]]:
    """The settings for one contact, and a warning for each attribute value that was invalid.

    App settings give the defaults where the original had one ("Create ticket after minutes",
    "Default entry point phone number", the ticket-number attribute's name); every other
    default is the guide's.
    """
    r = _Reader(attributes)
    mode = r.choice("ticket_assignment", ("auto", "agent"), "auto")
    settings = EffectiveSettings(
        recent_ticket_timeout=r.number("recent_ticket_timeout", app.recent_ticket_timeout),
        ticket_assignment="agent" if mode == "agent" else "auto",
        pop_incoming=r.boolean("pop_incoming", True),
        voice_comment=r.boolean("voice_comment", True),
        download_recording=r.boolean("download_recording", True),
        dialed_number=r.phone("dialed_number", e164=True) or app.default_dialed_number,
        zendesk_ticket=r.integer(app.ticket_attribute),
        zendesk_user=r.integer("zendesk_user"),
        customer_number=r.phone("customer_number"),
        customer_name=r.text("customer_name"),
        customer_email=r.email("customer_email"),
        customer_language=r.choice("customer_language", LANGUAGES, "en"),
        force_ticket_creation=r.boolean("force_ticket_creation", True),
        speech_analysis=r.analysis("speech_analysis"),
        pause_recording=r.boolean("pause_recording", False),
        all_outbound=r.boolean("all_outbound", False),
        chat_transcript=r.boolean("chat_transcript", True),
        ticket_attribute=app.ticket_attribute,
    )
    return settings, r.warnings
