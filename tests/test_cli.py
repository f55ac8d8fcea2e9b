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


@pytest.mark.parametrize("args", [
    ["score", "--model", "jpeg-compressibility", "--images", "IMAGES", "--out", "MISSING/s.parquet"],
    ["score", "--model", "vendi", "--images", "IMAGES", "--prompts", "PROMPTS", "--group-by", "prompt", "--out",
     "OK/s.parquet", "--group-table", "MISSING/g.csv"],
    ["run-benchmark", "--images", "IMAGES", "--prompts", "PROMPTS", "--judges", "jpeg-compressibility", "--out",
     "MISSING/run"],
    ["agreement", "--dataset", "photo-distortions", "--rewards", "jpeg-compressibility", "--out", "MISSING/r.csv"],
    ["leaderboard", "--out", "MISSING/board.md"],
    ["prompts", "export", "object-pairs", "--out", "MISSING/pairs.jsonl"],
    ["demo", "--out", "MISSING/demo"],
    ["train", "--config", "CONFIG", "run.output_dir=MISSING/run"],
], ids=lambda a: a[0])
def test_an_out_in_a_missing_folder_is_refused_before_any_work(args, tmp_path):
    from PIL import Image

    (tmp_path / "images").mkdir()
    Image.new("RGB", (16, 16)).save(tmp_path / "images" / "a.png")
    (tmp_path / "prompts.txt").write_text("a black square\n")
    (tmp_path / "OK").mkdir()
    names = {"IMAGES": tmp_path / "images", "PROMPTS": tmp_path / "prompts.txt", "CONFIG": _tiny_recipe(),
             "MISSING": tmp_path / "typo", "OK": tmp_path / "OK"}
    args = [_fill(a, names) for a in args]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2, (r.exit_code, r.output)
    assert "does not exist; create it first" in r.output and "Traceback" not in r.output, r.output
    assert not (tmp_path / "typo").exists()


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
