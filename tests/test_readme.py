"""The README's examples run as written (each ```python block, in a fresh namespace)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_readme_has_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, capsys):
    code = BLOCKS[index]
    if "torch" in code:
        pytest.importorskip("torch")
    exec(compile(code, f"README.md example {index}", "exec"), {"__name__": "readme_example"})
    assert capsys.readouterr().out.strip(), "the example prints what it shows"
