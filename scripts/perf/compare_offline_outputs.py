"""The offline judges give the same answers as an older checkout: every output compared on the calibration images.

    python scripts/perf/compare_offline_outputs.py --before /tmp/offline_before \
        --out scripts/perf/results/offline_outputs.md

Runs, once with this code and once with the older checkout (imported by a subprocess as ``bench_offline.py`` does):
  1. the 13 offline rewards through `rewardbench.Scorer` on all 300 images of ``../shared/data/faces-calibration``
     grouped by prompt (3 images a group), and compares every score and detail column the older table has (columns
     new in this code are listed, not compared);
  2. the people pipeline with every need (faces, gender, parts, open_nsfw) on the same images, 16 at a time,
     and compares every field of every `People` (faces with boxes, scores, keypoints, skin colour, P(female),
     profile and black-and-white flags; NudeNet's parts; open_nsfw), exactly, reporting each field that differs with
     its largest difference.
Writes a markdown report. Exits 1 when a reward column differs.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import pickle
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_offline  # noqa: E402


def dump(out: Path, checkout: str | None, data: Path) -> None:
    """Score and run the pipeline with one checkout; pickle what they give."""
    if checkout:
        bench_offline._use_checkout(Path(checkout))
    import numpy as np
    from PIL import Image

    import rewardbench
    from rewardbench.rewards.parts import PeoplePipeline

    with (data / "labels.csv").open(newline="") as f:
        labels = list(csv.DictReader(f))
    rows = [{"image": str(data / r["image"]), "prompt": r["prompt"], "model": r["model"]} for r in labels]
    table = rewardbench.Scorer(bench_offline.OFFLINE, batch_size=16, num_workers=2, progress=False).run(
        rows, group_by="prompt").table
    pipe = PeoplePipeline().require({"faces", "gender", "parts", "open_nsfw"})  # every need (older code: no NEEDS)
    people = []
    for k in range(0, len(rows), 16):
        images = [np.asarray(Image.open(r["image"]).convert("RGB")) for r in rows[k:k + 16]]
        people += [dataclasses.asdict(p) for p in pipe.run(images)]
    out.write_bytes(pickle.dumps({"code": str(Path(rewardbench.__file__).resolve().parents[1]), "table": table,
                                  "people": people}))


def _same(x, y) -> bool:
    if x is None or y is None:
        return x is None and y is None
    if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
        return True
    return x == y


def compare_tables(old, new) -> tuple[list[str], dict[str, int], list[str]]:
    old = old.sort_values("image").reset_index(drop=True)
    new = new.sort_values("image").reset_index(drop=True)
    differing = {c: sum(not _same(a, b) for a, b in zip(old[c], new[c])) for c in old.columns if c in new.columns}
    return [c for c in old.columns if c in new.columns], {c: n for c, n in differing.items() if n}, \
        [c for c in new.columns if c not in old.columns]


def compare_people(old: list, new: list) -> dict[str, list[float]]:
    """field path (indices removed) -> [how many values differ, largest absolute difference]."""
    out: dict[str, list[float]] = {}

    def walk(x, y, path):
        if isinstance(x, dict):
            for k in set(x) | set(y):
                walk(x.get(k), y.get(k), f"{path}.{k}")
        elif isinstance(x, (list, tuple)) or getattr(x, "ndim", 0) > 0:
            x, y = list(x), list(y) if y is not None else []
            if len(x) != len(y):
                out.setdefault(f"{path} (count)", [0, 0.0])[0] += 1
                return
            for a, b in zip(x, y):
                walk(a, b, f"{path}[]")
        elif not _same(x, y):
            rec = out.setdefault(re.sub(r"^\.", "", path), [0, 0.0])
            rec[0] += 1
            if isinstance(x, (int, float)) and isinstance(y, (int, float)):
                rec[1] = max(rec[1], abs(float(x) - float(y)))

    for a, b in zip(old, new):
        walk(a, b, "")
    return out


def render(before: dict, after: dict) -> tuple[str, bool]:
    cols, differing, added = compare_tables(before["table"], after["table"])
    people = compare_people(before["people"], after["people"])
    faces = sum(len(p["faces"]) for p in after["people"])
    lines = [f"Before: `{before['code']}`; after: `{after['code']}`.", "",
             f"1. The 13 offline rewards on {len(after['table'])} calibration images, grouped by prompt: "
             f"{len(cols)} columns compared, {len(differing)} differ"
             + (": " + ", ".join(f"{c} ({n} rows)" for c, n in differing.items()) if differing else "") + "."
             + (f" Columns new in this code, not compared: {', '.join(added)}." if added else ""),
             f"2. The people pipeline with every need on the same {len(after['people'])} images ({faces} faces): "
             + ("every field identical." if not people else "fields that differ:"), ""]
    if people:
        lines += ["| field | values that differ | largest difference |", "| --- | --- | --- |"]
        lines += [f"| `{k}` | {int(n)} | {d:.3g} |" for k, (n, d) in sorted(people.items())]
    return "\n".join(lines) + "\n", not differing


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", required=False, help="a checkout of the older commit")
    ap.add_argument("--data", type=Path, default=bench_offline.DATA)
    ap.add_argument("--out", type=Path, default=None, help="the markdown report (default: print it)")
    ap.add_argument("--dump", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--checkout", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.dump:
        dump(args.dump, args.checkout, args.data)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        got = {}
        for name, checkout in (("before", args.before), ("after", None)):
            path = Path(tmp) / f"{name}.pkl"
            cmd = [sys.executable, __file__, "--dump", str(path), "--data", str(args.data)]
            subprocess.run(cmd + (["--checkout", checkout] if checkout else []), check=True, cwd="/")
            got[name] = pickle.loads(path.read_bytes())
    text, same = render(got["before"], got["after"])
    command = "python scripts/perf/compare_offline_outputs.py " + " ".join(sys.argv[1:] if argv is None else argv)
    text = f"Command: `{command}`\n\n{text}"
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
