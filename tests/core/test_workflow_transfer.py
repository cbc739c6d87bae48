"""The trust rule for transfers across agents (`daemon.core.workflow.transfer`), pure."""

import dataclasses

import pytest

from daemon.core.workflow.transfer import TRANSFER_WINDOW_SECONDS, first_reporter, refusal
from tests.core.test_workflow_world import T0, contact


def test_the_earliest_sighting_wins_and_a_tie_is_nobody() -> None:
    assert first_reporter({"a": {"at": T0}, "b": {"at": T0 + 1}}) == "a"
    assert first_reporter({"b": {"at": T0 + 1}, "a": {"at": T0}}) == "a"
    assert first_reporter({"a": {"at": T0}, "b": {"at": T0}}) is None
    assert first_reporter({}) is None
    assert first_reporter({"a": "garbage", "b": {"at": "x"}, "c": {"at": T0 + 5}}) == "c"


@pytest.mark.parametrize(
    ("first_events", "monitoring", "second_at", "refused"),
    [
        (("incoming", "connected"), False, T0 + 20, False),  # warm: the first leg is still on
        (("incoming", "connected", "ended"), False, T0 + 61 + TRANSFER_WINDOW_SECONDS, False),
        (("incoming", "connected", "ended"), False, T0 + 62 + TRANSFER_WINDOW_SECONDS, True),
        (("incoming", "connected"), True, T0 + 20, True),
        (("incoming", "connected"), False, T0 - 1, True),  # named a contact that came later
    ],
)
def test_refusal(
    first_events: tuple[str, ...], monitoring: bool, second_at: float, refused: bool
) -> None:
    first = contact(first_events, contact_id="c-0")  # ended, if it did, at T0 + 61
    first = dataclasses.replace(first, monitoring=monitoring)
    second = contact(contact_id="c-1", initial_contact_id="c-0")
    second = dataclasses.replace(second, created_at=second_at)
    assert (refusal(first, second) is not None) == refused
    assert refusal(None, second) is not None
