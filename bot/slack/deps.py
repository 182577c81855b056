"""What the listeners need, injected once at start: the UoW factory, the policy, the admins."""

from __future__ import annotations

from dataclasses import dataclass

from bot.domain.values import Policy
from bot.service_layer.unit_of_work import UnitOfWorkFactory


@dataclass(frozen=True)
class Deps:
    uow: UnitOfWorkFactory
    policy: Policy
    admins: frozenset[str] = frozenset()
