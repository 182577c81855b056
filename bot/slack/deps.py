"""What the listeners need, injected once at start: the UoW factory, the policy, the admins, and the approvers
who passed their check lately."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.domain.values import Policy
from bot.service_layer.unit_of_work import UnitOfWorkFactory
from bot.slack.directory import RecentApprovers


@dataclass(frozen=True)
class Deps:
    uow: UnitOfWorkFactory
    policy: Policy
    admins: frozenset[str] = frozenset()
    recent_approvers: RecentApprovers = field(default_factory=RecentApprovers)
