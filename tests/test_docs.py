"""The documentation holds: the site builds with ``mkdocs build --strict`` (a broken link, anchor, include or
reference fails), its API reference has a page for every installed module, every ``python`` block of the README
and of ``docs/`` runs offline, and every ``rewardbench`` command in their ``bash`` blocks parses against the real
command line (the subcommand exists, its options are known, named rewards, suites and recipes exist)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest

from .test_doctests import package_modules

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(p for p in DOCS.rglob("*.md") if "hooks" not in p.parts)]
SKIP = re.compile(r"<!--\s*skip:\s*(?P<why>.+?)\s*-->\s*$")
FENCE = re.compile(r"^```(?P<lang>\w*)[^\n]*\n(?P<code>.*?)^```", flags=re.S | re.M)


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, DOCS / "hooks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def blocks(page: Path, lang: str) -> list[tuple[int, str, str | None]]:
    """``(line, code, skip reason)`` of each fenced block in ``lang``; the reason comes from a
    ``<!-- skip: why -->`` comment on the line before the fence."""
    text = page.read_text()
    found = []
    for m in FENCE.finditer(text):
        if m["lang"] != lang:
            continue
        before = text[: m.start()].rstrip("\n").rpartition("\n")[2]
        skip = SKIP.search(before)
        found.append((text.count("\n", 0, m.start()) + 1, m["code"], skip["why"] if skip else None))
    return found


# --- the site ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"}
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                         cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    problems = [line for line in run.stderr.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert run.returncode == 0, "mkdocs build --strict failed:\n" + "\n".join(problems or run.stderr.splitlines()[-30:])
    return out


def test_site_builds_strictly(site):
    assert (site / "index.html").is_file() and (site / "reference" / "index.html").is_file()


def test_reference_pages_are_generated_for_every_installed_module():
    """The generator's module list (read from the folders) is exactly what Python can import."""
    assert _load("api_pages").modules() == package_modules()


def test_every_installed_module_has_a_rendered_reference_page(site):
    missing = []
    for module in package_modules():
        page = site / "reference" / Path(*module.split(".")) / "index.html"
        if not page.is_file() or f'id="{module}"' not in page.read_text():
            missing.append(module)
    assert not missing, f"no rendered API reference page for {missing}"


def test_every_registered_reward_is_in_the_zoo_page():
    catalog = json.loads((ROOT / "rewards" / "catalog.json").read_text())
    zoo = (DOCS / "rewards.md").read_text()
    missing = [r["name"] for r in catalog["rewards"] if f"`{r['name']}`" not in zoo]
    assert not missing, f"docs/rewards.md does not name {missing}"


def test_csv_tables_fail_loudly(tmp_path):
    tables = _load("tables")
    with pytest.raises(FileNotFoundError):
        tables.csv_table("no/such/file.csv")
    with pytest.raises(KeyError):
        tables.csv_table("leaderboards/boards/perf.csv", columns=["no_such_column"])


# --- python blocks ----------------------------------------------------------------------------------------------
RUNNER = r"""
import json, sys, traceback
failures, namespaces = [], {}
for page, line, code in json.load(open(sys.argv[1])):
    namespace = namespaces.setdefault(page, {"__name__": "__docs__"})  # the blocks of a page run in order
    if namespace.get("__failed__"):
        continue
    try:
        exec(compile(code, f"{page}:{line}", "exec"), namespace)
    except Exception:
        namespace["__failed__"] = True
        failures.append(f"{page}, block at line {line}:\n{traceback.format_exc(limit=-3)}")
print("\n".join(failures))
sys.exit(1 if failures else 0)
"""


def test_python_blocks_run(tmp_path):
    """Every ``python`` block of a page runs top to bottom, offline, in a folder where ``./run demo`` has run: in one
    fresh process (a page's example may register a reward), each page in its own namespace."""
    todo = [(str(p.relative_to(ROOT)), line, code) for p in PAGES for line, code, skip in blocks(p, "python")
            if skip is None]
    assert any(page == "README.md" for page, _, _ in todo), "the README has no runnable ```python block"
    from rewardbench.demo import write_demo_images

    write_demo_images(tmp_path / "demo_out")  # what `./run demo` leaves
    (tmp_path / "blocks.json").write_text(json.dumps(todo))
    (tmp_path / "runner.py").write_text(RUNNER)
    run = subprocess.run([sys.executable, "runner.py", "blocks.json"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=900)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]


def test_skip_markers_say_why():
    for page in PAGES:
        for line, _, skip in blocks(page, "python"):
            assert skip is None or len(skip) > 5, f"{page.name}:{line}: say why the block is skipped"


# --- bash blocks ------------------------------------------------------------------------------------------------
def commands(code: str) -> list[list[str]]:
    """The ``rewardbench`` argument lists of a bash block: continuation lines joined, comments dropped, leading
    ``VAR=value`` assignments skipped; ``torchrun``/``accelerate launch ... -m rewardbench.cli`` (and
    ``-m rewardbench.trainers.cli``, the ``train`` command) count too."""
    found = []
    for line in code.replace("\\\n", " ").splitlines():
        for part in re.split(r"\s(?:&&|\||;)\s", line):
            words = shlex.split(part, comments=True)
            while words and re.match(r"^[A-Z_]+=", words[0]):
                words = words[1:]
            if not words:
                continue
            if words[0] == "rewardbench":
                found.append(words[1:])
            elif "-m" in words and words[words.index("-m") + 1:][:1] in (["rewardbench.cli"],
                                                                        ["rewardbench.trainers.cli"]):
                i = words.index("-m")
                found.append((["train"] if words[i + 1] == "rewardbench.trainers.cli" else []) + words[i + 2:])
    return found


def python_modules(code: str) -> list[str]:
    """The ``rewardbench`` modules a bash block runs with ``python -m`` (or a launcher's ``-m``)."""
    return re.findall(r"(?<!\S)-m\s+(rewardbench[\w.]*)", code)


def known_names() -> dict[str, set[str]]:
    catalog = json.loads((ROOT / "rewards" / "catalog.json").read_text())["rewards"]
    from rewardbench.benchmarks.prompt_sets import list_prompt_sets

    return {
        "reward": {n for r in catalog for n in (r["name"], *r.get("aliases", []))},
        "suite": {p.stem for p in (ROOT / "benchmarks" / "suites").glob("*.yaml") if not p.stem.startswith("_")},
        "prompt set": set(list_prompt_sets()),
    }


# options whose values name things that must exist: (subcommand, option name) -> kind
NAMED = {("score", "models"): "reward", ("agreement", "rewards"): "reward", ("run-benchmark", "judges"): "reward",
         ("run-benchmark", "suite"): "suite", ("demo", "model"): "reward"}


def check_command(args: list[str], names: dict[str, set[str]]) -> None:
    """Parse ``rewardbench ARGS`` with the command line's own parser; raise on anything it would refuse to parse."""
    from rewardbench.cli.main import main

    cmd, path, ctx = main, ["rewardbench"], click.Context(main, info_name="rewardbench")
    while True:
        opts, rest, _ = cmd.make_parser(ctx).parse_args(list(args))  # unknown options, missing values
        for param in cmd.params:
            if param.name in opts and isinstance(param.type, click.Choice):
                param.type.convert(opts[param.name], param, ctx)
        if isinstance(cmd, click.Group):
            if not rest:
                return
            sub = cmd.get_command(ctx, rest[0])
            if sub is None:
                raise click.UsageError(f"{' '.join(path)} has no subcommand {rest[0]!r}")
            cmd, args, ctx = sub, rest[1:], click.Context(sub, info_name=rest[0], parent=ctx)
            path.append(rest[0])
            continue
        if rest and not any(isinstance(p, click.Argument) for p in cmd.params):
            raise click.UsageError(f"{' '.join(path)}: unexpected arguments {rest}")
        break
    for (sub, option), kind in NAMED.items():
        if path[1:2] == [sub] and opts.get(option):
            unknown = [n for n in str(opts[option]).split(",") if n not in names[kind]]
            if unknown:
                raise click.UsageError(f"{' '.join(path)}: no {kind} named {unknown}")
    # `suites`: the old name of `prompts`, still working for one release
    if path[1:2] in (["prompts"], ["suites"]) and path[2:] in (["show"], ["export"]) and rest \
            and rest[0] not in names["prompt set"]:
        raise click.UsageError(f"no prompt set named {rest[0]!r}")
    if path[1:] == ["train"] and opts.get("config_path") and not (ROOT / opts["config_path"]).is_file():
        raise click.UsageError(f"no recipe {opts['config_path']}")


def test_bash_commands_parse():
    names = known_names()
    failures, checked = [], 0
    for page in PAGES:
        for line, code, _ in blocks(page, "bash"):
            for args in commands(code):
                checked += 1
                try:
                    check_command(args, names)
                except click.ClickException as e:
                    failures.append(f"{page.relative_to(ROOT)}:{line}: rewardbench {shlex.join(args)}\n    {e}")
            for module in python_modules(code):
                if importlib.util.find_spec(module) is None:
                    failures.append(f"{page.relative_to(ROOT)}:{line}: no module {module} (python -m {module})")
    assert checked > 20, checked
    assert not failures, "\n".join(failures)


def test_command_checker_catches_mistakes():
    names = known_names()
    for bad in (["score", "--model", "jpeg-compressibility", "--no-such-flag"], ["scor", "--help"],
                ["score", "--model", "no-such-reward", "--images", "x"], ["prompts", "shw", "x"],
                ["leaderboard", "--format", "pdf"], ["train", "--config", "trainers/recipes/nope.yaml"]):
        with pytest.raises(click.ClickException):
            check_command(bad, names)
    check_command(["prompts", "show", "drawbench", "--limit", "5"], names)
