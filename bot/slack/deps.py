"""What the listeners need, injected once at start: the UoW factory, the policy, the admins, the approvers
who passed their check lately, and the outbox dispatcher's hold while a new request is stored."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
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
    # Entered while a new request is stored and checked: the outbox dispatcher holds back other deliveries.
    creating: Callable[[], AbstractContextManager[None]] = nullcontext
