"""docs/maths.md: its worked examples give what the package computes, and every "docs/maths.md §N"
in the sources names a section the page has."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import copslp

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "maths.md"
SOURCES = ["copslp", "torch_adapter", "bench", "tests", "examples", "README.md", "ARCHITECTURE.md"]
REFERENCE = re.compile(r"docs/maths\.md §(\d+(?:\.\d+)?)(?:-(\d+))?")


def _sections() -> set[str]:
    """The section numbers of the page's headings ("## §3 ...", "### §4.6 ...")."""
    return set(re.findall(r"^#{2,3} §(\d+(?:\.\d+)?) ", PAGE.read_text(), flags=re.M))


def _references():
    for name in SOURCES:
        path = ROOT / name
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.suffix in (".py", ".c", ".md")]
        for file in files:
            for first, last in REFERENCE.findall(file.read_text(errors="replace")):
                yield file.relative_to(ROOT), first, last


def test_every_reference_names_a_section_of_the_page():
    sections = _sections()
    assert {str(n) for n in range(1, 8)} <= sections
    missing = [(str(file), first, last) for file, first, last in _references()
               if first not in sections or (last and last not in sections)]
    assert not missing, f"references to sections docs/maths.md lacks: {missing}"


def test_the_one_bound_example():
    scores = np.array([[10, 8, 7, 4, 3, 2], [7, 0, 2, 4, 1, 4]], dtype=float)
    result = copslp.solve(scores, 3, gamma=0.8)
    np.testing.assert_allclose(result.thresholds, [12.0])
    np.testing.assert_allclose(result.multipliers, [1.0])
    np.testing.assert_allclose(result.x, [1, 0.25, 1, 0.75, 0, 0])
    assert result.budget_dual == pytest.approx(8.0)
    assert result.objective == pytest.approx(22.0)
    assert np.flatnonzero(result.mask).tolist() == [0, 2, 3]
    assert result.mask_objective == pytest.approx(21.0)
    assert result.rounding_loss == pytest.approx(1.0)
    assert result.certificate.dual_bound == pytest.approx(22.0)


def test_the_farkas_example():
    scores = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    with pytest.raises(copslp.InfeasibleError) as raised:
        copslp.solve(scores, 1, bounds=[0.6, 0.6])
    assert raised.value.conflicting_scores == (1, 2)
    np.testing.assert_allclose(raised.value.farkas_multipliers, [1.0, 1.0])
    assert raised.value.best_reachable == pytest.approx(0.4)


def test_the_page_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    assert blocks
    for index, code in enumerate(blocks):
        exec(compile(code, f"docs/maths.md example {index}", "exec"), {"__name__": "maths_example"})
    assert capsys.readouterr().out.strip()
