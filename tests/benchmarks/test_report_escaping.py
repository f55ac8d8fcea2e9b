"""Names in text outputs are text (issue 24): a model, judge or category named like markup or HTML renders as its
own characters in ``report.md`` and in ``rewardbench leaderboard --format md``, under GitHub-style markdown
(markdown-it, tables on) and Python-Markdown (the docs site's), and a ``|`` or a backtick does not break a table."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from rewardbench.benchmarks.run import BenchmarkRun, run_benchmark

SCRIPT = "<script>alert(1)</script>"
PIPES = "a|b `c` *d* [e](f) \\|"
CATEGORY = "x|y <b>z</b>"


class _Html(HTMLParser):
    """The tags an HTML text opens, and its tables as rows of cell texts."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.tables, self._cell = [], [], None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append(self._cell.strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def _renderers():
    import markdown

    out = {"python-markdown": lambda text: markdown.markdown(text, extensions=["tables"])}
    try:
        from markdown_it import MarkdownIt
    except ImportError:  # GitHub-style rendering needs markdown-it-py (installed with rich)
        return out
    out["markdown-it (GFM tables)"] = lambda text: MarkdownIt("commonmark").enable("table").render(text)
    return out


RENDERERS = _renderers()


def _check(text: str, render, names: set[str]) -> list[list[str]]:
    """Render; no tag comes from a name; every table row has its header's cells; the cells that hold the names."""
    page = _Html()
    page.feed(render(text))
    assert not {"script", "b", "code", "em", "strong", "a"} & set(page.tags) - _allowed(text, render), page.tags
    found = []
    for table in page.tables:
        width = len(table[0])
        assert all(len(row) == width for row in table), table
        found += [cell for row in table for cell in row if cell in names]
    return found


def _allowed(text: str, render) -> set[str]:
    """Tags the document uses for itself (the same text with the names taken out)."""
    page = _Html()
    page.feed(render(text.replace("\\", "")))  # only to learn which tags the report's own prose opens
    return {t for t in page.tags if t in ("code", "strong", "em", "a")}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    d = tmp_path_factory.mktemp("escaping")
    rows = []
    rng = np.random.default_rng(0)
    for m, model in enumerate(("base", SCRIPT, PIPES)):
        (d / str(m)).mkdir()
        for p in range(3):
            f = f"{m}/{p}.png"
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(d / f)
            rows.append({"image": f, "prompt": f"prompt {p}", "model": model, "category": CATEGORY if p else "plain"})
    (d / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = BenchmarkRun(out=str(d / "out"), images=str(d / "m.jsonl"), baseline="base",
                       judges=("jpeg-compressibility",), num_workers=0, n_boot=200, progress=False, plots=False)
    run_benchmark(run)
    return (d / "out" / "report.md").read_text()


@pytest.mark.parametrize("renderer", sorted(RENDERERS))
def test_report_md_shows_names_as_text(report, renderer):
    assert SCRIPT not in report  # not even in the markdown source
    found = _check(report, RENDERERS[renderer], {SCRIPT, PIPES, CATEGORY})
    assert {SCRIPT, PIPES, CATEGORY} <= set(found), found  # each name is one whole cell, as written


@pytest.mark.parametrize("renderer", sorted(RENDERERS))
def test_leaderboard_md_shows_names_as_text(tmp_path, renderer):
    from rewardbench.cli.main import main
    from rewardbench.leaderboards.board import append_rows, make_row
    from rewardbench.provenance import Provenance

    append_rows("my_board", [make_row(subject=s, judge=PIPES, suite="s", category=CATEGORY, metric="mean", value=0.5,
                                    ci_low=0.4, ci_high=0.6, n=10, protocol="mean", weights=[Provenance("none", "")])
                           for s in (SCRIPT, "plain")], root=tmp_path)
    r = CliRunner().invoke(main, ["leaderboard", "--dir", str(tmp_path), "--format", "md", "--no-published"])
    assert r.exit_code == 0, r.output
    assert SCRIPT not in r.output
    found = _check(r.output, RENDERERS[renderer], {SCRIPT, PIPES, CATEGORY})
    assert found.count(PIPES) == 2 and found.count(CATEGORY) == 2 and SCRIPT in found
    assert "my_board" in _html_text(RENDERERS[renderer](r.output))  # the board's heading


def _html_text(html: str) -> str:
    page = _Html()
    texts = []
    page.handle_data = texts.append
    page.feed(html)
    return "".join(texts)
