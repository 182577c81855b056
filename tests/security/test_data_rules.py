"""Only the service layer writes; SQL only through the ORM or bound parameters; the audit log is append-only."""

from __future__ import annotations

import re
from pathlib import Path

BOT = Path(__file__).resolve().parents[2] / "bot"


def sources(*parts: str) -> dict[str, str]:
    return {str(p.relative_to(BOT)): p.read_text() for p in BOT.joinpath(*parts).rglob("*.py")}


def test_the_slack_layer_writes_only_through_services() -> None:
    for name, text in sources("slack").items():
        assert "bot.adapters.tables" not in text and "bot.adapters.repository" not in text, name
        assert not re.search(r"\.session\b|\.commit\(|\.execute\(", text), name


def test_no_sql_is_built_from_strings() -> None:
    for name, text in sources().items():
        if "migrations/versions" in name:
            continue
        assert not re.search(r"""(text|exec_driver_sql|execute)\(\s*f["']""", text), name
        assert not re.search(r"""(text|exec_driver_sql)\([^)]*(%|\.format\()""", text), name


def test_the_audit_log_has_no_update_or_delete_path() -> None:
    for name, text in sources().items():
        assert not re.search(r"(update|delete)\(\s*(AuditRow|AUDIT)\b", text), name
        assert not re.search(r"AUDIT\.(update|delete)\(", text), name
    repository = sources("adapters")["adapters/repository.py"]
    audit = re.search(r"class SqlAuditLog.*?(?=\nclass )", repository, re.S)
    # The one path that writes it: rows handed to the unit's Driver, which only ever INSERTs deferred rows.
    assert audit and "self.sql.defer(\n            AUDIT," in audit.group(0)
    assert "update" not in audit.group(0) and "delete" not in audit.group(0)
    driver = sources("adapters")["adapters/driver.py"]
    assert "sa.insert(table)" in driver and not re.search(r"sa\.(update|delete)\(", driver)
