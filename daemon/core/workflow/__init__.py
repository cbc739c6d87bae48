"""The Zendesk workflow: a pure policy (`plan`) over a journal of step results.

`daemon.zendesk.runner` executes the plans; everything here is synchronous and free of I/O.
"""

from daemon.core.workflow.identity import Identity, Scope
from daemon.core.workflow.policy import AgentInfo, cli_number, current_ticket, plan, search_digits
from daemon.core.workflow.steps import (
    AddComment,
    AddVoiceComment,
    CreateTicket,
    CreateUser,
    FindRecentTickets,
    FindTicket,
    FindTransferTicket,
    FindUser,
    FindUsersByPhone,
    Plan,
    ReadStep,
    Report,
    SearchUsers,
    SetRecording,
    Step,
    TicketInfo,
    TransferLink,
    UpdateUserPhone,
    UploadRecording,
    UserInfo,
    WriteStep,
    record,
)

__all__ = [
    "AddComment",
    "AddVoiceComment",
    "AgentInfo",
    "CreateTicket",
    "CreateUser",
    "FindRecentTickets",
    "FindTicket",
    "FindTransferTicket",
    "FindUser",
    "FindUsersByPhone",
    "Identity",
    "Plan",
    "ReadStep",
    "Report",
    "Scope",
    "SearchUsers",
    "SetRecording",
    "Step",
    "TicketInfo",
    "TransferLink",
    "UpdateUserPhone",
    "UploadRecording",
    "UserInfo",
    "WriteStep",
    "cli_number",
    "current_ticket",
    "plan",
    "record",
    "search_digits",
]
