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
            measured, small = g.get(f"{name}.group_people"), g.get(f"{name}.group_too_small")
            row[name] = "too small" if small is not None and not pd.isna(small) and bool(small) else \
                "no face" if measured == 0 else "-" if pd.isna(g[name]) else f"{g[name]:.4g}"
        row["note"] = g["note"]
        rows.append(row)
    parts.append(f"\ngroup rewards, one row per group ({','.join(result.group_by)}):")
    parts.append(render_table(rows, [*result.group_by, "size", *group_rewards, "note"]))
    return "\n".join(parts)


def offline_rewards() -> list[str]:
    """Every registered reward that needs no download (``spec.offline``)."""
    from .registry import REGISTRY

    return [s.name for s in REGISTRY.specs() if s.offline]


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
