"""The offline main job (``rewardbench demo``, `rewardbench.cli.demo`).

`run_demo` writes real photos that ship inside scikit-image and matplotlib (people, animals, objects, a
grayscale and an RGBA image) to ``OUT/images`` with a manifest of prompts, then scores them with
every reward that needs no download (``spec.offline``), grouping by prompt for group-level
rewards, and writes ``OUT/scores.parquet`` and ``OUT/scores.csv`` (one row per image) and
``OUT/groups.csv`` (one row per prompt group). It prints image rewards per image and group rewards
once per group, with their notes (a group with no face, or a group of fewer images than the reward measures,
says so instead of showing a number).
"""

from __future__ import annotations

import json
from pathlib import Path

from .samples import sample_photo

# (file name, source, prompt). Three photos of people share one prompt so that group-level
# (fairness) rewards see a group of more than one image.
DEMO_PHOTOS = (
    ("astronaut.png", "skimage:astronaut", "a portrait of a person"),
    ("grace_hopper.jpg", "matplotlib:grace_hopper", "a portrait of a person"),
    ("camera.png", "skimage:camera", "a portrait of a person"),  # grayscale
    ("coffee.jpg", "skimage:coffee", "a cup of coffee on a saucer"),
    ("chelsea.jpg", "skimage:chelsea", "a photo of a cat"),
    ("rocket.jpg", "skimage:rocket", "a rocket on a launch pad"),
    ("hubble.jpg", "skimage:hubble_deep_field", "a photo of galaxies in deep space"),
    ("logo.png", "skimage:logo", "a logo"),  # RGBA
)


def write_demo_images(out_dir: str | Path) -> Path:
    """Write the demo photos and ``manifest.jsonl`` (columns image, prompt); return the manifest path."""
    import numpy as np
    from PIL import Image

    out_dir = Path(out_dir)
    img_dir = out_dir / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for fname, source, prompt in DEMO_PHOTOS:
        lib, _, name = source.partition(":")
        if lib == "skimage":
            import skimage.data

            Image.fromarray(np.asarray(getattr(skimage.data, name)())).save(img_dir / fname)  # as shipped (gray, RGBA)
        else:
            Image.fromarray(sample_photo(name)).save(img_dir / fname, quality=95)
        rows.append({"image": f"images/{fname}", "prompt": prompt})
    manifest = out_dir / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


WIDTH = 100  # every line the demo prints fits this many columns


def demo_tables(result, width: int = WIDTH) -> str:
    """The per-image table (image rewards) and the group rewards: one value per group in a table with a row per
    reward and a column per group (``group 1``, ...), then the groups, each with its key, size and note. A
    reward that measured nothing in a group says why in its cell (``too small``, ``no face``) instead of a
    number. Lines fit ``width`` columns: wide tables continue below, notes wrap."""
    import textwrap

    from .tables import render_table

    image_rewards = [n for n in result.reward_names if result.summary["scores"][n]["over"] == "rows"]
    show = result.table.copy()
    show["image"] = show["image"].map(lambda p: Path(str(p)).name)
    parts = [show[["image", *image_rewards]].to_string(index=False, line_width=width,
                                                       float_format=lambda v: f"{v:.4g}")]
    if result.groups is None or not len(result.groups):
        return parts[0]
    group_rewards = [n for n in result.reward_names if n not in image_rewards]
    groups = result.groups.to_dict("records")
    labels = [f"group {i}" for i in range(1, len(groups) + 1)]
    cells = {name: dict(zip(labels, (_group_cell(g, name) for g in groups))) for name in group_rewards}
    parts.append(f"\ngroup rewards, one value per group ({', '.join(result.group_by)}; the groups are listed below):")
    for chunk in _fit_columns(cells, labels, width):
        parts.append(render_table([{"reward": n, **cells[n]} for n in group_rewards], ["reward", *chunk]))
    parts.append("")
    for label, g in zip(labels, groups):
        key = " / ".join(str(g[c]) for c in result.group_by)
        parts += textwrap.wrap(f"{label}  {key} ({g['size']} image{'' if g['size'] == 1 else 's'})", width,
                               subsequent_indent=" " * (len(label) + 2), break_on_hyphens=False)
    by_note: dict[str, list[int]] = {}
    for i, g in enumerate(groups, 1):
        if g["note"]:
            by_note.setdefault(g["note"], []).append(i)
    if by_note:
        parts.append("\nnotes, each said once:")
        whose = {note: _numbers(ids) for note, ids in by_note.items()}
        pad = max(map(len, whose.values())) + 4
        for note, who in whose.items():
            parts += textwrap.wrap(note, width, initial_indent=f"  {who}".ljust(pad), subsequent_indent=" " * pad,
                                   break_on_hyphens=False)
    return "\n".join(parts)


def _numbers(ids: list[int]) -> str:
    """``group 1``, ``groups 2-6``, ``groups 1, 3``.

    Example:
        >>> _numbers([1]), _numbers([2, 3, 4]), _numbers([1, 3])
        ('group 1', 'groups 2-4', 'groups 1, 3')
    """
    if len(ids) == 1:
        return f"group {ids[0]}"
    if ids == list(range(ids[0], ids[-1] + 1)):
        return f"groups {ids[0]}-{ids[-1]}"
    return "groups " + ", ".join(map(str, ids))


def _group_cell(g: dict, name: str) -> str:
    """A group reward's cell: its value, or why it has none to show."""
    import pandas as pd

    # fairness rewards count the people they measured: with nobody measured the value is a placeholder (the
    # metric's worst), not a measurement
    measured, small = g.get(f"{name}.group_people"), g.get(f"{name}.group_too_small")
    if small is not None and not pd.isna(small) and bool(small):
        return "too small"
    if measured == 0:
        return "no face"
    return "-" if pd.isna(g[name]) else f"{g[name]:.4g}"


def _fit_columns(cells: dict[str, dict[str, str]], labels: list[str], width: int) -> list[list[str]]:
    """``labels`` (the group columns) in runs whose table, beside the ``reward`` column, fits ``width``."""
    first = max([len("reward"), *map(len, cells)])
    runs: list[list[str]] = [[]]
    used = first
    for label in labels:
        w = 2 + max([len(label), *(len(c[label]) for c in cells.values())])
        if runs[-1] and used + w > width:
            runs.append([])
            used = first
        runs[-1].append(label)
        used += w
    return runs


def weights_lines(provenance: dict[str, list], width: int = WIDTH) -> list[str]:
    """The weights each reward ran with (``ScoreResult.provenance``), rewards with the same weights together,
    one source a line, to fit ``width`` columns.

    Example:
        >>> from rewardbench.provenance import NO_WEIGHTS, Provenance
        >>> two = [Provenance("bundled", "x:m.onnx"), Provenance("bundled", "y:n.onnx")]
        >>> print("\\n".join(weights_lines({"a": [NO_WEIGHTS], "b": [NO_WEIGHTS], "c": two})))
          a, b: none (no weights needed)
          c:
            bundled:x:m.onnx
            bundled:y:n.onnx
    """
    import textwrap

    by_source: dict[tuple[str, ...], list[str]] = {}
    for name, provs in provenance.items():
        by_source.setdefault(tuple(dict.fromkeys(str(p) for p in provs)), []).append(name)
    lines = []
    for sources, names in by_source.items():
        head = ", ".join(names) + ":"
        if len(sources) == 1 and len(head) + 3 + len(sources[0]) <= width:
            lines.append(f"  {head} {sources[0]}")
            continue
        lines += textwrap.wrap(head, width, initial_indent="  ", subsequent_indent="  ", break_on_hyphens=False)
        lines += [f"    {s}" for s in sources]
    return lines


# offline rewards the demo leaves out, and why: its photos and prompts cannot exercise them
LEFT_OUT = {"ocr": "it reads the text a prompt quotes (a sign that says \"open\"); no demo prompt quotes one"}


def offline_rewards() -> list[str]:
    """Every registered reward that needs no download (``spec.offline``), but those in `LEFT_OUT`."""
    from .registry import REGISTRY

    return [s.name for s in REGISTRY.specs() if s.offline and s.name not in LEFT_OUT]


def run_demo(out_dir: str | Path, rewards: list[str] | None = None, batch_size: int = 8, progress: bool = True):
    """The demo photos written to ``out_dir`` and scored with ``rewards`` (default: `offline_rewards`), grouped
    by prompt for group rewards: ``OUT/scores.parquet``, ``OUT/scores.csv`` and, with group rewards,
    ``OUT/groups.csv``. Returns the `rewardbench.harness.ScoreResult`."""
    from .harness import Scorer
    from .preflight import plan_run
    from .registry import REGISTRY

    out_dir = Path(out_dir)
    names = list(rewards) if rewards else offline_rewards()
    has_group = any(REGISTRY.spec(n).granularity == "group" for n in names)
    manifest = write_demo_images(out_dir)
    scorer = Scorer(names, batch_size=batch_size, device="cpu", num_workers=0, progress=progress)
    # five prompts have one photo each: too small for a group reward, which the group table says ("too small");
    # the plan's note saying so again is not shown
    plan = plan_run({s.name: s.spec for s in scorer.slots}, str(manifest), out=str(out_dir / "scores.parquet"),
                    group_by="prompt" if has_group else None)
    result = scorer.run(plan, resume=False, overwrite=True)
    result.table.to_csv(out_dir / "scores.csv", index=False)
    if result.groups is not None:
        result.groups.to_csv(out_dir / "groups.csv", index=False)
    return result
