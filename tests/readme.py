"""The Python examples of README.md, chapter by chapter, so the documentation cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(chapter: str) -> list[str]:
    """The ```python blocks of the README chapter whose '## ' heading starts with ``chapter``."""
    text = README.read_text()
    parts = re.split(r"^## ", text, flags=re.M)
    matches = [p for p in parts if p.startswith(chapter)]
    assert len(matches) == 1, f"README.md has {len(matches)} chapters named {chapter!r}"
    return re.findall(r"```python\n(.*?)```", matches[0], flags=re.S)


def run_blocks(chapter: str) -> dict:
    """Run a chapter's examples in order in one namespace; return the namespace."""
    namespace: dict = {}
    for code in python_blocks(chapter):
        exec(compile(code, f"README.md ({chapter})", "exec"), namespace)
    return namespace
