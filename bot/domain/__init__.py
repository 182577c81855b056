"""The domain: access requests and their rules, free of Slack and SQL."""

from bot.domain.errors import DomainError
from bot.domain.model import AccessRequest, DecisionOutcome
from bot.domain.values import Approver, Decision, Policy, Status, Verdict

__all__ = [
    "AccessRequest",
    "Approver",
    "Decision",
    "DecisionOutcome",
    "DomainError",
    "Policy",
    "Status",
    "Verdict",
]
