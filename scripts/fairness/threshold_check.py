"""Are the default face detector's thresholds fitted to the images they were measured on? Leave one generator out.

The ``agreement`` detector's two thresholds (CenterFace sure at 0.65, confirming BlazeFace at 0.2) are the pair this
rule chooses on all 300 labelled images ``measure_fairness.py`` reports on: from a grid of sure x confirm thresholds,
the pair with the highest recall among those with at most 2% false positives (ties: fewer false positives, better
counts, then the stricter pair). Here the rule chooses on the images of two of the three generators (SD 1.4, 1.5,
2.1) and the pair is measured on the third, which took no part in the choice: each held-out row is an estimate for
a generator the thresholds never saw; the default's own numbers per generator are listed beside them.

    python scripts/fairness/threshold_check.py          # -> results/thresholds.{csv,md}
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Sequence
from pathlib import Path

from measure_fairness import CALIBRATION, GOALS, RESULTS, _md_table, _write, face_metrics, load_calibration

from rewardbench.rewards.parts import (
    AgreementFaceDetector,
    BlazeFaceDetector,
    agree,
    centerface_detect,
    centerface_face,
)

SURE = (0.5, 0.55, 0.6, 0.65, 0.7, 0.8)
CONFIRM = (0.2, 0.25, 0.3, 0.35, 0.4, 0.5)
DEFAULT = (0.65, 0.2)  # what `choose` picks on all three generators (tested)


def candidates(items) -> list[tuple[list, list]]:
    """Per image: BlazeFace + FaceMesh faces and CenterFace faces down to the grid's lowest threshold."""
    blaze = BlazeFaceDetector(min_size=1)
    return [(blaze.detect([it.image])[0], [centerface_face(d) for d in centerface_detect(it.image, min(CONFIRM))])
            for it in items]


def counts(found, sure: float, confirm: float) -> list[int]:
    finish = AgreementFaceDetector(sure_score=sure, confirm_score=confirm).finish  # the rewards' 16 px minimum
    return [len(finish(agree(b, c, sure, confirm))) for b, c in found]


def choose(items, found) -> tuple[float, float]:
    """The grid pair with the best recall at <= 2% false positives on ``items`` (ties: see the module docstring)."""
    def key(pair):
        m = face_metrics(items, counts(found, *pair))
        return (m["fp_rate"] <= GOALS["fp_rate"], m["recall_images"], -m["fp_images"], m["count_ok"], pair)
    return max((p for p in itertools.product(SURE, CONFIRM) if p[1] <= p[0]), key=key)


def check(items, found) -> list[dict]:
    gens = sorted({it.source for it in items})
    rows = []
    for g in gens:
        train = [i for i, it in enumerate(items) if it.source != g]
        test = [i for i, it in enumerate(items) if it.source == g]
        pair = choose([items[i] for i in train], [found[i] for i in train])
        for label, p in (("chosen without it", pair), ("default", DEFAULT)):
            m = face_metrics([items[i] for i in test], counts([found[i] for i in test], *p))
            rows.append({"held_out": g.split("/")[-1], "thresholds": label, "sure": p[0], "confirm": p[1],
                         **{k: m[k] for k in ("fp_images", "negatives", "recall_images", "positives", "count_ok",
                                              "count_images")}})
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=CALIBRATION)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    items = [it for it in load_calibration(args.data) if it.negative or it.human_faces >= 1]
    rows = check(items, candidates(items))
    total = {k: sum(r[k] for r in rows if r["thresholds"] == "chosen without it")
             for k in ("fp_images", "negatives", "recall_images", "positives", "count_ok", "count_images")}
    md = ["# The agreement detector's thresholds, chosen without the generator they are measured on", "",
          __doc__.split("\n\n")[1].replace("\n", " "), "",
          f"Grid: sure {', '.join(map(str, SURE))}; confirm {', '.join(map(str, CONFIRM))} (confirm <= sure).", "",
          _md_table(rows), "",
          f"All three held-out generators together, thresholds chosen without each: false positives "
          f"{total['fp_images']}/{total['negatives']}, recall {total['recall_images']}/{total['positives']}, "
          f"counts within one {total['count_ok']}/{total['count_images']}.", ""]
    _write("thresholds", rows, "\n".join(md), args.out)
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
