"""Value rules of the workflow settings, one row per rule and per row of the guide's table."""

from typing import Any

import pytest
from pydantic import ValidationError

from daemon.core.settings import (
    AppSettings,
    effective_settings,
    is_not_set,
    normalise_phone,
    system_attributes,
)

APP = AppSettings()


def eff(attrs: dict[str, str], app: AppSettings = APP) -> tuple[Any, list[str]]:
    return effective_settings(app, attrs)


# -- defaults: the guide's "Default settings" table -------------------------------------------


def test_defaults_are_the_guides() -> None:
    s, warnings = eff({})
    assert warnings == []
    assert s.recent_ticket_timeout == 0
    assert s.ticket_assignment == "auto"
    assert s.pop_incoming is True
    assert s.voice_comment is True
    assert s.download_recording is True
    assert s.force_ticket_creation is True
    assert s.dialed_number is None
    assert s.zendesk_ticket is None
    assert s.zendesk_user is None
    assert s.customer_number is None
    assert s.customer_name is None
    assert s.customer_email is None
    assert s.customer_language == "en"
    assert s.speech_analysis == frozenset()
    assert s.pause_recording is False
    assert s.all_outbound is False
    assert s.chat_transcript is True
    assert s.ticket_attribute == "zendesk_ticket"


# -- "not set" values ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["", "-", "none", "NONE", " empty ", "Ignore", "TIMEOUT", "  "])
def test_not_set_values_mean_the_default_without_a_warning(value: str) -> None:
    s, warnings = eff({"voice_comment": value, "customer_number": value, "zendesk_ticket": value})
    assert (s.voice_comment, s.customer_number, s.zendesk_ticket) == (True, None, None)
    assert warnings == []
    assert is_not_set(value)


# -- booleans ------------------------------------------------------------------------------------

BOOLEANS = [
    "pop_incoming",
    "voice_comment",
    "download_recording",
    "force_ticket_creation",
    "pause_recording",
    "all_outbound",
    "chat_transcript",
]


@pytest.mark.parametrize("name", BOOLEANS)
@pytest.mark.parametrize(
    ("value", "expected"),
    [(v, True) for v in ["true", "T", "1", "yes", "Y", " True "]]
    + [(v, False) for v in ["false", "F", "0", "no", "N", "FALSE"]],
)
def test_booleans(name: str, value: str, expected: bool) -> None:
    s, warnings = eff({name: value})
    assert getattr(s, name) is expected
    assert warnings == []


@pytest.mark.parametrize("name", BOOLEANS)
def test_invalid_boolean_warns_and_keeps_the_default(name: str) -> None:
    default = getattr(eff({})[0], name)
    s, warnings = eff({name: "maybe"})
    assert getattr(s, name) is default
    assert warnings == [f"Expecting true or false in attribute {name}, got: maybe"]


# -- numbers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected", "warned"),
    [
        ("15", 15.0, False),
        ("0", 0.0, False),
        ("2.5", 2.5, False),
        ("ten", 0.0, True),
        ("-5", 0.0, True),
    ],
)
def test_recent_ticket_timeout(value: str, expected: float, warned: bool) -> None:
    s, warnings = eff({"recent_ticket_timeout": value})
    assert s.recent_ticket_timeout == expected
    assert bool(warnings) is warned
    if warned:
        assert warnings == [f"Expecting a number in attribute recent_ticket_timeout, got: {value}"]


def test_recent_ticket_timeout_overrides_the_app_setting() -> None:
    app = AppSettings(recent_ticket_timeout=30)
    assert eff({}, app)[0].recent_ticket_timeout == 30
    assert eff({"recent_ticket_timeout": "5"}, app)[0].recent_ticket_timeout == 5
    assert eff({"recent_ticket_timeout": "none"}, app)[0].recent_ticket_timeout == 30
    assert eff({"recent_ticket_timeout": "x"}, app)[0].recent_ticket_timeout == 30


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("zendesk_ticket", "123", 123),
        ("zendesk_ticket", "0", 0),
        ("zendesk_ticket", "#12", None),
        ("zendesk_user", "77", 77),
        ("zendesk_user", "abc", None),
    ],
)
def test_ids_must_be_numeric(name: str, value: str, expected: int | None) -> None:
    s, warnings = eff({name: value})
    assert getattr(s, name) == expected
    assert (warnings == []) is (expected is not None)


def test_ticket_attribute_name_is_an_app_setting() -> None:
    app = AppSettings(ticket_attribute="ivr_ticket")
    s, _ = eff({"ivr_ticket": "42", "zendesk_ticket": "7"}, app)
    assert s.zendesk_ticket == 42
    assert s.ticket_attribute == "ivr_ticket"
    s, warnings = eff({"ivr_ticket": "x"}, app)
    assert warnings == ["Expecting a number in attribute ivr_ticket, got: x"]


# -- phone numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("+44 (0) 7700-900.123", "+4407700900123"),
        ("07700 900123", "07700900123"),
        ("[020] 7946 0000", "02079460000"),
        ("+1-202-555-0101", "+12025550101"),
    ],
)
def test_phone_numbers_lose_spaces_dots_brackets_dashes(value: str, expected: str) -> None:
    s, warnings = eff({"customer_number": value})
    assert s.customer_number == expected
    assert warnings == []
    assert normalise_phone(value) == expected


@pytest.mark.parametrize("value", ["call me", "12ab34", "++44", "44+1"])
def test_invalid_phone_number_warns(value: str) -> None:
    s, warnings = eff({"customer_number": value})
    assert s.customer_number is None
    assert warnings == [f"Expecting a phone number in attribute customer_number, got: {value}"]


def test_dialed_number_must_be_e164_and_defaults_to_the_app_setting() -> None:
    app = AppSettings(default_dialed_number="+44 1632 960000")
    assert app.default_dialed_number == "+441632960000"
    assert eff({}, app)[0].dialed_number == "+441632960000"
    assert eff({"dialed_number": "+1 202 555 0101"}, app)[0].dialed_number == "+12025550101"
    s, warnings = eff({"dialed_number": "01632 960000"}, app)
    assert s.dialed_number == "+441632960000"
    assert warnings == [
        "Expecting a phone number in E.164 format in attribute dialed_number, got: 01632 960000"
    ]
    assert eff({})[0].dialed_number is None  # "null" without an app setting


def test_app_settings_validate_their_numbers() -> None:
    with pytest.raises(ValidationError):
        AppSettings(default_dialed_number="12345")
    with pytest.raises(ValidationError):
        AppSettings(country_prefix="uk")
    assert AppSettings(country_prefix="+44 ").country_prefix == "+44"
    assert AppSettings(instance_url="https://a.my.connect.aws/").instance_url == (
        "https://a.my.connect.aws"
    )


# -- choices and lists --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected", "warned"),
    [("auto", "auto", False), ("AGENT", "agent", False), ("manual", "auto", True)],
)
def test_ticket_assignment(value: str, expected: str, warned: bool) -> None:
    s, warnings = eff({"ticket_assignment": value})
    assert s.ticket_assignment == expected
    assert bool(warnings) is warned
    if warned:
        assert warnings == [f"Expecting auto or agent in attribute ticket_assignment, got: {value}"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("en", "en"),
        ("FR", "fr"),
        ("zh-tw", "zh-TW"),
        ("zh", "zh"),
        ("ja", "ja"),
        ("xx", "en"),
        ("english", "en"),
    ],
)
def test_customer_language(value: str, expected: str) -> None:
    s, warnings = eff({"customer_language": value})
    assert s.customer_language == expected
    assert bool(warnings) is (value.lower() not in {"en", "fr", "zh-tw", "zh", "ja"})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("transcript", {"transcript"}),
        ("transcript, comprehend,sentiment", {"transcript", "comprehend", "sentiment"}),
        ("Sentiment", {"sentiment"}),
        ("transcript,,", {"transcript"}),
        ("transcript,emotions", set()),
    ],
)
def test_speech_analysis_is_a_comma_list(value: str, expected: set[str]) -> None:
    s, warnings = eff({"speech_analysis": value})
    assert s.speech_analysis == frozenset(expected)
    assert bool(warnings) is ("emotions" in value)


def test_text_and_email_attributes() -> None:
    s, warnings = eff({"customer_name": "  Ann Smith ", "customer_email": "ann@example.com"})
    assert (s.customer_name, s.customer_email) == ("Ann Smith", "ann@example.com")
    assert warnings == []
    s, warnings = eff({"customer_email": "not an email"})
    assert s.customer_email is None
    assert warnings == ["Expecting an email address in attribute customer_email, got: not an email"]


def test_several_invalid_values_give_several_warnings_and_never_raise() -> None:
    s, warnings = eff(
        {"pop_incoming": "perhaps", "customer_number": "abc", "recent_ticket_timeout": "soon"}
    )
    assert s.pop_incoming is True and s.customer_number is None
    assert len(warnings) == 3


def test_system_attributes_exclude_configuration_and_configured_extras() -> None:
    hidden = system_attributes(AppSettings(excluded_attributes=("internal_flag",)))
    assert {"voice_comment", "ticket_assignment", "internal_flag"} <= hidden
    assert "customer_name" not in hidden and "zendesk_ticket" not in hidden
