"""rewards/unifiedreward.py: UnifiedReward's pointwise score as Flow-GRPO uses it, on a tiny random Qwen2.5-VL.

Official reference: github.com/yifan123/flow_grpo @ ac4c86e, ``flow_grpo/rewards.py`` ``unifiedreward_score_sglang``
(the question, ``_extract_scores``, the 512 x 512 PIL resize, ``score / 5.0``).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

import rewardbench
from rewardbench.rewards.unifiedreward import flow_grpo_pixels, parse_final_score
from rewardbench.weights import WeightsNotFoundError

from .test_vlm import render_official

PROMPTS = ["a cat", "two dogs on the left of a red car", "a cup of coffee"]


def flow_grpo_question(prompt: str) -> str:
    """flow_grpo/rewards.py evaluate_image's f-string, re-typed."""
    return ("<image>\nYou are given a text caption and a generated image based on that caption. Your task is to "
            "evaluate this image based on two key criteria:\n1. Alignment with the Caption: Assess how well this "
            "image aligns with the provided caption. Consider the accuracy of depicted objects, their relationships, "
            "and attributes as described in the caption.\n2. Overall Image Quality: Examine the visual quality of "
            "this image, including clarity, detail preservation, color accuracy, and overall aesthetic appeal.\n"
            "Based on the above criteria, assign a score from 1 to 5 after 'Final Score:'.\nYour task is provided as "
            f"follows:\nText Caption: [{prompt}]")


@pytest.fixture(scope="module")
def ur():
    return rewardbench.load_reward("unifiedreward", pretrained=False, tiny=True)


@pytest.fixture(scope="module")
def photos():
    from .test_clip import _photos

    return _photos((64, 80))[:3]


def test_question_is_flow_grpo_question_in_the_chat_template(ur):
    for p in PROMPTS + ["a {curly} sign"]:
        question = flow_grpo_question(p).removeprefix("<image>\n")  # LLaVA's placeholder: the image item here
        assert ur.questions([p]) == [render_official("qwen2_5_vl", question)]


@pytest.mark.parametrize("text, value", [
    ("The image matches the caption.\nFinal Score: 4", 4.0),
    ("Final Score:3.5", 3.5),
    ("Final Score: 4.25 (good)", 4.25),
    ("Final Score: 2\nFinal Score: 5", 2.0),  # the first one, as re.search finds it
    ("Final Score: 10", 1.0),  # Flow-GRPO's pattern reads the 1 of a 10
    ("Final Score: 0", None),
    ("Final Score: 6", None),
    ("final score: 4", None),
    ("Score: 4", None),
    ("", None),
])
def test_parse_final_score_is_flow_grpos_pattern(text, value):
    assert parse_final_score(text) == value


def test_score_is_the_parsed_value_over_five_and_zero_when_none(ur, photos, monkeypatch):
    answers = ["Alignment: good.\nFinal Score: 4", "I cannot tell.", "Final Score: 3.5"]
    monkeypatch.setattr(ur.vlm, "generate", lambda pixels, prompts, budget, **kw: answers)
    out = ur(photos, PROMPTS)
    torch.testing.assert_close(out.scores, torch.tensor([0.8, 0.0, 0.7]))
    torch.testing.assert_close(out.details["final_score"], torch.tensor([4.0, 0.0, 3.5]))
    assert out.details["parsed"] == [True, False, True] and out.details["text"] == answers


def test_batched_generation_equals_one_by_one(ur, photos):
    out = ur(photos, PROMPTS)
    assert out.details["text"] == [ur(photos[i:i + 1], PROMPTS[i:i + 1]).details["text"][0] for i in range(3)]
    assert all(len(t) > 0 for t in out.details["text"])


def test_pixels_go_through_flow_grpos_uint8_and_pil_resize(photos):
    from PIL import Image

    got = flow_grpo_pixels(photos, 512)
    arr = (photos[1] * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    ref = np.asarray(Image.fromarray(arr).resize((512, 512)))
    assert got.shape == (3, 3, 512, 512)
    assert torch.equal((got[1] * 255).round().to(torch.uint8).permute(1, 2, 0), torch.from_numpy(ref.copy()))


def test_a_checkpoint_folder_loads(tmp_path, ur, photos):
    ur.vlm.model.save_pretrained(tmp_path)
    ur.vlm.tokenizer.save(str(tmp_path / "tokenizer.json"))
    dst = rewardbench.load_reward("unifiedreward", pretrained=False, tiny=True, model="2.0-qwen-7b")
    assert dst(photos[:1], PROMPTS[:1]).details["text"] != ur(photos[:1], PROMPTS[:1]).details["text"]
    dst.load_pretrained(tmp_path)
    assert dst(photos, PROMPTS).details["text"] == ur(photos, PROMPTS).details["text"]


def test_missing_unifiedreward_weights_fail_fast_offline(unreachable):
    t0 = time.perf_counter()
    with pytest.raises(WeightsNotFoundError, match="CodeGoat24/UnifiedReward-qwen-7b.*the hub is unreachable"):
        rewardbench.load_reward("unifiedreward")
    with pytest.raises(WeightsNotFoundError, match="CodeGoat24/UnifiedReward-2.0-qwen3vl-8b"):
        rewardbench.load_reward("unifiedreward", model="2.0-qwen3vl-8b")
    assert time.perf_counter() - t0 < 30 and unreachable == []
