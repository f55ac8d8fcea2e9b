"""griffe extensions for the API reference: the installed namespace, and the docstrings' example sections.

pyproject.toml maps top-level folders into one import namespace (``rewards/`` is ``rewardbench.rewards``,
``trainers/`` is ``rewardbench.trainers``, ...; setuptools ``package-dir``). griffe reads packages from disk
and finds ``rewardbench/`` alone, without those folders. When it has loaded ``rewardbench``, this extension
reads the same mapping and loads each folder as the submodule it installs as, so the API reference documents
``rewardbench.rewards.jpeg`` by its installed name and cross-references between layers resolve.

The docstrings here title their doctests ``Example:`` (STYLE.md: one runnable example); griffe's Google parser
knows only ``Examples:`` and would render the doctest as prose. `ExampleSections` reads one as the other.
"""

from __future__ import annotations

import re
from pathlib import Path

import griffe
import tomllib

ROOT = Path(__file__).resolve().parents[2]


def mapped_folders(root: Path = ROOT) -> dict[str, Path]:
    """``{"rewardbench.rewards": <root>/rewards, ...}``: pyproject.toml's package-dir, the kernel left out."""
    mapping = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    return {name: root / folder for name, folder in mapping.items() if "." in name}


class InstalledNamespace(griffe.Extension):
    """Attach each mapped folder to the loaded ``rewardbench`` package under its installed name."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs) -> None:
        if pkg.name != "rewardbench":
            return
        for name, folder in mapped_folders().items():
            parent_name, _, child = name.rpartition(".")
            parent = pkg if parent_name == "rewardbench" else pkg[parent_name.removeprefix("rewardbench.")]
            # loaded with its parent, so relative imports inside it resolve to rewardbench.<child>.*
            module = loader._load_module(child, folder / "__init__.py", submodules=True, parent=parent)
            parent.set_member(child, module)
            loader.expand_exports(module)
            loader.expand_wildcards(module, external=False)


class ExampleSections(griffe.Extension):
    """Read a docstring's ``Example:`` (or ``Example (a remark):``) section as ``Examples:``, so that its
    doctest renders as code; the remark stays, as the section's first line."""

    _TITLE = re.compile(r"^(?P<indent>[ \t]*)Example(?:\s*\((?P<remark>[^)\n]*)\))?:[ \t]*$", flags=re.M)

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = self._TITLE.sub(self._examples, obj.docstring.value)

    @staticmethod
    def _examples(match: re.Match) -> str:
        indent, remark = match["indent"], match["remark"]
        return f"{indent}Examples:" + (f"\n{indent}    ({remark})" if remark else "")
