"""What the listeners need, injected once at start: the UoW factory, the notifier, the policy."""

from __future__ import annotations

from dataclasses import dataclass

from bot.domain.values import Policy
from bot.service_layer.unit_of_work import UnitOfWorkFactory
from bot.slack.notifier import Notifier


@dataclass(frozen=True)
class Deps:
    uow: UnitOfWorkFactory
    notifier: Notifier
    policy: Policy
    admins: frozenset[str] = frozenset()
