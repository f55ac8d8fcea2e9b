"""``rewardbench demo``: the offline main job.

Writes real photos that ship inside scikit-image and matplotlib (people, animals, objects, a
grayscale and an RGBA image) to ``OUT/images`` with a manifest of prompts, then scores them with
every reward that needs no download (``spec.offline``), grouping by prompt for group-level
rewards, and writes ``OUT/scores.parquet`` and ``OUT/scores.csv`` (one row per image) and
``OUT/groups.csv`` (one row per prompt group). It prints image rewards per image and group rewards
once per group, with their notes (a group with no face says so instead of showing a number).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

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


def demo_tables(result) -> str:
    """The per-image table (image rewards) and the per-group table (group rewards, each group once, with
    its notes; a group whose reward had nothing to measure shows its note, not a number)."""
    import pandas as pd

    from .tables import render_table

    image_rewards = [n for n in result.reward_names if result.summary["scores"][n]["over"] == "rows"]
    show = result.table.copy()
    show["image"] = show["image"].map(lambda p: Path(str(p)).name)
    with pd.option_context("display.max_columns", None, "display.width", 200, "display.precision", 3):
        parts = [show[["image", *image_rewards]].to_string(index=False)]
    if result.groups is None or not len(result.groups):
        return parts[0]
    group_rewards = [n for n in result.reward_names if n not in image_rewards]
    rows = []
    for g in result.groups.to_dict("records"):
        row = {c: g[c] for c in (*result.group_by, "size")}
        for name in group_rewards:
            # fairness rewards count the people they measured: with nobody measured the value is a
            # placeholder (the metric's worst), not a measurement
            measured = g.get(f"{name}.group_people")
            row[name] = "no face" if measured == 0 else "-" if pd.isna(g[name]) else f"{g[name]:.4g}"
        row["note"] = g["note"]
        rows.append(row)
    parts.append(f"\ngroup rewards, one row per group ({','.join(result.group_by)}):")
    parts.append(render_table(rows, [*result.group_by, "size", *group_rewards, "note"]))
    return "\n".join(parts)


_EPILOG = """\b
Example:
  rewardbench demo --out demo_out
  # then: python -c "import pandas as pd; print(pd.read_parquet('demo_out/scores.parquet'))"
"""


@click.command("demo", epilog=_EPILOG)
@click.option("--out", "out_dir", default="demo_out", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the images, the manifest and the scores.")
@click.option("--model", default=None, help="Comma-separated rewards (default: every offline reward).")
@click.option("--batch-size", default=8, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def demo(out_dir, model, batch_size, as_json):
    """Score real photos (bundled with scikit-image and matplotlib) with every reward that runs offline.

    Nothing is downloaded: the rewards used are those whose spec says `offline` (no weights, or
    weights bundled in an installed package). The results table is printed and written to
    OUT/scores.parquet and OUT/scores.csv.
    """
    import rewardbench

    from .cli.common import usage_exit
    from .outputs import check_writable
    from .preflight import UsageError

    try:
        check_writable(out_dir, "--out", folder=True)  # the rule of every command: a missing folder is refused
    except UsageError as e:
        usage_exit(str(e))
    manifest = write_demo_images(out_dir)
    names = [n for n in model.split(",")] if model else [s.name for s in rewardbench.list_rewards() if s.offline]
    has_group = any(rewardbench.get_spec(n).granularity == "group" for n in names)
    click.echo(f"scoring {len(DEMO_PHOTOS)} real photos from {manifest} with {len(names)} offline rewards: "
               + ", ".join(names))
    scorer = rewardbench.Scorer(names, batch_size=batch_size, device="cpu", num_workers=0)
    result = scorer.run(str(manifest), out=str(Path(out_dir) / "scores.parquet"),
                        group_by="prompt" if has_group else None, resume=False, overwrite=True)
    result.table.to_csv(Path(out_dir) / "scores.csv", index=False)
    click.echo(demo_tables(result))
    if result.groups is not None:
        result.groups.to_csv(Path(out_dir) / "groups.csv", index=False)
    click.echo("\nweights used:")
    for k, v in result.summary["rewards"].items():
        click.echo(f"  {k}: {v}")
    s = result.summary
    click.echo(f"{s['rows']} rows: {s['scored']} scored, {s['failed']} failed; results in "
               f"{Path(out_dir) / 'scores.parquet'} and {Path(out_dir) / 'scores.csv'}"
               + (f", groups in {Path(out_dir) / 'groups.csv'}" if result.groups is not None else ""))
    if as_json:
        click.echo(json.dumps(result.summary, default=str, indent=2))
    raise SystemExit(1 if result.n_failed else 0)
