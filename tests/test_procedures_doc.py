"""docs/procedures.md's procedures are the test files of tests/procedures, character for
character, and every one of those files is in the page: what the page shows is what
`make test` runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "procedures.md"
BLOCK = re.compile(r"<!-- procedure: (\S+) -->\n```python\n(.*?)```\n", re.DOTALL)


def test_each_documented_procedure_is_a_test_file_verbatim() -> None:
    blocks = BLOCK.findall(PAGE.read_text(encoding="utf-8"))
    assert blocks, "docs/procedures.md shows no procedure"
    for path, code in blocks:
        source = ROOT / path
        assert source.is_file(), f"docs/procedures.md names {path}, which does not exist"
        assert code == source.read_text(encoding="utf-8"), (
            f"docs/procedures.md's block for {path} differs from the file; copy the file "
            "into the page")


def test_every_procedure_test_file_is_documented() -> None:
    shown = {path for path, _ in BLOCK.findall(PAGE.read_text(encoding="utf-8"))}
    files = {str(p.relative_to(ROOT)) for p in (ROOT / "tests" / "procedures").glob("test_*.py")}
    assert files and files == shown, f"undocumented: {sorted(files - shown)}"
