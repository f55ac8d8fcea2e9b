"""rewards/ocr.py: Flow-GRPO's OCR formula against an independent implementation, the prompt's quoted target, and the
reward end to end with the real PP-OCRv4 models (bundled in rapidocr-onnxruntime, offline) on rendered text."""

from __future__ import annotations

import functools
import random

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import rewardbench
from rewardbench.rewards.ocr import join_texts, levenshtein, normalize, ocr_reward, quoted_target


# --- an independent reference: the recursive definition of the edit distance, memoised ---------------------------
def reference_distance(a: str, b: str) -> int:
    @functools.cache
    def d(i: int, j: int) -> int:  # distance between a[i:] and b[j:]
        if i == len(a) or j == len(b):
            return len(a) - i + len(b) - j
        return min(d(i + 1, j) + 1, d(i, j + 1) + 1, d(i + 1, j + 1) + (a[i] != b[j]))

    return d(0, 0)


def reference_reward(recognized: str, target: str) -> float:
    """Flow-GRPO's ocr.py in words: spaces out, lower case, 0 if contained, else the distance capped at the
    target's length; 1 - distance / length."""
    rec, tgt = recognized.replace(" ", "").lower(), target.replace(" ", "").lower()
    dist = 0 if tgt in rec else reference_distance(rec, tgt)
    return 1 - min(dist, len(tgt)) / len(tgt)


CASES = [  # (recognised, target, reward)
    ("Hello World", "Hello World", 1.0),
    ("HELLO WORLD", "hello world", 1.0),  # case
    ("HelloWorld", "Hello World", 1.0),  # spaces
    ("Welcome to the Bakery", "Bakery", 1.0),  # contained
    ("Hell World", "Hello World", 0.9),  # one of 10 characters missing
    ("Hxllo World", "Hello World", 0.9),  # one substituted
    ("", "coffee", 0.0),  # nothing read
    ("a long sign that says something else entirely", "STOP", 0.0),  # the distance is capped at the length
    ("Pizza & Pasta", "Pizza and Pasta", 1 - 3 / 13),
    ("Est.1987", "Est. 1987", 1.0),
    ("rewardbenhc", "rewardbench", 1 - 2 / 11),  # a transposition is two edits to Levenshtein
]


@pytest.mark.parametrize("recognized,target,expected", CASES)
def test_formula_on_hand_made_texts(recognized, target, expected):
    reward, distance = ocr_reward(recognized, target)
    assert reward == pytest.approx(expected, abs=1e-12)
    assert reward == pytest.approx(reference_reward(recognized, target), abs=1e-12)
    assert 0 <= distance <= len(normalize(target))


def test_levenshtein_matches_the_recursive_definition():
    rng = random.Random(26)
    for _ in range(300):
        a = "".join(rng.choice("abcAB 1") for _ in range(rng.randint(0, 12)))
        b = "".join(rng.choice("abcAB 1") for _ in range(rng.randint(0, 12)))
        assert levenshtein(a, b) == reference_distance(a, b) == levenshtein(b, a), (a, b)
        if normalize(b):
            assert ocr_reward(a, b)[0] == pytest.approx(reference_reward(a, b), abs=1e-12)


def test_lines_are_joined_with_nothing_between_and_zero_confidence_skipped():
    assert join_texts([("OPEN", 0.99), ("24 HOURS", 0.97)]) == "OPEN24 HOURS"
    assert join_texts([("OPEN", 0.0), ("CLOSED", 0.6)]) == "CLOSED"  # Flow-GRPO: res[1][1] > 0
    assert join_texts([]) == ""


def test_target_is_the_first_double_quoted_span():
    assert quoted_target('a sign that says "OPEN 24 HOURS"') == "OPEN 24 HOURS"
    assert quoted_target('a "first" and a "second" span') == "first"
    assert quoted_target('"Hello" at the start') == "Hello"
    assert quoted_target('a sign reading " spaced "') == " spaced "  # as written; the formula drops the spaces


@pytest.mark.parametrize("prompt,message", [
    ("a photo of a cat", "no double-quoted text"),
    ('a sign that says "OPEN', "one unclosed double quote"),
    ("a sign that says \u201cOPEN\u201d", "curly quotes are not read as quotes"),  # as in Flow-GRPO
    ("a sign that says 'OPEN'", "no double-quoted text"),  # single quotes are not quotes either
    ('an empty sign ""', "is empty"),
    ('a sign that says "   "', "is empty"),
])
def test_a_prompt_without_a_usable_quoted_span_is_refused(prompt, message):
    with pytest.raises(ValueError, match=message):
        quoted_target(prompt)


# --- the reward, with the real bundled models --------------------------------------------------------------------
def _font(size: int):
    from pathlib import Path

    import matplotlib
    from PIL import ImageFont

    return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"), size)


def render(text: str, size: int = 64, side: int = 512, fg=(20, 20, 20), bg=(245, 245, 240)) -> np.ndarray:
    """``text`` centred on a plain ``side`` x ``side`` image, RGB uint8."""
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (side, side), bg)
    draw = ImageDraw.Draw(im)
    font = _font(size)
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
    draw.text(((side - (x1 - x0)) // 2 - x0, (side - (y1 - y0)) // 2 - y0), text, font=font, fill=fg)
    return np.array(im)


@pytest.fixture(scope="module")
def reward():
    return rewardbench.load_reward("ocr")


def test_spec_bundles_its_weights_and_says_where_they_come_from(reward):
    spec = rewardbench.get_spec("ocr")
    assert spec.offline and spec.needs_prompt and spec.range == (0.0, 1.0) and spec.category == "composition"
    assert "Apache-2.0" in spec.license and "2505.05470" in spec.paper and "PP-OCR" in spec.paper
    assert set(spec.options) == {"text_score", "det_settings", "target"}  # checked before the reward is built
    assert spec.options["det_settings"].choices == ("paddleocr", "rapidocr")
    from rewardbench.weights import bundled_path

    assert [w.kind for w in spec.weights] == ["bundled", "bundled"]
    assert all(bundled_path(w).is_file() for w in spec.weights)
    assert [p.kind for p in reward.provenance()] == ["bundled", "bundled"]
    assert "ch_PP-OCRv4_rec_infer.onnx" in reward.weights_used
    with pytest.raises(ValueError, match="weights= is not supported"):
        rewardbench.load_reward("ocr", weights="/elsewhere/model.onnx")


def test_clear_text_scores_1_and_a_wrong_prompt_scores_lower(reward):
    images = [render("HELLO WORLD"), render("coffee", 80), render("OPEN 24 HOURS", 48)]
    x = torch.stack([torch.from_numpy(a).permute(2, 0, 1) for a in images])  # uint8, as the harness hands it over
    right = reward(x, ['a sign that says "Hello World"', 'a mug with "coffee" on it', 'a shop sign "open 24 hours"'])
    assert right.scores.tolist() == [1.0, 1.0, 1.0], right.details
    assert right.details["target"] == ["Hello World", "coffee", "open 24 hours"]
    assert [normalize(t) for t in right.details["recognized"]] == ["helloworld", "coffee", "open24hours"]
    assert right.details["distance"].tolist() == [0, 0, 0]
    wrong = reward(x, ['a sign that says "Goodbye Moon"', 'a mug with "coffin" on it', 'a shop sign "closed"'])
    assert (wrong.scores < 0.7).all(), wrong.details
    assert wrong.scores[1] == pytest.approx(ocr_reward(right.details["recognized"][1], "coffin")[0])
    # float pixels in [0, 1] are rounded back to the same bytes: the same reading
    floats = reward(x.float() / 255, ['a sign that says "Hello World"', 'a mug with "coffee" on it',
                                      'a shop sign "open 24 hours"'])
    assert floats.details["recognized"] == right.details["recognized"]


def test_no_text_scores_0_and_images_of_several_sizes_are_read_at_their_own(reward):
    blank = np.full((300, 200, 3), 250, np.uint8)
    out = reward([blank, render("STOP", 96, side=384)], ['a sign that says "STOP"'] * 2)
    assert out.scores.tolist() == [0.0, 1.0]
    assert out.details["recognized"][0] == "" and out.details["distance"].tolist() == [4, 0]


def test_a_prompt_without_quotes_fails_its_call_before_any_ocr(reward, monkeypatch):
    calls = []
    monkeypatch.setattr(reward.reader, "read_all", lambda images: calls.append(len(images)) or [[]] * len(images))
    with pytest.raises(ValueError, match="no double-quoted text in the prompt 'a photo of a cat'"):
        reward(torch.zeros(2, 3, 32, 32), ['a sign "OPEN"', "a photo of a cat"])
    assert calls == []


def test_target_option_scores_every_image_against_one_text():
    fixed = rewardbench.load_reward("ocr", target="STOP")
    out = fixed(torch.from_numpy(render("STOP", 96)).permute(2, 0, 1)[None], ["a photo of a cat"])
    assert out.scores.tolist() == [1.0] and out.details["target"] == ["STOP"]
    with pytest.raises(ValueError, match="target= is empty"):
        rewardbench.load_reward("ocr", target="  ")
    with pytest.raises(ValueError, match="det_settings"):
        rewardbench.load_reward("ocr", det_settings="tesseract")


def test_rewardbench_score_reads_rendered_text_offline(tmp_path):
    """The command line end to end with the real weights: clear text near 1, a wrong word lower, a prompt without
    quoted text its own row's error (exit 1), the other rows scored."""
    import pandas as pd
    from PIL import Image

    from rewardbench.cli.score import score

    rows = [("hello.png", render("Hello World"), 'a sign that says "Hello World"'),
            ("bakery.png", render("Fresh Bread", 56, bg=(250, 220, 90), fg=(200, 30, 30)),
             'a bakery sign reading "Fresh Bread"'),
            ("wrong.png", render("Library"), 'a sign that says "Laboratory"')]
    for name, arr, _ in rows:
        Image.fromarray(arr).save(tmp_path / name)
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame({"image": [str(tmp_path / n) for n, _, _ in rows], "prompt": [p for _, _, p in rows]}).to_csv(
        manifest, index=False)
    out = tmp_path / "scores.csv"
    res = CliRunner().invoke(score, ["--model", "ocr", "--images", str(manifest), "--out", str(out), "--no-progress",
                                     "--num-workers", "0"])
    assert res.exit_code == 0, res.output
    t = pd.read_csv(out)
    assert t["error"].isna().all()
    assert t["ocr"].tolist()[:2] == [1.0, 1.0]
    assert t["ocr"][2] < 0.7 and t["ocr.target"][2] == "Laboratory"
    assert ocr_reward(t["ocr.recognized"][2], "Laboratory")[0] == pytest.approx(t["ocr"][2], abs=1e-6)
    assert "bundled:rapidocr_onnxruntime" in res.output

    pd.DataFrame({"image": [str(tmp_path / "hello.png")] * 2, "prompt": ["a photo of a sign", rows[0][2]]}).to_csv(
        manifest, index=False)
    res = CliRunner().invoke(score, ["--model", "ocr", "--images", str(manifest), "--out", str(tmp_path / "b.csv"),
                                     "--no-progress", "--num-workers", "0"])
    assert res.exit_code == 1, res.output
    t = pd.read_csv(tmp_path / "b.csv")
    assert "no double-quoted text in the prompt 'a photo of a sign'" in t["error"][0]
    assert pd.isna(t["ocr"][0]) and t["ocr"][1] == 1.0 and pd.isna(t["error"][1])
