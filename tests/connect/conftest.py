"""The Connect sandbox over HTTP, with two contacts and one user, and AWS credentials from the
standard chain's first link (the environment)."""

from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp.test_utils import TestServer

from daemon.connect.sandbox import (
    CONNECT_SANDBOX_KEY,
    DEFAULT_INSTANCE,
    ConnectSandbox,
    SandboxContact,
    create_connect_app,
)

ARN = f"arn:aws:connect:eu-west-2:111122223333:instance/{DEFAULT_INSTANCE}"


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The standard chain's first link, and nothing that would reach for instance metadata."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-for-the-sandbox")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    yield


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    server = TestServer(create_connect_app(), host="127.0.0.1")
    await server.start_server()
    yield server
    assert server.app[CONNECT_SANDBOX_KEY].problems == []  # all traffic matched the model
    await server.close()


@pytest.fixture
def sandbox(server: TestServer) -> ConnectSandbox:
    sandbox = server.app[CONNECT_SANDBOX_KEY]
    sandbox.contacts["c-1"] = SandboxContact(
        "c-1", agent_user_id="u-1", customer_endpoint="+447700900123", attributes={"a": "1"}
    )
    sandbox.contacts["c-2"] = SandboxContact(
        "c-2", agent_user_id="u-2", initial_contact_id="c-1", initiation_method="TRANSFER"
    )
    sandbox.users["u-1"] = {"username": "alice", "email": "alice@acme.example"}
    return sandbox
