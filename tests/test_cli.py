import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from rewardbench.cli import _command_targets, main


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


@pytest.mark.parametrize("command", ["list", *sorted(_command_targets())])
def test_every_subcommand_has_help_with_an_example(command):
    r = CliRunner().invoke(main, [command, "--help"])
    assert r.exit_code == 0, r.output
    assert "unavailable" not in r.output, r.output
    assert "Example" in r.output, f"`rewardbench {command} --help` has no worked example"


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "rewardbench.cli", "--help"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "score" in out.stdout and "list" in out.stdout


def test_subcommands_are_declared_not_hard_coded():
    """The kernel's CLI names no upper layer: subcommands come from the entry-point group."""
    from pathlib import Path

    import rewardbench.cli as cli

    targets = _command_targets()
    assert {"score", "demo", "suites", "train"} <= set(targets)
    assert targets["train"].startswith("rewardbench.trainers.")
    source = Path(cli.__file__).read_text()
    assert "trainers" not in source and "benchmarks" not in source
