"""rewards/clip_flant5.py: VQAScore on CLIP-FlanT5 (t2v_metrics' clip-flant5-xxl) with a tiny random model, offline.

Official reference: github.com/linzhiqiu/t2v_metrics @ 335e4c2: ``clip_t5_model.py`` ``CLIPT5Model.load_images``
(``expand2square`` with the CLIP mean as bytes, then ``CLIPImageProcessor.preprocess``) and ``forward``
(``t5_tokenizer_image_token`` with IMAGE_TOKEN_INDEX -200, right padding, ``attention_mask = ids != pad``, labels
padded with -100, ``exp(-CrossEntropyLoss(mean))`` per item), ``clip_t5.py``
``prepare_inputs_labels_for_multimodal`` (image features spliced in at -200; the mask gets as many leading Trues as
the sequence grew) and ``clip_encoder.py`` (hidden_states[-2], class token dropped).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from PIL import Image

import rewardbench
from rewardbench.rewards.clip_flant5 import PAD_COLOUR, SYSTEM_MSG, pad_to_square
from rewardbench.weights import WeightsNotFoundError

from ..conftest import assert_gradient_step_raises

PROMPTS = ["a cat", "two dogs on the left of a red car", "a cup"]
IMAGE_TOKEN_INDEX, IGNORE_INDEX = -200, -100


@pytest.fixture(scope="module")
def vqa():
    return rewardbench.load_reward("vqascore", pretrained=False, tiny=True)


def _expand2square(img: Image.Image, colour) -> Image.Image:
    w, h = img.size
    if w == h:
        return img
    side = max(w, h)
    out = Image.new(img.mode, (side, side), colour)
    out.paste(img, (0, (w - h) // 2) if w > h else ((h - w) // 2, 0))
    return out


def _official_pixels(arrays, size):
    import transformers

    # t2v_metrics ran on transformers 4, whose CLIPImageProcessor resizes with PIL (transformers 5: ...Pil)
    cls = getattr(transformers, "CLIPImageProcessorPil", transformers.CLIPImageProcessor)
    proc = cls(size={"shortest_edge": size}, crop_size={"height": size, "width": size}, resample=Image.BICUBIC,
               image_mean=[0.48145466, 0.4578275, 0.40821073], image_std=[0.26862954, 0.26130258, 0.27577711])
    assert tuple(int(x * 255) for x in proc.image_mean) == PAD_COLOUR == (122, 116, 104)
    ims = [_expand2square(Image.fromarray(a), PAD_COLOUR) for a in arrays]
    return torch.stack([proc.preprocess(im, return_tensors="pt")["pixel_values"][0] for im in ims])


def _official_scores(vqa, pixel_values, prompts):
    """t2v_metrics' forward on the same network: ids with -200, right padding, the splice, CE per item."""
    net, tok = vqa.net, vqa.tokenizer
    questions = [SYSTEM_MSG + " USER: <image>\n" + f'Does this figure show "{p}"? Please answer yes or no.'
                 + " ASSISTANT: " for p in prompts]
    ids = []
    for q in questions:
        chunks = [tok.encode(c).ids for c in q.split("<image>")]
        ids.append(torch.tensor(chunks[0] + [IMAGE_TOKEN_INDEX] + chunks[1]))
    ids = torch.nn.utils.rnn.pad_sequence(ids, batch_first=True, padding_value=0)
    labels = torch.nn.utils.rnn.pad_sequence([torch.tensor(tok.encode("Yes").ids)] * len(prompts), batch_first=True,
                                             padding_value=IGNORE_INDEX)
    mask = ids.ne(0)
    feats = net.projector(net.vision(pixel_values, output_hidden_states=True).hidden_states[-2][:, 1:])
    embed = net.t5.get_input_embeddings()
    rows = []
    for k, row in enumerate(ids):
        at = int(torch.where(row == IMAGE_TOKEN_INDEX)[0][0])
        rows.append(torch.cat([embed(row[:at]), feats[k], embed(row[at + 1:])]))
    x = torch.stack(rows)
    mask = torch.cat([torch.ones(len(prompts), x.shape[1] - ids.shape[1], dtype=torch.bool), mask], dim=1)
    out = net.t5(inputs_embeds=x, attention_mask=mask, labels=labels, decoder_attention_mask=labels.ne(IGNORE_INDEX))
    ce = torch.nn.CrossEntropyLoss(reduction="mean")
    return torch.stack([(-ce(out.logits[k], labels[k])).exp() for k in range(len(prompts))])


def _arrays(shapes):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in shapes]


def test_forward_equals_t2v_metrics_on_the_same_pixels(vqa):
    pv = _official_pixels(_arrays([(40, 56), (56, 30), (56, 56)]), vqa.net.image_size)
    with torch.no_grad():
        ref = _official_scores(vqa, pv, PROMPTS)
        x, mask = vqa.inputs(vqa.net.image_features(pv), PROMPTS)
        labels = torch.tensor([vqa.encode("Yes")] * 3)
        logits = vqa.net.t5(inputs_embeds=x, attention_mask=mask, labels=labels).logits
        ours = torch.exp(torch.log_softmax(logits.float(), -1).gather(-1, labels[..., None])[..., 0].mean(1))
    torch.testing.assert_close(ours, ref, atol=1e-7, rtol=1e-5)
    assert not torch.allclose(ref[0], ref[1], rtol=1e-6, atol=0)  # the items differ: the check can fail


def test_padding_to_a_square_is_expand2square():
    """An image whose long side is already the model's size: no resize, so the padded pixels are exact."""
    arrays = _arrays([(40, 56), (56, 30)])
    for a in arrays:
        x = torch.from_numpy(a).permute(2, 0, 1).float()[None] / 255
        ours = (pad_to_square(x)[0].permute(1, 2, 0) * 255).round().byte().numpy()
        ref = np.asarray(_expand2square(Image.fromarray(a), PAD_COLOUR))
        assert np.array_equal(ours, ref)


def test_reward_scores_what_the_official_path_scores(vqa):
    """End to end from pixels: the official pixels and ours differ only where a resize happens (none here)."""
    arrays = _arrays([(40, 56), (56, 30)])
    x = torch.stack([torch.from_numpy(a).permute(2, 0, 1).float() / 255 for a in arrays[:1]])
    pv = _official_pixels(arrays[:1], vqa.net.image_size)
    torch.testing.assert_close(vqa.preprocess(x), pv, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(vqa(x, PROMPTS[:1]).scores, _official_scores(vqa, pv, PROMPTS[:1]),
                                   atol=1e-7, rtol=1e-5)


def test_pil_preprocess_is_t2v_metrics_pixels_when_resizing():
    """Images that need a resize (the tiny tower is 56 px): ``pil_preprocess`` gives t2v_metrics' pixels (PIL
    expand2square and PIL bicubic), the default torch path stays close."""
    r = rewardbench.load_reward("vqascore", pretrained=False, tiny=True, pil_preprocess=True)
    arrays = _arrays([(90, 130), (200, 70)])
    for a in arrays:
        x = torch.from_numpy(a).permute(2, 0, 1).float()[None] / 255
        ref = _official_pixels([a], 56)
        torch.testing.assert_close(r.preprocess(x), ref, atol=2e-6, rtol=0)
        torch_path = rewardbench.load_reward("vqascore", pretrained=False, tiny=True).preprocess(x)
        assert 0 < (torch_path - ref).abs().max() < 0.5


def test_score_is_the_geometric_mean_over_yes_and_eos(vqa):
    x = torch.rand(2, 3, 56, 56, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = vqa(x, PROMPTS[:2])
        feats = vqa.net.image_features(vqa.preprocess(x))
        emb, mask = vqa.inputs(feats, PROMPTS[:2])
        labels = torch.tensor([vqa.encode("Yes")] * 2)
        probs = torch.softmax(vqa.net.t5(inputs_embeds=emb, attention_mask=mask, labels=labels).logits, -1)
    p_yes, p_eos = probs[:, 0, labels[0, 0]], probs[:, 1, 1]
    assert labels[0].tolist()[-1] == 1  # "Yes" then </s>
    torch.testing.assert_close(out.scores, torch.sqrt(p_yes * p_eos), rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(out.details["p_first_token"], p_yes, rtol=1e-5, atol=1e-8)


def test_a_checkpoint_in_t2v_metrics_layout_loads(tmp_path, vqa):
    """t2v_metrics' key names (shared/encoder/decoder/lm_head, mm_projector.{0,2}, vision_tower.vision_tower.*)
    in a snapshot folder with config.json and tokenizer.json load into a fresh model: same scores."""
    from safetensors.torch import save_file

    net = vqa.net
    sd = {k: v.contiguous() for k, v in net.t5.state_dict().items() if "embed_tokens" not in k}
    sd.update({f"mm_projector.{k}": v for k, v in net.projector.state_dict().items()})
    sd.update({f"vision_tower.vision_tower.{k}": v for k, v in net.vision.state_dict().items()})
    save_file(sd, str(tmp_path / "model.safetensors"))
    net.t5.config.to_json_file(str(tmp_path / "config.json"))
    (tmp_path / "vision_tower").mkdir()
    net.vision.config.to_json_file(str(tmp_path / "vision_tower" / "config.json"))
    vqa.tokenizer.save(str(tmp_path / "tokenizer.json"))
    fresh = rewardbench.load_reward("vqascore", pretrained=False, tiny=True)
    with torch.no_grad():
        fresh.net.projector[0].weight.add_(1.0)  # differs before loading
    prov = fresh.load_pretrained(tmp_path)
    assert prov[0].kind == "file"
    x = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(fresh(x, PROMPTS[:2]).scores, vqa(x, PROMPTS[:2]).scores)


def test_missing_weights_fail_fast_offline(unreachable):
    t0 = time.perf_counter()
    with pytest.raises(WeightsNotFoundError, match="zhiqiulin/clip-flant5-xxl"):
        rewardbench.load_reward("vqascore")
    assert time.perf_counter() - t0 < 30 and unreachable == []


def test_a_gradient_step_on_the_pixels_raises_clip_flant5(vqa):
    """Differentiable preprocessing (pad, resize, normalise in torch): a ReFL-style step on the pixels raises the
    score of every image."""
    x = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(3))
    assert_gradient_step_raises(vqa, x, PROMPTS[:2])
