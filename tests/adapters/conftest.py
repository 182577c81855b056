from __future__ import annotations

from typing import Any

import pytest

from bot.adapters import driver as driver_module


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The SQL of every statement the units' driver runs from now on."""
    statements: list[str] = []
    run = driver_module._run

    async def counted(connection: Any, dialect: Any, sql: str, *args: Any, **kwargs: Any) -> Any:
        statements.append(sql)
        return await run(connection, dialect, sql, *args, **kwargs)

    monkeypatch.setattr(driver_module, "_run", counted)
    return statements
