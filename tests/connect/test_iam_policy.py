"""The IAM policy an AWS administrator attaches names exactly the operations the daemon calls."""

import json
from pathlib import Path

from daemon.connect.model import OPERATIONS

POLICY = Path(__file__).resolve().parents[2] / "deploy" / "aws" / "connect-policy.json"


def test_the_policy_allows_exactly_what_the_daemon_calls_and_nothing_wider() -> None:
    policy = json.loads(POLICY.read_text())
    actions: set[str] = set()
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        assert "*" not in statement["Resource"].split(":")[-1].split("/")[:2]  # one instance
        listed = statement["Action"]
        actions |= {listed} if isinstance(listed, str) else set(listed)
    assert actions == {f"connect:{name}" for name in OPERATIONS}
