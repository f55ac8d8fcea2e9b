"""The package layout holds: one import namespace, layers that point one way, no import cycle between
files, no file over ~500 lines without a reason; the checkout-only scripts (``scripts/``) sit above every
installed layer and use installed code by its public names only. Run alone with ``pytest tests/test_layout.py``."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PACKAGE_DIRS: dict[str, str] = PYPROJECT["tool"]["setuptools"]["package-dir"]  # import name -> folder
LAYER_OF_PACKAGE = {"rewardbench": "kernel", "rewardbench.rewards": "rewards", "rewardbench.trainers": "trainers",
                    "rewardbench.benchmarks": "benchmarks", "rewardbench.leaderboards": "leaderboards",
                    "rewardbench.cli": "cli"}
# what each layer may import (besides itself): kernel <- zoo <- leaderboards <- benchmarks <- trainers; the command
# line (rewardbench/cli/, the CLI room) sits above them all and reaches the zoo through the registry like them
ALLOWED = {
    "kernel": set(),
    "rewards": {"kernel"},
    "leaderboards": {"kernel"},
    "benchmarks": {"kernel", "leaderboards"},
    "trainers": {"kernel", "leaderboards", "benchmarks"},
    "cli": {"kernel", "leaderboards", "benchmarks", "trainers"},
}
MAX_LINES = 500
SCRIPTS = ROOT / "scripts"  # checkout-only: performance, parity, fairness and training measurements


def modules() -> dict[str, Path]:
    """Installed module name -> file, for every .py file of the package folders (perf/parity scripts
    without an __init__.py are scripts, not modules, and are left out)."""
    found = {}
    for pkg, folder in PACKAGE_DIRS.items():
        base = ROOT / folder
        for f in sorted(base.rglob("*.py")):
            rel = f.relative_to(base).with_suffix("")
            parts = list(rel.parts)
            if not all((base.joinpath(*parts[:i]) / "__init__.py").exists() for i in range(len(parts))):
                continue  # a folder of scripts
            if any(p in PACKAGE_DIRS.values() for p in parts[:1]) and pkg == "rewardbench":
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join([pkg, *parts])
            if pkg == "rewardbench" and parts and f"rewardbench.{parts[0]}" in PACKAGE_DIRS:
                continue
            found[name] = f
    return found


MODULES = modules()


def layer(module: str) -> str:
    best = max((p for p in LAYER_OF_PACKAGE if module == p or module.startswith(p + ".")), key=len)
    return LAYER_OF_PACKAGE[best]


def imports_of(name: str, path: Path) -> set[str]:
    """Modules of ours that ``name`` imports anywhere in the file (function-level imports included)."""
    tree = ast.parse(path.read_text())
    is_pkg = path.name == "__init__.py"
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base if is_pkg else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in MODULES:
                t = t.rpartition(".")[0]
            if t and t != name and not name.startswith(t + "."):  # a parent package runs first anyway
                out.add(t)
    return out


GRAPH = {m: imports_of(m, p) for m, p in MODULES.items()}


def test_modules_are_found_in_every_folder():
    layers = {layer(m) for m in MODULES}
    assert {"kernel", "rewards", "trainers", "benchmarks", "leaderboards", "cli"} <= layers
    assert "rewardbench.rewards.jpeg" in MODULES and "rewardbench.harness" in MODULES


def test_no_bare_imports_of_the_folders():
    bare = []
    for m, p in MODULES.items():
        for node in ast.walk(ast.parse(p.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            bare += [f"{m}: {n}" for n in names if n.split(".")[0] in ("rewards", "trainers", "benchmarks",
                                                                        "leaderboards", "tests")]
    assert not bare, bare


def test_layers_point_one_way():
    wrong = [f"{m} ({layer(m)}) imports {t} ({layer(t)})" for m, ts in GRAPH.items() for t in ts
             if layer(t) != layer(m) and layer(t) not in ALLOWED[layer(m)]]
    assert not wrong, "\n".join(wrong)


def test_upper_layers_reach_rewards_only_through_the_registry():
    direct = [f"{m} imports {t}" for m, ts in GRAPH.items() for t in ts
              if layer(m) in ("trainers", "benchmarks", "leaderboards", "cli") and layer(t) == "rewards"]
    assert not direct, direct


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_between_files():
    cycles = _cycles(GRAPH)
    assert not cycles, cycles


def test_no_import_cycle_between_folders():
    folders = {}
    for m, ts in GRAPH.items():
        folders.setdefault(layer(m), set()).update(layer(t) for t in ts if layer(t) != layer(m))
    assert not _cycles(folders), folders


def test_files_stay_small_or_say_why():
    big = [f"{p.relative_to(ROOT)} ({n} lines)" for m, p in MODULES.items()
           if (n := len(p.read_text().splitlines())) > MAX_LINES
           and "longer than 500 lines because" not in (ast.get_docstring(ast.parse(p.read_text())) or "")]
    assert not big, big


def test_modules_say_what_they_are_for():
    silent = [m for m, p in MODULES.items() if p.stat().st_size and not ast.get_docstring(ast.parse(p.read_text()))]
    assert not silent, silent


def test_the_installed_namespace_is_this_checkout():
    """An editable install maps each folder into rewardbench.* (what `./run` sets up from a fresh clone);
    from another directory the bare folder names are not importable."""
    code = ("import importlib.util, rewardbench.rewards, rewardbench.trainers, rewardbench.benchmarks, "
            "rewardbench.leaderboards as lb; print(rewardbench.rewards.__file__); print(lb.__file__); "
            "print([importlib.util.find_spec(n) is None "
            "for n in ('rewards', 'trainers', 'benchmarks', 'leaderboards')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", timeout=120)
    assert out.returncode == 0, out.stderr
    rewards_file, lb_file, bare = out.stdout.splitlines()
    assert Path(rewards_file) == ROOT / "rewards" / "__init__.py"
    assert Path(lb_file) == ROOT / "leaderboards" / "__init__.py"
    assert bare == "[True, True, True, True]"


def test_module_entry_points_run():
    for args in (["--help"], ["train", "--help"]):  # `accelerate launch -m rewardbench.cli train ...` runs this
        out = subprocess.run([sys.executable, "-m", "rewardbench.cli", *args], capture_output=True, text=True,
                             cwd="/", timeout=120)
        assert out.returncode == 0 and "Example" in out.stdout, (args, out.stderr[-2000:])


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the checkout's files (as a fresh clone has them: no build/ leftovers)."""
    import shutil

    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("wheel")
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    for f in files:
        if (ROOT / f).is_file():
            (src / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, src / f)
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(out), str(src)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return next(out.glob("rewardbench-*.whl"))


def test_wheel_installs_one_top_level_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"rewardbench"}, tops
    for must in ("rewardbench/rewards/jpeg.py", "rewardbench/trainers/train.py",
                 "rewardbench/benchmarks/prompt_sets/geneval.py", "rewardbench/benchmarks/suites/preference.yaml",
                 "rewardbench/trainers/recipes/tiny_smoke.yaml", "rewardbench/leaderboards/__init__.py"):
        assert must in names, must
    assert not any("scripts/" in n or "build_support" in n for n in names)  # checkout-only files stay there
    meta = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    entry_points = zipfile.ZipFile(wheel).read(meta).decode()
    assert "[rewardbench.commands]" in entry_points and "rewardbench.cli.train:train" in entry_points


# --- the checkout-only scripts ----------------------------------------------------------------------------------
def script_files() -> list[Path]:
    return sorted(SCRIPTS.rglob("*.py"))


def our_imports(path: Path) -> list[tuple[str, str | None]]:
    """``(module, name)`` of every import of ``rewardbench`` in a file (``name`` None for ``import x``)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, None) for a in node.names if a.name.split(".")[0] == "rewardbench"]
        elif isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] == "rewardbench":
            out += [(node.module, a.name) for a in node.names]
    return out


def test_scripts_are_found():
    names = {str(p.relative_to(SCRIPTS)) for p in script_files()}
    assert {"perf/bench_scoring.py", "parity/run.py", "fairness/measure_fairness.py",
            "training/learning_curve.py"} <= names, names
    assert not (ROOT / "benchmarks" / "perf").exists()  # installed code and scripts do not share a folder


def test_scripts_use_installed_code_by_its_public_names():
    """The same rule as between layers: no private module (``_x``) and no private name of installed code. What a
    script needs from inside a layer is made public there (e.g. `rewardbench.rewards.parts`)."""
    private = []
    for p in script_files():
        for module, name in our_imports(p):
            parts = module.split(".") + ([name] if name else [])
            if any(part.startswith("_") for part in parts):
                private.append(f"{p.relative_to(ROOT)}: {module}{'' if name is None else ' import ' + name}")
    assert not private, "\n".join(private)


def test_scripts_import_modules_that_exist():
    missing = [f"{p.relative_to(ROOT)}: {m}" for p in script_files() for m, _ in our_imports(p)
               if not any(m == k or k.startswith(m + ".") for k in MODULES)]
    assert not missing, missing


def test_installed_code_never_imports_the_scripts():
    found = [m for m, p in MODULES.items() if "scripts" in {n.split(".")[0] for n in _imported_names(p)}]
    assert not found, found


def _imported_names(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names.append(node.module or "")
    return names


def test_import_works_from_the_folder_that_holds_the_clone(tmp_path):
    """A clone is usually a folder named ``rewardbench``: Python started beside it must not take that folder for
    an empty namespace package (build_support/rewardbench_build.py says why it could, and what prevents it)."""
    (tmp_path / "rewardbench").symlink_to(ROOT, target_is_directory=True)
    code = ("import rewardbench, rewardbench.rewards; print(rewardbench.__file__); "
            "print(len(rewardbench.list_rewards()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    init, n = out.stdout.split()
    assert Path(init) == ROOT / "rewardbench" / "__init__.py" and int(n) > 10
