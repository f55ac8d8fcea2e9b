"""Generate the command-line reference (``cli.md``): every subcommand's ``--help``, as the installed command line
prints it, so the page cannot drift from the code. Run by mkdocs-gen-files on every build (mkdocs.yml)."""

from __future__ import annotations

import click

WIDTH = 110


def help_texts() -> list[tuple[str, str]]:
    """``("rewardbench score", "<its --help>")`` for the group and every subcommand, nested groups included."""
    from rewardbench.cli.main import main

    out = []

    def visit(cmd: click.Command, name: str, parent: click.Context | None) -> None:
        settings = {**cmd.context_settings, "terminal_width": WIDTH, "max_content_width": WIDTH}
        ctx = click.Context(cmd, info_name=name.rpartition(" ")[2], parent=parent, **settings)
        out.append((name, cmd.get_help(ctx)))
        if isinstance(cmd, click.Group):
            for sub in cmd.list_commands(ctx):
                visit(cmd.get_command(ctx, sub), f"{name} {sub}", ctx)

    visit(main, "rewardbench", None)
    return out


def page() -> str:
    lines = ["# Command line", "",
             "Every subcommand's `--help`, generated from the installed command line at each build. The exit codes are",
             "the same in every subcommand: 0 done, 1 some work failed (what was done is kept), 2 a usage or",
             "configuration error. The guides show the commands at work: [Scoring images](scoring.md),",
             "[run-benchmark](run-benchmark.md), [Agreement and leaderboards](agreement.md), [Training](training.md).",
             ""]
    for name, text in help_texts():
        lines += [f"## {name}", "", "```text", text.rstrip(), "```", ""]
    return "\n".join(lines)


if __name__ == "<run_path>":  # mkdocs-gen-files runs this file with runpy.run_path
    import mkdocs_gen_files

    with mkdocs_gen_files.open("cli.md", "w") as f:
        f.write(page())
