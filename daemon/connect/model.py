"""botocore's service model for Amazon Connect: the reference nobody on this project wrote.

The sandbox checks every request it is sent and every response it gives against it, as the
Zendesk sandbox is checked against Zendesk's OpenAPI description, so neither the sandbox nor
the client can drift into a convenient fiction.
"""

import functools
from typing import Any

from botocore.model import OperationModel, ServiceModel
from botocore.session import get_session
from botocore.validate import ParamValidator

SERVICE = "connect"

#: The operations the daemon uses (IAM actions: `connect:<name>`; see deploy/aws/).
OPERATIONS = (
    "SuspendContactRecording",
    "ResumeContactRecording",
    "DescribeContact",
    "GetContactAttributes",
    "DescribeUser",
)


@functools.cache
def service_model() -> ServiceModel:
    return get_session().get_service_model(SERVICE)


def operation(name: str) -> OperationModel:
    return service_model().operation_model(name)


def request_problems(name: str, params: dict[str, Any]) -> str | None:
    """What is wrong with `params` as the input of operation `name`, or None."""
    return _problems(params, operation(name).input_shape)


def response_problems(name: str, body: dict[str, Any]) -> str | None:
    """What is wrong with `body` as the output of operation `name`, or None."""
    shape = operation(name).output_shape
    if shape is None:
        return None if not body else f"{name} has no output, got {sorted(body)}"
    return _problems(body, shape)


def _problems(params: dict[str, Any], shape: Any) -> str | None:
    report = ParamValidator().validate(params, shape)
    return report.generate_report() if report.has_errors() else None
