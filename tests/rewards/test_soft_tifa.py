"""rewards/soft_tifa.py and rewardbench/geneval2.py: GenEval 2's Soft-TIFA on a tiny random Qwen3-VL (offline).

Official reference: github.com/facebookresearch/GenEval2 @ a6e82d2 ``evaluation.py``: ``soft_tifa`` loops over a
prompt's ``vqa_list``; ``send_message_with_image('{} Answer in one word.'.format(question), image, answer_list)``
renders one user turn [image, text] with the chat template, calls ``generate(max_new_tokens=1, do_sample=False,
output_scores=True, return_dict_in_generate=True)``, takes ``softmax(outputs.scores[0])`` and sums
``probs[0, tokenizer.encode(answer)[0]]`` over ``answer_list``; ``main`` takes ``gmean`` or ``sum/len`` per prompt
and ``100 * mean`` over prompts.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from scipy.stats import gmean

import rewardbench
from rewardbench.geneval2 import GenEval2DataError, answer_forms, parse_geneval2, read_geneval2

from ..conftest import assert_gradient_step_raises
from .test_vlm import official_first_token_scores

DATA = Path(__file__).resolve().parents[1] / "data" / "geneval2_tiny.jsonl"


@pytest.fixture(scope="module")
def photos():
    from .test_clip import _photos

    return _photos((64, 96))[:3]


@pytest.fixture(scope="module")
def tifa():
    return rewardbench.load_reward("soft-tifa", pretrained=False, tiny=True, data=str(DATA))


def _official_prompt(tifa, image, item):
    """evaluation.py's soft_tifa on the same model and pixels: one generate per question, forms summed."""
    vl = tifa.vlm
    scores = []
    for question, answer in item.vqa:
        probs = torch.softmax(official_first_token_scores(tifa, image, question), dim=-1)
        scores.append(sum(probs[0, vl.tokenizer.encode(f, add_special_tokens=False).ids[0]].item()
                          for f in answer_forms(question, answer)))
    return scores


def test_batched_pairs_equal_the_official_loop(tifa, photos):
    prompts = ["two red cats", "a dog to the left of a bicycle", "ten wooden horses jumping over a fence"]
    with torch.no_grad():
        out = tifa(photos, prompts)
    items = [tifa.item(p) for p in prompts]
    for i, item in enumerate(items):
        ref = _official_prompt(tifa, photos[i], item)
        torch.testing.assert_close(torch.tensor(out.details["atom_scores"][i]), torch.tensor(ref), atol=1e-6,
                                   rtol=1e-5)
        assert out.details["soft_tifa_am"][i].item() == pytest.approx(sum(ref) / len(ref), rel=1e-5)
        assert out.details["soft_tifa_gm"][i].item() == pytest.approx(float(gmean(ref)), rel=1e-5)
    torch.testing.assert_close(out.scores, out.details["soft_tifa_gm"])
    assert out.details["atom_skills"][2] == ["count", "attribute", "object", "verb", "object"]
    assert out.details["atom_count"].tolist() == [3, 3, 5]


def test_question_text_and_chunking(tifa, photos):
    assert tifa.questions(["Is there a dog?"])[0].count("Is there a dog? Answer in one word.") == 1
    small = rewardbench.load_reward("soft-tifa", pretrained=False, tiny=True, data=str(DATA), max_batch=2,
                                    mean="am")
    prompts = ["ten wooden horses jumping over a fence", "two red cats"]
    with torch.no_grad():
        a, b = small(photos[:2], prompts), tifa(photos[:2], prompts)
    torch.testing.assert_close(a.scores, b.details["soft_tifa_am"], atol=1e-6, rtol=1e-5)
    assert not torch.allclose(a.scores, b.scores)  # AM and GM differ when the atoms do


def test_answer_forms_follow_the_official_lists():
    assert answer_forms("How many horses are in the image?", "ten") == ("ten", "Ten", " ten", " Ten", "10", " 10")
    assert answer_forms("Are the horses wooden?", "No") == ("Yes", "yes", " yes", " Yes")  # its answer is ignored
    assert answer_forms("How many?", "eleven")[-2:] == ("other", " other")


def test_forms_sharing_a_first_token_count_it_twice(photos):
    """On the tiny byte-level vocabulary ' yes' and ' Yes' both start with the space token: the official loop adds
    that token's probability once per form, and so do we."""
    r = rewardbench.load_reward("soft-tifa", pretrained=False, tiny=True, questions=[["Is it a cat?", "Yes"]])
    ids = r.form_ids("Is it a cat?", "Yes")
    assert len(ids) == 4 and ids[2] == ids[3] and len(set(ids)) == 3
    with torch.no_grad():
        got = r(photos[:1], ["x"]).details["atom_scores"][0][0]
        logits, _ = r.vlm.next_token_logits(photos[:1], r.questions(["Is it a cat?"]), r.budget)
    probs = torch.softmax(logits, -1)[0]
    assert got == pytest.approx(sum(probs[i].item() for i in ids), rel=1e-5)
    assert got > sum(probs[i].item() for i in set(ids))


def test_data_file_is_read_and_checked(tmp_path):
    items = read_geneval2(DATA)
    assert [it.atom_count for it in items] == [3, 3, 5] and items[1].vqa[1][0].startswith("Is the dog")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x", "atom_count": 1, "vqa_list": [["Q?", "Yes"]], "skills": []}\n')
    with pytest.raises(ValueError, match="line 1: 1 questions but 0 skills"):
        read_geneval2(bad)
    with pytest.raises(ValueError, match="line 1: not a GenEval 2 item"):
        parse_geneval2("{\"prompt\": 1}")
    with pytest.raises(GenEval2DataError, match="does not exist"):
        read_geneval2(tmp_path / "missing.jsonl")


def test_offline_url_fails_fast_and_once(photos):
    t0 = time.perf_counter()
    r = rewardbench.load_reward("soft-tifa", pretrained=False, tiny=True, data="http://127.0.0.1:9/geneval2.jsonl")
    for _ in range(3):  # the first failure is remembered: no second wait
        with pytest.raises(GenEval2DataError, match="--path geneval2=FILE"):
            r(photos[:1], ["two red cats"])
    assert time.perf_counter() - t0 < 15


def test_a_prompt_outside_the_data_is_refused(tifa, photos):
    with pytest.raises(ValueError, match="not a GenEval 2 prompt"):
        tifa(photos[:1], ["a photo of an astronaut"])


def test_a_gradient_step_on_the_pixels_raises_soft_tifa(tifa, photos):
    assert_gradient_step_raises(tifa, photos[:2], ["two red cats", "a dog to the left of a bicycle"])


def test_processor_resize_is_transformers_fast_processor():
    """``processor_resize=True``: the pixels transformers' torchvision-backed Qwen2-VL image processor (the class
    Qwen3-VL-8B-Instruct's preprocessor_config.json names) gives for a uint8 image, at Qwen3-VL's constants."""
    import numpy as np
    import transformers

    cls = getattr(transformers, "Qwen2VLImageProcessorFast", None) or transformers.Qwen2VLImageProcessor
    r = rewardbench.load_reward("soft-tifa", pretrained=False, tiny=True, data=str(DATA), processor_resize=True)
    lo, hi = r.budget.min_pixels, r.budget.max_pixels
    proc = cls(patch_size=16, merge_size=2, temporal_patch_size=2, image_mean=[0.5] * 3, image_std=[0.5] * 3,
               size={"shortest_edge": lo, "longest_edge": hi})
    assert "Torchvision" in "".join(c.__name__ for c in type(proc).__mro__) or cls.__name__.endswith("Fast")
    rng = np.random.default_rng(0)
    for h, w in ((150, 200), (61, 97)):
        a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        ref = proc(images=[torch.from_numpy(a).permute(2, 0, 1)], return_tensors="pt")
        x = torch.from_numpy(a).permute(2, 0, 1).float()[None] / 255
        pv, grid = r.vlm.preprocess(x, r.budget, pil=r.pil_preprocess)
        assert grid.tolist() == ref["image_grid_thw"].tolist()
        torch.testing.assert_close(pv, ref["pixel_values"], atol=2e-6, rtol=0)
    with pytest.raises(ValueError, match="choose one"):
        rewardbench.load_reward("soft-tifa", pretrained=False, tiny=True, processor_resize=True, pil_preprocess=True)


@pytest.mark.parametrize("penalty", [1.0, 1.05])
def test_each_image_is_read_once_with_the_same_numbers(photos, penalty):
    """share_image (default): the vision tower and the decoder see each image once, its questions run on copies of
    its KV cache; the probabilities equal one full sequence per (image, question), repetition penalty included."""
    prompts = ["ten wooden horses jumping over a fence", "two red cats", "a dog to the left of a bicycle"]
    shared, full = (rewardbench.load_reward("soft-tifa", pretrained=False, tiny=True, data=str(DATA), max_batch=4,
                                            share_image=share, repetition_penalty=penalty) for share in (True, False))
    seen = {}
    for name, r in (("shared", shared), ("full", full)):
        seen[name] = []
        hook = r.vlm.visual.register_forward_pre_hook(
            lambda mod, args, kwargs, n=name: seen[n].append(int((kwargs["grid_thw"] if "grid_thw" in kwargs
                                                                   else args[1]).shape[0])),
            with_kwargs=True)
        with torch.no_grad():
            out = r(photos, prompts)
        hook.remove()
        seen[name + "_out"] = out
    assert sum(seen["shared"]) == 3 and sum(seen["full"]) == 11  # 3 images; 5 + 3 + 3 questions
    a, b = seen["shared_out"].details["atom_scores"], seen["full_out"].details["atom_scores"]
    torch.testing.assert_close(torch.tensor(sum(a, [])), torch.tensor(sum(b, [])), atol=1e-6, rtol=1e-5)
