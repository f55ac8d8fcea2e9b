"""The command line's conventions hold in every subcommand: a worked example in ``--help``, the same exit codes
(0 done, 1 some work failed, 2 usage or configuration error), ``--no-progress`` wherever there is progress to show,
one rule for an ``--out`` whose folder is missing, and ``--help``/``--version``/``list`` without torch."""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from rewardbench.cli import main
from rewardbench.cli.main import command_targets


def test_list_table_json_and_category():
    r = CliRunner().invoke(main, ["list"])
    assert r.exit_code == 0, r.output
    assert "jpeg-compressibility" in r.output and "rewards" in r.output
    r = CliRunner().invoke(main, ["list", "--json"])
    rows = json.loads(r.output)
    names = {row["name"] for row in rows}
    assert {"jpeg-compressibility", "jpeg-incompressibility"} <= names
    assert {"category", "higher_is_better", "range", "granularity", "differentiable", "backbone", "weights",
            "license", "paper"} <= set(rows[0])
    r = CliRunner().invoke(main, ["list", "--category", "baseline", "--json"])
    assert all(row["category"] == "baseline" for row in json.loads(r.output))
    r = CliRunner().invoke(main, ["list", "--offline", "--json"])
    assert all(row["offline"] for row in json.loads(r.output))
    r = CliRunner().invoke(main, ["list", "--category", "nonsense"])
    assert r.exit_code == 2 and "unknown category" in r.output


def test_the_catalogue_is_the_registry():
    """`rewardbench list` reads rewards/catalog.json; it must say what the registry says."""
    from rewardbench.catalog import catalog_path, catalog_rows, live_catalog

    assert json.loads(json.dumps(live_catalog()))["rewards"] == catalog_rows(), (
        f"{catalog_path()} is out of date: run `python -m rewardbench.catalog` and commit it")


@pytest.mark.parametrize("command", sorted(command_targets()))
def test_every_subcommand_has_help_with_an_example(command):
    r = CliRunner().invoke(main, [command, "--help"])
    assert r.exit_code == 0, r.output
    assert "unavailable" not in r.output, r.output
    assert "Example" in r.output, f"`rewardbench {command} --help` has no worked example"


def test_help_version_and_list_do_not_import_torch():
    code = ("import sys\nfrom rewardbench.cli import main\n"
            "for args in (['--help'], ['--version'], ['list'], ['list', '--json'], ['score', '--help']):\n"
            "    try:\n        main(args)\n    except SystemExit as e:\n        assert e.code in (0, None), (args, e)\n"
            "heavy = sorted(m for m in ('torch', 'transformers', 'diffusers', 'pandas') if m in sys.modules)\n"
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "HEAVY []" in out.stdout, out.stdout[-500:]


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "rewardbench.cli", "--help"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "score" in out.stdout and "list" in out.stdout


def test_subcommands_live_in_the_cli_room():
    """Every subcommand of ours is a module of rewardbench.cli, found through the entry-point group."""
    targets = command_targets()
    assert {"list", "score", "demo", "prompts", "train", "agreement", "leaderboard", "run-benchmark"} <= set(targets)
    assert all(t.startswith("rewardbench.cli.") for t in targets.values()), targets


# --- the same exit code for the same kind of mistake, in every subcommand ---------------------------------------
USAGE_MISTAKES = {
    "score": ["score", "--model", "no-such-reward", "--images", "."],
    "run-benchmark": ["run-benchmark", "--suite", "no-such-suite", "--judges", "jpeg-compressibility", "--dry-run"],
    "agreement": ["agreement", "--dataset", "photo-distortions", "--rewards", "no-such-reward"],
    "leaderboard": ["leaderboard", "--dir", "/nonexistent/boards"],
    "prompts": ["prompts", "show", "no-such-set"],
    "list": ["list", "--category", "no-such-category"],
    "train": ["train", "train.no_such_key=1", "--print-config"],
}


@pytest.mark.parametrize("command", sorted(USAGE_MISTAKES))
def test_a_usage_mistake_is_one_line_and_exit_2(command):
    r = CliRunner().invoke(main, USAGE_MISTAKES[command])
    assert r.exit_code == 2, (r.exit_code, r.output)
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert "Traceback" not in r.output and lines and "rror" in lines[-1], r.output


OUT_ARGS = [
    ["score", "--model", "jpeg-compressibility", "--images", "IMAGES", "--out", "OUT/s.parquet"],
    ["score", "--model", "vendi", "--images", "IMAGES", "--prompts", "PROMPTS", "--group-by", "prompt", "--out",
     "OK/s.parquet", "--group-table", "OUT/g.csv", "--allow-small-groups"],  # one image: a group too small
    ["run-benchmark", "--images", "IMAGES", "--prompts", "PROMPTS", "--judges", "jpeg-compressibility", "--out",
     "OUT/run"],
    ["agreement", "--dataset", "photo-distortions", "--rewards", "jpeg-compressibility", "--out", "OUT/r.csv"],
    ["leaderboard", "--out", "OUT/board.md"],
    ["prompts", "export", "object-pairs", "--out", "OUT/pairs.jsonl"],
    ["demo", "--out", "OUT/demo"],
    ["train", "--config", "CONFIG", "run.output_dir=OUT/run"],
]


@pytest.mark.parametrize("args", OUT_ARGS, ids=lambda a: a[0])
def test_an_out_that_cannot_be_written_is_refused_before_any_work(args, tmp_path):
    """One rule for every output (and the Python API): missing folders are created, and a path that cannot be
    written (here: under a file) exits 2 with one line before anything runs."""
    r = CliRunner().invoke(main, [_fill(a, _names(tmp_path, out=tmp_path / "file" / "typo")) for a in args])
    assert r.exit_code == 2, (r.exit_code, r.output)
    assert "is a file, not a folder" in r.output and "Traceback" not in r.output, r.output


@pytest.mark.parametrize("args", [a for a in OUT_ARGS if a[0] in ("score", "leaderboard", "prompts")],
                         ids=lambda a: a[0])
def test_an_out_in_a_missing_folder_is_written_there(args, tmp_path):
    r = CliRunner().invoke(main, [_fill(a, _names(tmp_path, out=tmp_path / "new" / "deeper")) for a in args])
    assert r.exit_code == 0, r.output
    assert any((tmp_path / "new" / "deeper").iterdir())


def _names(tmp_path, out) -> dict:
    from PIL import Image

    if not (tmp_path / "images").exists():
        (tmp_path / "images").mkdir()
        Image.new("RGB", (16, 16)).save(tmp_path / "images" / "a.png")
        (tmp_path / "prompts.txt").write_text("a black square\n")
        (tmp_path / "OK").mkdir()
        (tmp_path / "file").write_text("not a folder")
    return {"IMAGES": tmp_path / "images", "PROMPTS": tmp_path / "prompts.txt", "CONFIG": _tiny_recipe(),
            "OUT": out, "OK": tmp_path / "OK"}


def _fill(arg: str, names: dict) -> str:
    for k, v in names.items():
        arg = arg.replace(k, str(v))
    return arg


def _tiny_recipe() -> str:
    from pathlib import Path

    import rewardbench.trainers

    return str(Path(rewardbench.trainers.__file__).parent / "recipes" / "tiny_smoke.yaml")


WITH_PROGRESS = ["score", "demo", "run-benchmark", "agreement", "train"]


@pytest.mark.parametrize("command", WITH_PROGRESS)
def test_no_progress_means_the_same_everywhere(command):
    r = CliRunner().invoke(main, [command, "--help"])
    assert "--no-progress" in r.output, f"`rewardbench {command}` does not take --no-progress"


def test_the_usage_errors_name_real_exception_classes():
    """`common.USAGE_ERRORS` names classes as strings (to import nothing); a rename must not silently drop one."""
    import importlib

    from rewardbench.cli.common import USAGE_ERRORS

    for target in USAGE_ERRORS:
        module, _, name = target.partition(":")
        cls = getattr(importlib.import_module(module), name, None)
        assert isinstance(cls, type) and issubclass(cls, Exception), target
