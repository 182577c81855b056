"""Typed refusals of the domain. Every message is written to be shown to a person as is."""


class DomainError(Exception):
    """A rule refused the operation. ``message`` is fit to show the person who asked."""

    code = "refused"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(DomainError):
    """The request as typed breaks a rule (length, approvers, duration)."""

    code = "invalid_request"

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class NotAnApprover(DomainError):
    code = "not_an_approver"


class DecisionConflict(DomainError):
    """An approver tried to change a decision already recorded."""

    code = "decision_conflict"


class RequestClosed(DomainError):
    """The request is terminal: nothing changes it any more."""

    code = "request_closed"


class NotRequester(DomainError):
    code = "not_requester"


class RequestNotFound(DomainError):
    code = "not_found"


class TooManyOpenRequests(DomainError):
    code = "too_many_open"


class CheckUnavailable(DomainError):
    """The approvers could not be checked just now (the directory did not answer)."""

    code = "check_unavailable"


class CheckTooSlow(DomainError):
    """The approvers could not be checked in time; the request was not kept."""

    code = "check_too_slow"
