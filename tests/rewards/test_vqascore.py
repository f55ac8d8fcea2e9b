"""rewards/vqascore.py: VQAScore's Qwen2.5-VL and Qwen3-VL backends on tiny random models (offline).

Official reference: github.com/linzhiqiu/t2v_metrics @ 6ecb74f, ``t2v_metrics/models/vqascore_models/
qwen2vl_model.py`` and ``qwen3vl_model.py``: ``forward`` loops over the items one by one, renders
``[{"role": "user", "content": [image, {"type": "text", "text": question}]}]`` with the chat template, calls
``model.generate(**inputs, max_new_tokens=1, temperature=1.0, do_sample=False, output_scores=True,
return_dict_in_generate=True)`` and takes ``softmax(outputs.scores[-1][0] / temperature)[answer_token_ids[0]]``.
"""

from __future__ import annotations

import json
import time

import pytest
import torch

import rewardbench
from rewardbench.rewards import _vlm
from rewardbench.weights import WeightsNotFoundError

from ..conftest import assert_gradient_step_raises
from .test_vlm import official_first_token_scores, render_official

NAMES = {"qwen2_5_vl": "vqascore-qwen2.5-vl", "qwen3_vl": "vqascore-qwen3-vl"}
PROMPTS = ["a cat", "two dogs on the left of a red car", "a cup of coffee on a wooden table"]


@pytest.fixture(scope="module")
def photos():
    from .test_clip import _photos

    return _photos((64, 96))[:3]


@pytest.fixture(scope="module", params=sorted(NAMES))
def vqa(request):
    return rewardbench.load_reward(NAMES[request.param], pretrained=False, tiny=True)


def test_question_is_t2v_metrics_template_in_the_chat_template(vqa):
    for p in PROMPTS:
        question = f'Does this figure show "{p}"? Please answer Yes or No.'
        assert vqa.questions([p]) == [render_official(vqa.family, question)]


def _t2v_metrics_one(vqa, image, prompt, penalty):
    """t2v_metrics' per-item computation on the same model and pixels: generate one token with scores."""
    logits = official_first_token_scores(vqa, image, prompt, temperature=1.0, repetition_penalty=penalty)
    answer_ids = vqa.vlm.tokenizer.encode("Yes", add_special_tokens=False).ids
    return torch.softmax(logits[0] / 1.0, dim=-1)[answer_ids[0]]


@pytest.mark.parametrize("penalty", [1.0, 1.05])
def test_one_batched_forward_equals_t2v_metrics_per_item(vqa, photos, penalty):
    vqa.repetition_penalty = penalty
    try:
        with torch.no_grad():
            batch = vqa(photos, PROMPTS).scores
        ref = torch.stack([_t2v_metrics_one(vqa, photos[i], PROMPTS[i], penalty) for i in range(3)])
    finally:
        vqa.repetition_penalty = None
    torch.testing.assert_close(batch, ref, atol=1e-6, rtol=1e-5)


def test_the_answer_is_one_token_and_its_first_token_counts(vqa, photos):
    assert len(vqa.vlm.tokenizer.encode("Yes", add_special_tokens=False).ids) == 1
    r = rewardbench.load_reward(NAMES[vqa.family], pretrained=False, tiny=True, answer_template="Yes indeed")
    with torch.no_grad():
        torch.testing.assert_close(r(photos, PROMPTS).scores, vqa(photos, PROMPTS).scores)


def test_budget_is_qwen_vl_utils_default():
    from rewardbench.rewards.vqascore import t2v_metrics_budget

    assert t2v_metrics_budget("qwen2_5_vl") == _vlm.PixelBudget(4 * 28 * 28, 16384 * 28 * 28)
    assert t2v_metrics_budget("qwen3_vl") == _vlm.PixelBudget(4 * 32 * 32, 16384 * 32 * 32)
    # a 1024 x 1024 image: 1036 x 1036 for Qwen2.5-VL (factor 28), unchanged for Qwen3-VL (factor 32)
    assert _vlm.smart_resize(1024, 1024, 28, 3136, 16384 * 28 * 28) == (1036, 1036)
    assert _vlm.smart_resize(1024, 1024, 32, 4096, 16384 * 32 * 32) == (1024, 1024)


def test_a_checkpoint_folder_loads_with_its_generation_config(tmp_path, vqa, photos):
    """A hub-snapshot-like folder (config.json, safetensors, tokenizer.json, generation_config.json) loads through
    transformers' from_pretrained; the generation config's repetition penalty applies."""
    src = vqa.vlm
    src.model.save_pretrained(tmp_path)
    src.tokenizer.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "generation_config.json").write_text(json.dumps({"repetition_penalty": 1.05}))
    dst = rewardbench.load_reward(NAMES[vqa.family], pretrained=False, tiny=True)
    prov = dst.load_pretrained(tmp_path)
    assert dst.penalty == 1.05 and prov[0].kind == "file"
    vqa.repetition_penalty = 1.05
    try:
        with torch.no_grad():
            torch.testing.assert_close(dst(photos, PROMPTS).scores, vqa(photos, PROMPTS).scores)
    finally:
        vqa.repetition_penalty = None


def test_missing_vqascore_weights_fail_fast_offline(unreachable):
    t0 = time.perf_counter()
    with pytest.raises(WeightsNotFoundError, match="Qwen/Qwen2.5-VL-7B-Instruct.*the hub is unreachable"):
        rewardbench.load_reward("vqascore-qwen2.5-vl")
    with pytest.raises(WeightsNotFoundError, match="Qwen/Qwen3-VL-4B-Instruct"):
        rewardbench.load_reward("vqascore-qwen3-vl", model="qwen3-vl-4b")
    assert time.perf_counter() - t0 < 30 and unreachable == []


def test_unknown_backend_is_refused():
    from rewardbench.errors import UsageError

    with pytest.raises((UsageError, ValueError), match="qwen2.5-vl-7b"):
        rewardbench.load_reward("vqascore-qwen2.5-vl", pretrained=False, tiny=True, model="qwen3-vl-8b")


def test_a_gradient_step_on_the_pixels_raises_vqascore(vqa, photos):
    assert_gradient_step_raises(vqa, photos, PROMPTS)


def test_pil_preprocess_resizes_as_qwen_vl_utils(vqa, photos):
    r = rewardbench.load_reward(NAMES[vqa.family], pretrained=False, tiny=True, pil_preprocess=True)
    with torch.no_grad():
        a, b = r(photos, PROMPTS).scores, vqa(photos, PROMPTS).scores
    assert torch.isfinite(a).all() and not torch.equal(a, b) and (a - b).abs().max() < 0.05
