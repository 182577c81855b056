"""The example test in README's "Testing your own changes" section runs and passes as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


async def test_readme_example(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    [example] = [b for b in blocks if "async def test_my_change" in b]
    namespace: dict[str, object] = {}
    exec(compile(example, "README.md", "exec"), namespace)  # noqa: S102  (our own README)
    await namespace["test_my_change"](tmp_path)  # type: ignore[operator]
