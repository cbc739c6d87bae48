"""The Connect client (real aiobotocore, SigV4, retries) against the Connect sandbox over HTTP,
and the sandbox against botocore's own service model for `connect`."""

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from daemon.connect.client import ConnectClient, ConnectError, Instance
from daemon.connect.model import response_problems
from daemon.connect.sandbox import DEFAULT_INSTANCE, ConnectSandbox, Fault
from tests.connect.conftest import ARN


@pytest.fixture
async def client(server: TestServer) -> AsyncIterator[tuple[ConnectClient, list[Any]]]:
    calls: list[Any] = []
    connect = ConnectClient(
        Instance.from_arn(ARN),
        endpoint_url=str(server.make_url("")).rstrip("/"),
        observe=lambda *call: calls.append(call),
        max_attempts=3,
    )
    await connect.start()
    yield connect, calls
    await connect.close()


def transitions(sandbox: ConnectSandbox, contact: str) -> list[str]:
    return [kind for kind, _ in sandbox.contacts[contact].transitions]


async def test_suspend_and_resume_are_recorded_in_order_and_repeats_do_nothing(
    client: tuple[ConnectClient, list[Any]], sandbox: ConnectSandbox
) -> None:
    connect, calls = client
    await connect.suspend_recording("c-1", "c-1")
    await connect.suspend_recording("c-1", "c-1")  # a retried command
    await connect.resume_recording("c-1", "c-1")
    assert transitions(sandbox, "c-1") == ["suspended", "resumed"]
    assert [(op, outcome) for op, outcome, _ in calls] == [
        ("SuspendContactRecording", "ok"),
        ("SuspendContactRecording", "ok"),
        ("ResumeContactRecording", "ok"),
    ]


async def test_a_lost_reply_is_retried_and_applied_once(
    client: tuple[ConnectClient, list[Any]], sandbox: ConnectSandbox
) -> None:
    connect, _ = client
    sandbox.faults.append(Fault("SuspendContactRecording", lose_response=True))
    await connect.suspend_recording("c-1", "c-1")
    assert transitions(sandbox, "c-1") == ["suspended"]
    assert [c["operation"] for c in sandbox.calls] == ["SuspendContactRecording"] * 2


async def test_throttling_is_retried_then_succeeds(
    client: tuple[ConnectClient, list[Any]], sandbox: ConnectSandbox
) -> None:
    connect, calls = client
    sandbox.faults.append(Fault("SuspendContactRecording", times=2, error="ThrottlingException"))
    await connect.suspend_recording("c-1", "c-1")
    assert transitions(sandbox, "c-1") == ["suspended"]
    assert len(sandbox.calls) == 3 and calls[-1][1] == "ok"


@pytest.mark.parametrize(
    ("fault", "kind", "permanent"),
    [
        (
            Fault("SuspendContactRecording", times=9, error="ThrottlingException"),
            "throttled",
            False,
        ),
        (Fault("SuspendContactRecording", error="AccessDeniedException"), "access_denied", True),
        (
            Fault("SuspendContactRecording", error="InternalServiceException", times=9),
            "unavailable",
            False,
        ),
    ],
)
async def test_what_retries_cannot_mend_is_raised_typed(
    client: tuple[ConnectClient, list[Any]],
    sandbox: ConnectSandbox,
    fault: Fault,
    kind: str,
    permanent: bool,
) -> None:
    connect, calls = client
    sandbox.faults.append(fault)
    with pytest.raises(ConnectError) as raised:
        await connect.suspend_recording("c-1", "c-1")
    assert (raised.value.kind, raised.value.permanent) == (kind, permanent)
    assert calls[-1][1] == kind
    assert transitions(sandbox, "c-1") == []


async def test_unknown_contacts_and_ended_calls_are_refused(
    client: tuple[ConnectClient, list[Any]], sandbox: ConnectSandbox
) -> None:
    connect, _ = client
    with pytest.raises(ConnectError) as raised:
        await connect.describe_contact("nobody")
    assert raised.value.kind == "not_found"
    sandbox.contacts["c-1"].disconnected_at = 1.0
    with pytest.raises(ConnectError) as ended:
        await connect.suspend_recording("c-1", "c-1")
    assert ended.value.kind == "invalid"


async def test_descriptions_carry_what_a_tab_claims_and_are_cached(
    client: tuple[ConnectClient, list[Any]], sandbox: ConnectSandbox
) -> None:
    connect, _ = client
    first = await connect.describe_contact("c-1")
    assert (first.agent_user_id, first.customer_endpoint, first.ended) == (
        "u-1",
        "+447700900123",
        False,
    )
    transfer = await connect.describe_contact("c-2")
    assert (transfer.initial_contact_id, transfer.initiation_method) == ("c-1", "TRANSFER")
    await connect.describe_contact("c-1")
    assert [c["operation"] for c in sandbox.calls].count("DescribeContact") == 2  # cached
    assert await connect.contact_attributes("c-1") == {"a": "1"}
    assert await connect.describe_user("u-1") == {
        "username": "alice",
        "email": "alice@acme.example",
    }


async def test_a_malformed_request_is_caught_by_the_model(
    server: TestServer, sandbox: ConnectSandbox
) -> None:
    url = server.make_url("/contact/suspend-recording")
    headers = {"Authorization": "AWS4-HMAC-SHA256 Credential=x"}
    async with aiohttp.ClientSession() as http:
        missing = {"InstanceId": DEFAULT_INSTANCE, "ContactId": "c-1"}
        async with http.post(url, json=missing, headers=headers) as response:
            assert response.status == 400
            assert response.headers["x-amzn-ErrorType"] == "InvalidRequestException"
        wrong_type = missing | {"InitialContactId": 7}
        async with http.post(url, json=wrong_type, headers=headers) as response:
            assert response.status == 400
    problems = [c["problem"] for c in sandbox.calls]
    assert "InitialContactId" in problems[0] and "InitialContactId" in problems[1]
    assert transitions(sandbox, "c-1") == []
    sandbox.problems.clear()  # seen, and meant


def test_a_malformed_response_is_caught_by_the_model() -> None:
    assert response_problems("DescribeContact", {"Contact": {"Id": 5}})
    assert response_problems("DescribeUser", {"User": {"Id": "u", "Username": ["x"]}})
    assert response_problems("SuspendContactRecording", {"Unexpected": 1})
    assert (
        response_problems("DescribeContact", {"Contact": {"Id": "c", "Channel": "VOICE"}}) is None
    )


def test_the_instance_arn_gives_the_region_and_id() -> None:
    assert Instance.from_arn(ARN) == Instance("eu-west-2", DEFAULT_INSTANCE)
    with pytest.raises(ValueError, match="instance/INSTANCE_ID"):
        Instance.from_arn("arn:aws:connect:eu-west-2:111122223333:queue/x")
