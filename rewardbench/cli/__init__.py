"""The command line, in one room: ``main`` (the ``rewardbench`` group), one module per subcommand, and
`common` (exit codes, error reporting, the options every subcommand shares).

The room sits above every layer: a subcommand imports the layer that does its work (the scorer, the trainer,
run-benchmark, the leaderboards) inside its function, never at import time, so listing and ``--help`` stay light;
no installed module imports this package. Subcommands are found through the entry-point group
``rewardbench.commands`` (pyproject.toml), which third-party packages may extend.

Example:
    >>> from click.testing import CliRunner
    >>> CliRunner().invoke(main, ["--version"]).output.startswith("rewardbench, version")
    True
"""

from .main import main

__all__ = ["main"]
