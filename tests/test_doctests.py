"""Every docstring example in the installed package runs, module by module, imported by its installed
name (``rewardbench.rewards.fairness``, not a bare ``rewards.fairness``). The README's and the docs' Python blocks
run in tests/test_docs.py."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def package_modules() -> list[str]:
    """Names of every module of the installed ``rewardbench`` namespace: the kernel and each folder that
    pyproject.toml maps into it (rewards/, trainers/, ...)."""
    import tomllib

    mapped = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    names = []
    for pkg in mapped:
        mod = importlib.import_module(pkg)
        names.append(pkg)
        names += [info.name for info in pkgutil.walk_packages(mod.__path__, pkg + ".")]
    return sorted(set(names))


@pytest.mark.parametrize("module", package_modules())
def test_docstring_examples(module):
    mod = importlib.import_module(module)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(mod, module) if t.examples]
    for t in tests:
        runner.run(t)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples failed in {module}"


def test_walk_finds_every_folder():
    names = package_modules()
    for sub in ("rewardbench.rewards.jpeg", "rewardbench.trainers.ddpo_math",
                "rewardbench.benchmarks.prompt_sets.geneval", "rewardbench.leaderboards"):
        assert sub in names
