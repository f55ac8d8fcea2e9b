"""One static HTML page of every board: sortable, filterable tables, intervals, plots, protocol notes.

The page is a single file with its CSS and JavaScript inline (written here, no third-party code) and
its plots embedded as base64 PNGs: it needs no server and makes no network request, so it can be
mailed or attached as is. Each reward name links to its paper and shows its spec (category, licence,
weights) as a tooltip; each protocol cell shows the protocol's definition as a tooltip.

    >>> import pandas as pd
    >>> from rewardbench.leaderboards.board import make_row
    >>> row = make_row(subject="nsfw", judge="human", suite="toy", metric="accuracy", value=0.5, n=4,
    ...                protocol="drop-ties (tie threshold 0)", weights="bundled")
    >>> page = render_html(pd.DataFrame([row]).assign(board="demo"))
    >>> page.count("<table"), "http://" in page or "https://cdn" in page
    (1, False)
"""

from __future__ import annotations

import base64
import html
import re

import pandas as pd

from .protocols import describe
from .render import display_rows

TABLE_COLUMNS = ["subject", "judge", "suite", "split", "category", "metric", "value", "ci", "n", "protocol",
                 "weights", "date", "version"]
REFERENCE_COLUMNS = ["reward", "subject", "dataset", "split", "value", "protocol", "source"]
PUBLISHED_COLUMNS = ["reward", "dataset", "split", "ours (%)", "ours CI", "our protocol", "published (%)",
                     "published protocol", "source"]

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#222;max-width:1400px}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;font-size:.85rem;margin:.6rem 0}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f5f8;cursor:pointer;user-select:none;white-space:nowrap}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums}tr:nth-child(even) td{background:#fafbfc}
input.filter{padding:.3rem .5rem;width:22rem;border:1px solid #bbb;border-radius:4px}
.note{color:#555;font-size:.85rem}.plot{max-width:100%;margin:.5rem 0}abbr{text-decoration:underline dotted}
.count{color:#777;font-size:.8rem;margin-left:.6rem}
"""

JS = """
function cellValue(td){var t=td.getAttribute('data-sort');if(t===null)t=td.textContent;var x=parseFloat(t);
  return isNaN(x)||!/^\\s*[-+]?[0-9.]/.test(t)?{s:t.toLowerCase()}:{n:x};}
function sortTable(th){var table=th.closest('table'),tbody=table.tBodies[0],idx=Array.prototype.indexOf.call(
  th.parentNode.children,th),dir=th.getAttribute('aria-sort')==='ascending'?'descending':'ascending';
  Array.prototype.forEach.call(th.parentNode.children,function(h){h.removeAttribute('aria-sort');});
  th.setAttribute('aria-sort',dir);var rows=Array.prototype.slice.call(tbody.rows);
  rows.sort(function(a,b){var x=cellValue(a.cells[idx]),y=cellValue(b.cells[idx]),r;
    if(x.n!==undefined&&y.n!==undefined)r=x.n-y.n;else if(x.n!==undefined)r=-1;else if(y.n!==undefined)r=1;
    else r=x.s<y.s?-1:(x.s>y.s?1:0);return dir==='ascending'?r:-r;});
  rows.forEach(function(r){tbody.appendChild(r);});}
function filterTable(input){var q=input.value.toLowerCase(),table=document.getElementById(input.getAttribute(
  'data-table')),shown=0;Array.prototype.forEach.call(table.tBodies[0].rows,function(r){var ok=
  r.textContent.toLowerCase().indexOf(q)>=0;r.style.display=ok?'':'none';if(ok)shown++;});
  var c=document.getElementById(input.getAttribute('data-table')+'-count');if(c)c.textContent=shown+' rows';}
document.addEventListener('click',function(e){var th=e.target.closest('th');if(th&&th.closest('table.board'))
  sortTable(th);});
document.addEventListener('input',function(e){if(e.target.classList.contains('filter'))filterTable(e.target);});
"""


def _esc(v) -> str:
    return html.escape("" if v is None or (isinstance(v, float) and v != v) else str(v))


def _paper_url(text: str) -> str | None:
    m = re.search(r"https?://[^\s)]+", text or "")
    if m:
        return m.group(0).rstrip(".,;")
    m = re.search(r"arXiv[: ]\s*(\d{4}\.\d{4,5})", text or "", re.I)
    return f"https://arxiv.org/abs/{m.group(1)}" if m else None


def spec_cell(name: str) -> str:
    """A reward name with its spec as a tooltip and a link to its paper; other names as plain text."""
    from rewardbench import get_spec

    try:
        spec = get_spec(str(name))
    except Exception:  # noqa: BLE001 - not a registered reward (a model, "human", a published subject)
        return _esc(name)
    row = spec.as_row()
    tip = (f"{spec.name}: {spec.category}, {'higher' if spec.higher_is_better else 'lower'} is better, "
           f"{spec.granularity}-level; licence: {row['license'] or '?'}; weights: "
           f"{', '.join(row['weights']) or 'none'}; paper: {spec.paper or '?'}")
    url = _paper_url(spec.paper)
    text = f'<abbr title="{_esc(tip)}">{_esc(name)}</abbr>'
    return f'<a href="{_esc(url)}">{text}</a>' if url else text


def _table(table_id: str, df: pd.DataFrame, columns: list[str], rich: bool = True) -> str:
    head = "".join(f'<th scope="col">{_esc(c)}</th>' for c in columns)
    body = []
    for r in (display_rows(df) if rich else df.to_dict("records")):
        cells = []
        for c in columns:
            v = r.get(c)
            if rich and c in ("subject", "judge"):
                cells.append(f"<td>{spec_cell(v)}</td>")
            elif c in ("protocol", "our protocol", "published protocol"):
                cells.append(f'<td title="{_esc(describe(v))}">{_esc(v)}</td>')
            elif c == "source" and r.get("url"):
                cells.append(f'<td><a href="{_esc(r["url"])}">{_esc(v)}</a></td>')
            elif c in ("value", "n", "ours (%)", "published (%)"):
                raw = r.get("_raw_value") if c == "value" else v
                cells.append(f'<td class="num" data-sort="{_esc(raw)}">{_esc(v)}</td>')
            else:
                cells.append(f"<td>{_esc(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<p><input class="filter" type="search" placeholder="filter rows..." data-table="{table_id}" '
            f'aria-label="filter {table_id}"><span class="count" id="{table_id}-count">{len(body)} rows</span></p>'
            f'<table class="board" id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}'
            f"</tbody></table>")


def _img(png: bytes, alt: str) -> str:
    return f'<img class="plot" alt="{_esc(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def board_plots(name: str, df: pd.DataFrame) -> list[str]:
    """The board's plots as <img> tags: a clustered heat map for reward-vs-reward agreement, else bars with
    intervals per (suite, metric, judge, split): of the subjects when there are several, else of the one
    subject's categories (at most six plots)."""
    from .plots import bar_chart, heatmap, matrix_from_rows

    out = []
    if (df["metric"] == "pair_agreement").any():
        for suite, sub in df[df["metric"] == "pair_agreement"].groupby("suite"):
            out.append(_img(heatmap(matrix_from_rows(sub), title=f"{name}: pair agreement on {suite}"),
                            f"{name} heat map"))
        return out
    for (suite, metric, judge, split), sub in df.groupby(["suite", "metric", "judge", "split"], sort=True):
        overall = sub[sub["category"] == "all"]
        if overall["subject"].nunique() >= 2:
            chart, label = overall, "subject"
        elif sub["subject"].nunique() == 1 and sub["category"].nunique() >= 2:
            chart, label = sub, "category"  # one subject measured several ways (e.g. timings on one machine)
        else:
            continue
        if len(out) < 6:
            where = f"{suite}, {split}" if split not in ("-", "all") else suite
            out.append(_img(bar_chart(chart, label=label, title=f"{name}: {metric} on {where} ({judge})"),
                            f"{name} {metric}"))
    return out


def render_html(boards: pd.DataFrame, published: pd.DataFrame | None = None, *, title: str = "rewardbench "
                "leaderboards", generated: str = "", reference: pd.DataFrame | None = None) -> str:
    """The whole page: one section per board (``board`` column), our numbers beside published ones
    (``published``, from `published.side_by_side`), the published numbers themselves (``reference``, from
    `published.published`), and the protocol notes."""
    from rewardbench import __version__

    sections, toc = [], []
    for i, (name, df) in enumerate(boards.groupby("board", sort=True)):
        df = df.assign(_raw_value=df["value"])
        anchor = f"board-{i}"
        toc.append(f'<li><a href="#{anchor}">{_esc(name)}</a> ({len(df)} rows)</li>')
        sections.append(f'<section id="{anchor}" data-board="{_esc(name)}"><h2>{_esc(name)}</h2>'
                        + "".join(board_plots(name, df)) + _table(f"table-{i}", df, TABLE_COLUMNS) + "</section>")
    if published is not None and len(published):
        toc.append('<li><a href="#published">published numbers beside ours</a></li>')
        sections.append('<section id="published" data-board="published"><h2>Published numbers beside ours</h2>'
                        '<p class="note">Published values as printed (percent) with their protocol and source; '
                        'ours with the 95% cluster-bootstrap interval. A gap usually means a different '
                        'protocol, split or preprocessing: read the protocol columns first.</p>'
                        + _table("table-published", published, PUBLISHED_COLUMNS, rich=False) + "</section>")
    if reference is not None and len(reference):
        toc.append('<li><a href="#reference">published numbers</a></li>')
        sections.append('<section id="reference" data-board="published numbers"><h2>Published numbers</h2>'
                        '<p class="note">As printed (percent), with the protocol and the paper table or README '
                        'each comes from. Rows with a reward name are models in this zoo.</p>'
                        + _table("table-reference", reference, REFERENCE_COLUMNS, rich=False) + "</section>")
    used = sorted({str(p) for p in boards["protocol"].dropna()})
    notes = "".join(f"<li><code>{_esc(p)}</code>: {_esc(describe(p))}</li>" for p in used if describe(p))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_esc(title)}</title><style>{CSS}</style></head><body>
<h1>{_esc(title)}</h1>
<p class="note">rewardbench {_esc(__version__)}{', generated ' + _esc(generated) if generated else ''}. Click a column
header to sort, type in a box to filter. Intervals are 95% bootstrap intervals over prompts (clusters). Boards
hold results from real weights only; timing rows say that their weights were random (speed does not depend on
weight values). Hover a reward for its spec, a protocol for its definition.</p>
<ul>{''.join(toc)}</ul>
{''.join(sections)}
<section id="protocols"><h2>Protocols</h2><ul>{notes}</ul></section>
<script>{JS}</script></body></html>
"""
