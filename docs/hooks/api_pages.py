"""Generate the API reference: one page per installed module, and the reference's navigation.

Run by mkdocs-gen-files on every build (mkdocs.yml). The module list is read from the checkout, not kept by
hand: the ``rewardbench/`` folder and every folder pyproject.toml maps into the namespace (``rewards/`` ->
``rewardbench.rewards``, ...), each ``.py`` file a module and each folder with an ``__init__.py`` a package.
mkdocstrings renders each page from the docstrings; ``griffe_namespace.py`` lets it find the mapped folders.
tests/test_docs.py checks that the built site has a page for every module Python can import.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from griffe_namespace import ROOT, mapped_folders  # noqa: E402

# the layers in the order they build on each other (ARCHITECTURE.md), then the command line above them all
SECTIONS = {
    "rewardbench": "Kernel",
    "rewardbench.rewards": "Zoo (rewards/)",
    "rewardbench.leaderboards": "Leaderboards (leaderboards/)",
    "rewardbench.benchmarks": "Benchmarks (benchmarks/)",
    "rewardbench.trainers": "Trainer (trainers/)",
    "rewardbench.cli": "Command line (rewardbench/cli/)",
}


def _walk(package: str, folder: Path, skip: set[Path]) -> list[str]:
    names = [package]
    for path in sorted(folder.iterdir()):
        if path in skip:
            continue
        if path.is_dir() and (path / "__init__.py").is_file():
            names += _walk(f"{package}.{path.name}", path, skip)
        elif path.suffix == ".py" and path.stem != "__init__":
            names.append(f"{package}.{path.stem}")
    return names


def modules(root: Path = ROOT) -> list[str]:
    """Every module of the installed ``rewardbench`` namespace, by its installed name."""
    mapped = mapped_folders(root)
    names = _walk("rewardbench", root / "rewardbench", skip=set())
    for name, folder in mapped.items():
        names += _walk(name, folder, skip=set())
    return sorted(set(names))


def section(module: str) -> str:
    """The navigation section a module is listed in: the longest `SECTIONS` prefix that names it."""
    best = max((p for p in SECTIONS if module == p or module.startswith(p + ".")), key=len)
    return SECTIONS[best]


def page_path(module: str) -> str:
    """The page of a module, relative to docs/: ``reference/rewardbench/rewards/jpeg.md``."""
    parts = module.split(".")
    return "/".join(["reference", *parts]) + ".md"


def generate() -> None:
    import mkdocs_gen_files

    by_section: dict[str, list[str]] = {title: [] for title in SECTIONS.values()}
    for module in modules():
        path = page_path(module)
        with mkdocs_gen_files.open(path, "w") as page:
            page.write(f"::: {module}\n")
        by_section[section(module)].append(module)
    # literate-nav: one section per layer, public modules first, private (_name) ones after them
    lines = ["* [Overview](index.md)"]
    for title, names in by_section.items():
        lines.append(f"* {title}")
        names.sort(key=lambda m: (any(p.startswith("_") and p != "__main__" for p in m.split(".")), m))
        lines += [f"    * [{m}]({page_path(m).removeprefix('reference/')})" for m in names]
    with mkdocs_gen_files.open("reference/SUMMARY.md", "w") as nav:
        nav.write("\n".join(lines) + "\n")


if __name__ == "<run_path>":  # mkdocs-gen-files runs this file with runpy.run_path
    generate()
