"""rewards/_vlm.py: the Qwen-VL core of the vision-language judges, on tiny random models (offline).

The official references re-typed here: the chat templates of Qwen2-VL-7B-Instruct / Qwen2.5-VL-7B-Instruct
(``chat_template.json``, identical in both) and Qwen3-VL-8B-Instruct (``chat_template.json``), rendered with jinja2
as transformers renders them; transformers' own image processor, ``smart_resize``, ``get_rope_index``, native
forward and repetition-penalty processor are called directly.
"""

from __future__ import annotations

import inspect

import pytest
import torch

from rewardbench.rewards import _vlm

FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")
BUDGET = _vlm.PixelBudget(4 * 28 * 28, 16 * 28 * 28)
TEXTS = ["a cat", "two dogs on the left of a red car, in the rain, photographed from far away", "x"]

# huggingface.co/Qwen/Qwen2-VL-7B-Instruct chat_template.json (Qwen/Qwen2.5-VL-7B-Instruct has the same)
QWEN2_VL_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in "
    "content or 'image_url' in content %}{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}"
    "Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] "
    "== 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}"
    "Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content "
    "%}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "<|im_start|>assistant\n{% endif %}"
)
# huggingface.co/Qwen/Qwen3-VL-8B-Instruct chat_template.json: the parts a one-turn [image, text] user message
# without tools or a system message passes through (render_content, the message loop, the generation prompt)
QWEN3_VL_TEMPLATE = """{%- set image_count = namespace(value=0) %}
{%- set video_count = namespace(value=0) %}
{%- macro render_content(content, do_vision_count) %}
    {%- if content is string %}
        {{- content }}
    {%- else %}
        {%- for item in content %}
            {%- if 'image' in item or 'image_url' in item or item.type == 'image' %}
                {%- if do_vision_count %}
                    {%- set image_count.value = image_count.value + 1 %}
                {%- endif %}
                {%- if add_vision_id %}Picture {{ image_count.value }}: {% endif -%}
                <|vision_start|><|image_pad|><|vision_end|>
            {%- elif 'video' in item or item.type == 'video' %}
                {%- if do_vision_count %}
                    {%- set video_count.value = video_count.value + 1 %}
                {%- endif %}
                {%- if add_vision_id %}Video {{ video_count.value }}: {% endif -%}
                <|vision_start|><|video_pad|><|vision_end|>
            {%- elif 'text' in item %}
                {{- item.text }}
            {%- endif %}
        {%- endfor %}
    {%- endif %}
{%- endmacro %}
{%- if messages[0].role == 'system' %}
    {{- '<|im_start|>system\\n' + render_content(messages[0].content, false) + '<|im_end|>\\n' }}
{%- endif %}
{%- for message in messages %}
    {%- set content = render_content(message.content, True) %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>' + '\\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""
TEMPLATES = {"qwen2_vl": QWEN2_VL_TEMPLATE, "qwen2_5_vl": QWEN2_VL_TEMPLATE, "qwen3_vl": QWEN3_VL_TEMPLATE}


def render_official(family: str, text: str) -> str:
    """What ``processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)`` renders for one
    user turn [image, text] (transformers renders with a sandboxed jinja2, trim_blocks and lstrip_blocks)."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    messages = [{"role": "user", "content": [{"type": "image", "image": "x.png"}, {"type": "text", "text": text}]}]
    return env.from_string(TEMPLATES[family]).render(messages=messages, add_generation_prompt=True)


def official_first_token_scores(judge, image: torch.Tensor, text: str, **generate) -> torch.Tensor:
    """The official judges' per-item computation (t2v_metrics, GenEval 2's evaluation.py) on ``judge``'s model and
    pixels: one question, HF ``generate`` of one token with its scores; the logits of that token ``(1, vocab)``.
    ``generate``: the official call's other arguments (temperature, repetition penalty)."""
    vl = judge.vlm
    pv, grid = vl.preprocess(image[None], judge.budget)
    ids, mask = vl.sequences(judge.questions([text]), grid)
    kw = {}
    if "mm_token_type_ids" in inspect.signature(vl.model.forward).parameters:
        kw["mm_token_type_ids"] = (ids == vl.image_token_id).int()
    vl.model.model.rope_deltas = None
    with torch.inference_mode():
        out = vl.model.generate(input_ids=ids, attention_mask=mask, pixel_values=pv, image_grid_thw=grid,
                                max_new_tokens=1, do_sample=False, output_scores=True, return_dict_in_generate=True,
                                pad_token_id=vl.pad_id, **generate, **kw)
    return out.scores[-1].float()


@pytest.fixture(scope="module")
def models():
    return {f: _vlm.build_qwen_vl(f, tiny=True, seed_id=f"test+{f}") for f in FAMILIES}


@pytest.fixture(scope="module")
def pixels():
    from .test_clip import _photos

    return _photos((80, 112))[:3]


@pytest.mark.parametrize("family", FAMILIES)
def test_chat_text_is_the_models_chat_template(family):
    for text in TEXTS + ['Does this figure show "a cat"? Please answer Yes or No.', "line one\nline two  "]:
        assert _vlm.chat_text(family, text) == render_official(family, text)


@pytest.mark.parametrize("size", [(512, 512), (1024, 768), (300, 451), (60, 2000), (28, 28)])
def test_smart_resize_is_transformers(size):
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    for factor, lo, hi in ((28, 256 * 28 * 28, 256 * 28 * 28), (28, 4 * 28 * 28, 16384 * 28 * 28),
                           (32, 4 * 32 * 32, 16384 * 32 * 32), (28, 3136, 12845056)):
        assert _vlm.smart_resize(*size, factor, lo, hi) == tuple(smart_resize(*size, factor, lo, hi))


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen3_vl"])
def test_preprocess_is_the_image_processor(family, models, pixels):
    """Our torch preprocessing on an image already at its budget's size equals transformers' Qwen2-VL image
    processor (normalise, repeat the frame, patch layout) with the family's constants."""
    from transformers import Qwen2VLImageProcessor

    vl = models[family]
    fam = vl.family
    from .test_clip import _photos

    side = fam.factor * 3
    x = _photos((side, side))[:2]
    budget = _vlm.PixelBudget(side * side, side * side)
    proc = Qwen2VLImageProcessor(patch_size=fam.patch_size, merge_size=fam.merge_size, image_mean=list(fam.mean),
                                 image_std=list(fam.std), do_resize=False, do_rescale=False)
    ref = proc(images=list(x), return_tensors="pt")
    pv, grid = vl.preprocess(x, budget)
    assert torch.equal(grid, ref["image_grid_thw"])
    torch.testing.assert_close(pv, ref["pixel_values"].float(), atol=1e-5, rtol=1e-5)


def _rope_index(vl, ids, mask, grid):
    fn = vl.model.model.get_rope_index
    kw = dict(image_grid_thw=grid, attention_mask=mask)
    if "mm_token_type_ids" in inspect.signature(fn).parameters:  # transformers >= 5
        kw["mm_token_type_ids"] = (ids == vl.image_token_id).int()
    return fn(ids, **kw)[0]


@pytest.mark.parametrize("family", FAMILIES)
def test_positions_are_transformers_rope_index_under_left_padding(family, models, pixels):
    vl = models[family]
    _, grid = vl.preprocess(pixels, BUDGET)
    ids, mask = vl.sequences([_vlm.chat_text(family, t) for t in TEXTS], grid)
    assert (mask[:, 0] == 0).any() and (mask[:, -1] == 1).all()  # left-padded
    real = mask.bool()[None].expand(3, -1, -1)  # padding's positions are never read (4.57 gives it 1, 5.x 0)
    assert torch.equal(vl.positions(ids, mask, grid, "mrope")[real], _rope_index(vl, ids, mask, grid)[real])
    seq = vl.positions(ids, mask, grid, "sequential")
    for i in range(len(TEXTS)):
        n = int(mask[i].sum())
        assert seq[:, i, -n:].tolist() == [list(range(n))] * 3


@pytest.mark.parametrize("family", FAMILIES)
def test_one_forward_equals_the_models_own_forward(family, models, pixels):
    """An unpadded item: our logits after the prompt equal ``ForConditionalGeneration.forward`` computing its own
    positions, as the official packages call it."""
    vl = models[family]
    prompt = _vlm.chat_text(family, TEXTS[0])
    with torch.no_grad():
        ours, _ = vl.next_token_logits(pixels[:1], [prompt], BUDGET)
        pv, grid = vl.preprocess(pixels[:1], BUDGET)
        ids, mask = vl.sequences([prompt], grid)
        kw = {}
        if "mm_token_type_ids" in inspect.signature(vl.model.forward).parameters:
            kw["mm_token_type_ids"] = (ids == vl.image_token_id).int()
        vl.model.model.rope_deltas = None
        ref = vl.model(input_ids=ids, attention_mask=mask, pixel_values=pv, image_grid_thw=grid, **kw).logits[:, -1]
    torch.testing.assert_close(ours, ref.float(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_item_in_a_left_padded_batch_equals_item_alone(family, models, pixels):
    vl = models[family]
    prompts = [_vlm.chat_text(family, t) for t in TEXTS]
    with torch.no_grad():
        for kind in ("mrope", "sequential"):
            batch, _ = vl.next_token_logits(pixels, prompts, BUDGET, positions=kind)
            for i in range(len(prompts)):
                alone, _ = vl.next_token_logits(pixels[i:i + 1], prompts[i:i + 1], BUDGET, positions=kind)
                torch.testing.assert_close(batch[i:i + 1], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl"])
def test_batched_greedy_generation_equals_one_by_one_and_transformers_generate(family, models, pixels):
    vl = models[family]
    prompts = [_vlm.chat_text(family, t) for t in TEXTS]
    batch = vl.generate(pixels, prompts, BUDGET, max_new_tokens=6)
    alone = [vl.generate(pixels[i:i + 1], prompts[i:i + 1], BUDGET, max_new_tokens=6)[0] for i in range(3)]
    assert batch == alone
    # transformers' own greedy generate on one unpadded item gives the same tokens
    from transformers import GenerationConfig

    pv, grid = vl.preprocess(pixels[:1], BUDGET)
    ids, mask = vl.sequences(prompts[:1], grid)
    kw = {}
    if "mm_token_type_ids" in inspect.signature(vl.model.forward).parameters:
        kw["mm_token_type_ids"] = (ids == vl.image_token_id).int()
    vl.model.model.rope_deltas = None
    cfg = GenerationConfig(max_new_tokens=6, do_sample=False, eos_token_id=list(vl.eos_ids), pad_token_id=vl.pad_id)
    out = vl.model.generate(input_ids=ids, attention_mask=mask, pixel_values=pv, image_grid_thw=grid,
                            generation_config=cfg, **kw)
    new = out[0, ids.shape[1]:].tolist()
    ends = [k for k, t in enumerate(new) if t in vl.eos_ids]
    assert vl.tokenizer.decode(new[:ends[0]] if ends else new, skip_special_tokens=True) == batch[0]


def test_repetition_penalty_is_transformers_processor_and_ignores_padding():
    from transformers import RepetitionPenaltyLogitsProcessor

    torch.manual_seed(0)
    logits = torch.randn(1, 50)
    ids = torch.tensor([[3, 7, 7, 12]])
    ref = torch.softmax(RepetitionPenaltyLogitsProcessor(1.05)(ids, logits.clone()), -1)[:, 7]
    got = _vlm.answer_probability(logits, 7, ids, repetition_penalty=1.05)
    torch.testing.assert_close(got, ref)
    padded = torch.tensor([[0, 0, 3, 7, 7, 12]])  # token 0 is padding: not a token of the sequence
    mask = torch.tensor([[0, 0, 1, 1, 1, 1]])
    torch.testing.assert_close(_vlm.answer_probability(logits, 7, padded, mask, repetition_penalty=1.05), ref)
    assert _vlm.answer_probability(logits, 7) == pytest.approx(float(torch.softmax(logits, -1)[0, 7]))


def test_tiny_tokenizer_has_the_special_tokens_and_one_token_answers():
    tok = _vlm.tiny_tokenizer(("<|Reward|>",))
    text = "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Yes or No? <|Reward|><|im_end|>"
    ids = tok.encode(text, add_special_tokens=False).ids
    for special in ("<|im_start|>", "<|image_pad|>", "<|Reward|>", "<|im_end|>"):
        assert ids.count(tok.token_to_id(special)) == 1
    assert len(tok.encode("Yes", add_special_tokens=False).ids) == 1
    assert tok.decode(tok.encode("naïve café, 3 dogs", add_special_tokens=False).ids) == "naïve café, 3 dogs"


def test_text_is_tokenised_once_per_unique_prompt(models, pixels):
    vl = _vlm.build_qwen_vl("qwen2_vl", tiny=True, seed_id="cache")
    prompts = [_vlm.chat_text("qwen2_vl", "a cat")] * 3
    with torch.no_grad():
        vl.next_token_logits(pixels, prompts, BUDGET)
        calls = vl.text_calls
        vl.next_token_logits(pixels, prompts, BUDGET)
    assert calls == 2 and vl.text_calls == 2  # the text before and after the image, once


def test_dtype_casts_and_bfloat16_runs(pixels):
    vl = _vlm.build_qwen_vl("qwen2_5_vl", tiny=True, seed_id="bf16").to(torch.bfloat16)
    assert vl.vision_dtype == torch.bfloat16
    with torch.no_grad():
        logits, _ = vl.next_token_logits(pixels[:2], [_vlm.chat_text("qwen2_5_vl", t) for t in TEXTS[:2]], BUDGET)
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()


def test_a_dispatched_model_keeps_its_devices_but_takes_dtype_casts():
    """With device_map (several GPUs) the model stays where accelerate put it: a later ``.to(device)`` of the reward
    leaves it, a dtype cast applies (shown here with the meta device standing for another GPU)."""
    vl = _vlm.build_qwen_vl("qwen2_vl", tiny=True, seed_id="dispatch")
    vl.dispatched = True
    vl.to("meta")
    assert {p.device.type for p in vl.parameters()} == {"cpu"}
    vl.to(torch.float64)
    assert {p.dtype for p in vl.parameters()} == {torch.float64}


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen3_vl"])
def test_pil_path_is_the_pil_image_processor_exactly(family, models):
    """``pil=True`` on a uint8 image equals transformers' PIL-backend Qwen2-VL image processor resizing to the same
    budget (smart_resize, PIL bicubic, rescale, normalise, patches); the torch path is close."""
    import numpy as np
    import transformers
    from PIL import Image

    from ..conftest import real_photo

    vl = models[family]
    fam = vl.family
    cls = getattr(transformers, "Qwen2VLImageProcessorPil", None) or transformers.Qwen2VLImageProcessor  # 5.x / 4.x
    img = Image.fromarray(real_photo("astronaut")).resize((451, 300))
    x = torch.from_numpy(np.array(img)).permute(2, 0, 1).float()[None] / 255
    pixels = 256 * fam.factor ** 2
    proc = cls(min_pixels=pixels, max_pixels=pixels, patch_size=fam.patch_size, merge_size=fam.merge_size,
               image_mean=list(fam.mean), image_std=list(fam.std))
    ref = proc(images=[img], return_tensors="pt")
    pv, grid = vl.preprocess(x, _vlm.PixelBudget(pixels, pixels), pil=True)
    assert torch.equal(grid, ref["image_grid_thw"])
    torch.testing.assert_close(pv, ref["pixel_values"].float(), atol=1e-5, rtol=0)
    near, _ = vl.preprocess(x, _vlm.PixelBudget(pixels, pixels))
    assert (near - ref["pixel_values"]).abs().mean() < 0.01
