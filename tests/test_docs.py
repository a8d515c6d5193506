"""Run every ```python block of the README and of every page in docs/ so that the examples keep working.

Each block runs on its own, in a fresh namespace and a temporary working directory, with a fixed
random seed. A failing block is named by its page and index (``lstm.md[3]``), and its traceback
points at the line of the Markdown file.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# An opening fence ```python (possibly indented, e.g. inside a list item), the body, and a closing
# fence with the same indentation.
_BLOCK = re.compile(
    r"^(?P<indent>[ \t]*)```python[ \t]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.MULTILINE | re.DOTALL
)
_OPENING = re.compile(r"^[ \t]*```python[ \t]*$", re.MULTILINE)


def _dedent(body: str, indent: str) -> str:
    return "".join(line[len(indent) :] if line.startswith(indent) else line for line in body.splitlines(True))


def _blocks(page: Path) -> list[tuple[int, str]]:
    """(line of the first code line, code) for each python block of a page."""
    text = page.read_text(encoding="utf-8")
    found = []
    for match in _BLOCK.finditer(text):
        first_line = text.count("\n", 0, match.start("body")) + 1
        found.append((first_line, _dedent(match.group("body"), match.group("indent"))))
    return found


def _cases() -> list:
    cases = []
    for page in PAGES:
        for index, (line, code) in enumerate(_blocks(page)):
            cases.append(pytest.param(page, line, code, id=f"{page.name}[{index}]"))
    return cases


@pytest.mark.parametrize(("page", "line", "code"), _cases())
def test_example_runs(page: Path, line: int, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    default_dtype, grad_enabled = torch.get_default_dtype(), torch.is_grad_enabled()
    # Leading newlines make the line numbers of a traceback those of the Markdown file.
    compiled = compile("\n" * (line - 1) + code, str(page), "exec")
    try:
        exec(compiled, {"__name__": "__main__", "__file__": str(page)})
    finally:
        torch.set_default_dtype(default_dtype)
        torch.set_grad_enabled(grad_enabled)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_python_fence_is_closed(page: Path) -> None:
    """A fence the pattern above cannot match would otherwise be skipped without notice."""
    opened = len(_OPENING.findall(page.read_text(encoding="utf-8")))
    assert len(_blocks(page)) == opened, f"{page.name}: {opened} ```python fences, {len(_blocks(page))} runnable blocks"
