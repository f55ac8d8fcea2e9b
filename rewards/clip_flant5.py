"""VQAScore on CLIP-FlanT5 (Lin et al. 2024, arXiv 2404.01291), t2v_metrics' original default ``clip-flant5-xxl``.

As t2v_metrics computes it (github.com/linzhiqiu/t2v_metrics @ 335e4c2, the last commit with this backend:
``t2v_metrics/models/vqascore_models/clip_t5_model.py`` ``CLIPT5Model.forward``, ``clip_t5/model/language_model/
clip_t5.py``, ``clip_t5/model/multimodal_encoder/clip_encoder.py``, ``multimodal_projector/builder.py``,
``mm_utils.py``, ``constants.py``):

1. **the image**: padded to a square with the CLIP mean colour as bytes, ``(122, 116, 104)``, the image pasted at
   ``((side - w) // 2, (side - h) // 2)`` (``expand2square``), then openai/clip-vit-large-patch14-336's
   ``CLIPImageProcessor``: shorter side to 336 (bicubic), centre crop 336, CLIP mean/std;
2. **the vision tower**: CLIP ViT-L/14-336, the penultimate layer's hidden states (``mm_vision_select_layer``
   -2) without the class token (576 patch features), then the ``mlp2x_gelu`` projector (Linear, GELU, Linear) to
   FlanT5's width;
3. **the text**: the question ``'Does this figure show "{}"? Please answer yes or no.'`` in the ``t5_chat``
   conversation ``SYSTEM_MSG + " USER: <image>\\n" + question + " ASSISTANT: "``; each side of ``<image>`` is
   tokenised on its own by FlanT5's tokenizer, which ends each with ``</s>`` (``t5_tokenizer_image_token``), and
   the image features take the ``<image>`` place in the encoder's input embeddings; sequences are right-padded
   with ``<pad>`` and masked;
4. **the score**: the answer ``"Yes"`` tokenised the same way (``▁Yes </s>``) is the decoder's label sequence
   (teacher forcing, decoder start ``<pad>``), and the score is ``exp(-CrossEntropy(mean))`` over its tokens:
   the geometric mean of P(Yes) at the first decoder step and P(</s> | Yes) at the second. ``details`` keep
   P(Yes) at the first step (``p_first_token``).

t2v_metrics already batches this backend (one padded forward for a batch, in bfloat16 under autocast on CUDA);
here the same forward runs on torch pixels, differentiable end to end. Weights: ``zhiqiulin/clip-flant5-xxl``
(FlanT5-XXL encoder-decoder and projector; its vision tower where the checkpoint holds one, else
``openai/clip-vit-large-patch14-336``), tokenizer ``google/flan-t5-xxl``'s ``tokenizer.json`` (t2v_metrics loads
the slow sentencepiece tokenizer; the fast one gives the same ids on these ASCII templates).

Not exact by default: the resize (torch's anti-aliased bicubic on the float image; the official processor resizes a
PIL image of bytes with bicubic). Exact: padding colour and offset, crop, normalisation, layer choice, projector,
template, tokenisation layout, masking and the score.

Example:
    >>> import torch, rewardbench
    >>> r = rewardbench.load_reward("vqascore", pretrained=False, tiny=True)
    >>> out = r(torch.rand(2, 3, 48, 64), ["a cat", "a dog"])
    >>> bool(((out.scores > 0) & (out.scores < 1)).all())
    True
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rewardbench import Option, RewardModel, RewardOutput, RewardSpec, WeightSource, register_reward
from rewardbench.text import tiny_t5_tokenizer
from rewardbench.transforms import CLIP_MEAN, CLIP_STD, center_crop, normalize, resize_shorter
from rewardbench.weights import load_state_dict, resolve_weights

__all__ = ["CLIPFlanT5VQAScore", "CLIPFlanT5", "CLIP_T5_MODELS", "SYSTEM_MSG", "QUESTION_TEMPLATE", "pad_to_square",
           "t5_chat"]

# t2v_metrics clip_t5_model.py default_question_template / default_answer_template, constants.SYSTEM_MSG
QUESTION_TEMPLATE = 'Does this figure show "{}"? Please answer yes or no.'
ANSWER_TEMPLATE = "Yes"
SYSTEM_MSG = ("A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
              "detailed, and polite answers to the user's questions.")
IMAGE_TOKEN = "<image>"
CONTEXT_LEN = 2048  # constants.CONTEXT_LEN: the tokenizer's model_max_length, ids cut there
# t2v_metrics CLIP_T5_MODELS: name -> (checkpoint, tokenizer); both use the t5_chat conversation and 'pad' images
CLIP_T5_MODELS: dict[str, tuple[str, str]] = {
    "clip-flant5-xxl": ("zhiqiulin/clip-flant5-xxl", "google/flan-t5-xxl"),
    "clip-flant5-xl": ("zhiqiulin/clip-flant5-xl", "google/flan-t5-xl"),
}
VISION_TOWER = "openai/clip-vit-large-patch14-336"  # ModelArguments.vision_tower
PAD_COLOUR = tuple(int(x * 255) for x in CLIP_MEAN)  # expand2square's background: (122, 116, 104)
_PAD, _EOS, _UNK = 0, 1, 2  # FlanT5's <pad>, </s>, <unk>


def t5_chat(question: str) -> str:
    """The ``t5_chat`` conversation around a question (``format_question``).

    >>> t5_chat("Q?").endswith(" USER: <image>\\nQ? ASSISTANT: ")
    True
    """
    return SYSTEM_MSG + " USER: " + IMAGE_TOKEN + "\n" + question + " ASSISTANT: "


def pad_to_square(x: torch.Tensor, colour: tuple[int, int, int] = PAD_COLOUR) -> torch.Tensor:
    """``expand2square`` on ``[B,3,H,W]`` in [0, 1]: a square canvas of ``colour`` (bytes) with the image pasted
    at the centre, offset ``(side - short) // 2``. Differentiable.

    >>> (pad_to_square(torch.ones(1, 3, 2, 4))[0, 0, :, 0] * 255).round().tolist() == [122.0, 255.0, 255.0, 122.0]
    True
    """
    h, w = x.shape[-2:]
    if h == w:
        return x
    side = max(h, w)
    fill = torch.tensor(colour, dtype=x.dtype, device=x.device).view(1, 3, 1, 1) / 255
    canvas = fill.expand(x.shape[0], 3, side, side).clone()
    top, left = (side - h) // 2, (side - w) // 2
    canvas[:, :, top:top + h, left:left + w] = x
    return canvas


class CLIPFlanT5(nn.Module):
    """CLIP-FlanT5: a CLIP vision tower, the ``mlp2x_gelu`` projector and a T5 encoder-decoder (module docstring)."""

    def __init__(self, t5_config: Any, vision_config: Any, select_layer: int = -2):
        super().__init__()
        from transformers import CLIPVisionModel, T5ForConditionalGeneration

        self.t5 = T5ForConditionalGeneration(t5_config)
        # FlanT5 (T5 v1.1) has its own lm_head, and no output scaling (config tie_word_embeddings false); recent
        # transformers ties lm_head to the shared embedding whatever the config says: untie it
        if self.t5.lm_head.weight is self.t5.shared.weight and not getattr(t5_config, "scale_decoder_outputs", True):
            self.t5.lm_head.weight = nn.Parameter(self.t5.shared.weight.detach().clone())
        self.vision = CLIPVisionModel(vision_config)
        d, v = t5_config.d_model, vision_config.hidden_size
        self.projector = nn.Sequential(nn.Linear(v, d), nn.GELU(), nn.Linear(d, d))
        self.select_layer = select_layer
        self.image_size = vision_config.image_size

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``[B,3,S,S]`` normalised → ``[B, patches, d_model]``: the selected layer without the class token,
        projected."""
        dtype = next(self.vision.parameters()).dtype
        out = self.vision(pixel_values.to(dtype), output_hidden_states=True)
        return self.projector(out.hidden_states[self.select_layer][:, 1:])

    def load_checkpoint(self, sd: dict[str, torch.Tensor]) -> list[str]:
        """Load a t2v_metrics checkpoint's keys (``shared``/``encoder``/``decoder``/``lm_head``,
        ``mm_projector.{0,2}``, ``vision_tower.vision_tower.*``); returns the parts it did not hold."""
        t5, proj, vis = {}, {}, {}
        for k, v in sd.items():
            if k.startswith("mm_projector."):
                proj[k[len("mm_projector."):]] = v
            elif k.startswith("vision_tower.vision_tower."):
                vis[k[len("vision_tower.vision_tower."):]] = v
            elif k.startswith(("shared.", "encoder.", "decoder.", "lm_head.")):
                t5[k] = v
        missing, unexpected = self.t5.load_state_dict(t5, strict=False)
        missing = [m for m in missing if not m.endswith("embed_tokens.weight")]  # tied to shared
        if missing or unexpected:
            raise ValueError(f"clip-flant5 checkpoint: missing {missing[:5]}, unexpected {unexpected[:5]}")
        self.projector.load_state_dict(proj)
        if vis:
            self.vision.load_state_dict(vis)
            return []
        return ["vision"]


class CLIPFlanT5VQAScore(RewardModel):
    """VQAScore on CLIP-FlanT5: exp(-mean CE) of the answer ``Yes </s>`` given the image and question."""

    @classmethod
    def weight_sources(cls, spec: RewardSpec, cfg: dict[str, Any]):
        if cfg.get("tiny"):
            return None
        ckpt, tok = CLIP_T5_MODELS[cfg.get("model", "clip-flant5-xxl")]
        return (WeightSource("hub", ckpt, note="t2v_metrics' CLIP-FlanT5 checkpoint (hub snapshot)"),
                WeightSource("hub", tok, filename="tokenizer.json", note="FlanT5's tokenizer"))

    def __init__(self, model: str = "clip-flant5-xxl", *, tiny: bool = False, spec: RewardSpec | None = None,
                 question_template: str = QUESTION_TEMPLATE, answer_template: str = ANSWER_TEMPLATE,
                 pil_preprocess: bool = False):
        super().__init__(spec)
        self.pil_preprocess = pil_preprocess
        if model not in CLIP_T5_MODELS:
            raise ValueError(f"vqascore: unknown model {model!r}; choose from {', '.join(CLIP_T5_MODELS)}")
        if "{}" not in question_template:
            raise ValueError("question_template needs a {} for the prompt")
        self.model_name, self.tiny = model, tiny
        self.question_template, self.answer_template = question_template, answer_template
        self.net: CLIPFlanT5 | None = None
        self.tokenizer: Any = None
        if tiny:
            self._build(*_tiny_configs(), tiny_t5_tokenizer(), seed="vqascore+clip-flant5+tiny")

    def _build(self, t5_config, vision_config, tokenizer, seed: str) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(hashlib.sha256(seed.encode()).hexdigest()[:15], 16))
            self.net = CLIPFlanT5(t5_config, vision_config).eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self._ids: dict[str, list[int]] = {}

    def _ensure_built(self) -> None:
        if self.net is None:  # pretrained=False at full size: the real architecture with random weights
            ckpt, tok = CLIP_T5_MODELS[self.model_name]
            cfg, vcfg, tfile = (resolve_weights((WeightSource("hub", repo, filename=f),), reward=self.spec.name).path
                                for repo, f in ((ckpt, "config.json"), (VISION_TOWER, "config.json"),
                                                (tok, "tokenizer.json")))
            self._build(*_full_configs(cfg, vcfg), _load_tokenizer(tfile), seed=f"vqascore+{self.model_name}")

    def _apply(self, fn, recurse=True):
        self._ensure_built()
        return super()._apply(fn, recurse)

    def load_pretrained(self, weights: str | os.PathLike | None = None):
        """The checkpoint's snapshot folder (``weights``: a local folder with config.json and the weights; FlanT5's
        tokenizer.json and the CLIP tower come from their own sources unless the folder holds them)."""
        ckpt, tok = CLIP_T5_MODELS[self.model_name]
        found = resolve_weights((WeightSource("hub", ckpt),), reward=self.spec.name, override=weights)
        folder = Path(found.path) if Path(found.path).is_dir() else Path(found.path).parent
        provenance = [found.provenance]
        tfile = folder / "tokenizer.json"
        if not tfile.is_file():
            t = resolve_weights((WeightSource("hub", tok, filename="tokenizer.json"),), reward=self.spec.name)
            tfile, provenance = Path(t.path), provenance + [t.provenance]
        vfolder = folder / "vision_tower"
        if not (vfolder / "config.json").is_file():
            v = resolve_weights((WeightSource("hub", VISION_TOWER),), reward=self.spec.name)
            vfolder = Path(v.path)
            vision = v
        else:
            vision = None
        self._build(*_full_configs(folder / "config.json", vfolder / "config.json"), _load_tokenizer(tfile),
                    seed=f"vqascore+{self.model_name}")
        if self.net.load_checkpoint(load_state_dict(folder)) == ["vision"]:
            from transformers import CLIPVisionModel

            self.net.vision.load_state_dict(CLIPVisionModel.from_pretrained(str(vfolder)).state_dict())
            if vision is not None:
                provenance.append(vision.provenance)
        self.record_weights(*provenance)
        return self.provenance()

    # -- inputs ------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """FlanT5's ids of ``text``, ``</s>`` appended (cached per text)."""
        ids = self._ids.get(text)
        if ids is None:
            ids = self._ids[text] = self.tokenizer.encode(text).ids
        return ids

    def preprocess(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pad to a square with the mean colour, resize the shorter side (bicubic), centre crop, CLIP mean/std.
        ``pil_preprocess``: as t2v_metrics does it, on uint8 pixels with PIL (``expand2square``, then the PIL
        ``CLIPImageProcessor`` of transformers 4: PIL bicubic); exact for images read from files, not
        differentiable."""
        size = self.net.image_size
        if self.pil_preprocess:
            from PIL import Image

            from rewardbench.images import uint8_view
            from rewardbench.transforms import pil_clip_preprocess

            out = []
            for a in uint8_view(pixels):
                img = Image.fromarray(np.ascontiguousarray(a))
                side = max(img.size)
                square = Image.new("RGB", (side, side), PAD_COLOUR)
                square.paste(img, ((side - img.size[0]) // 2, (side - img.size[1]) // 2))
                out.append(pil_clip_preprocess(square, size))
            return torch.stack(out).to(pixels.device)
        x = pad_to_square(pixels.float())
        return normalize(center_crop(resize_shorter(x, size), size), CLIP_MEAN, CLIP_STD)

    def inputs(self, features: torch.Tensor, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder input embeddings and mask ``[B,L,d]``, ``[B,L]``: each side of ``<image>`` tokenised alone,
        the image features between, right-padded with ``<pad>``'s embedding (masked)."""
        embed = self.net.t5.get_input_embeddings()
        dev = features.device
        seqs = []
        for i, p in enumerate(prompts):
            before, after = t5_chat(self.question_template.format(p)).split(IMAGE_TOKEN)
            head, tail = self.encode(before), self.encode(after)
            tail = tail[:max(0, CONTEXT_LEN - len(head) - 1)]  # the ids (image token included) cut at CONTEXT_LEN
            seqs.append(torch.cat([embed(torch.tensor(head, device=dev)), features[i].to(embed.weight.dtype),
                                   embed(torch.tensor(tail, device=dev, dtype=torch.long))]))
        width = max(len(s) for s in seqs)
        pad = embed(torch.tensor([_PAD], device=dev))[0]
        x = torch.stack([torch.cat([s, pad.expand(width - len(s), -1)]) for s in seqs])
        mask = torch.stack([torch.arange(width, device=dev) < len(s) for s in seqs]).long()
        return x, mask

    def score(self, pixels, prompts, groups) -> RewardOutput:
        self._ensure_built()
        feats = self.net.image_features(self.preprocess(pixels).to(next(self.net.parameters()).device))
        x, mask = self.inputs(feats, prompts)
        answers = [self.encode(self.answer_template.format(p)) for p in prompts]
        n = max(len(a) for a in answers)
        labels = torch.full((len(prompts), n), -100, dtype=torch.long, device=x.device)
        for i, a in enumerate(answers):
            labels[i, :len(a)] = torch.tensor(a, device=x.device)
        out = self.net.t5(inputs_embeds=x, attention_mask=mask, labels=labels, decoder_attention_mask=labels.ne(-100))
        logp = F.log_softmax(out.logits.float(), dim=-1)  # (B, n, V)
        valid = labels.ne(-100)
        token_logp = logp.gather(-1, labels.clamp(min=0)[..., None])[..., 0] * valid
        score = torch.exp(token_logp.sum(1) / valid.sum(1))  # exp(-mean cross-entropy), per item
        return RewardOutput(score, {"p_first_token": torch.exp(token_logp[:, 0]).detach().cpu()})


def _load_tokenizer(path) -> Any:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(path))


def _tiny_configs():
    from transformers import CLIPVisionConfig, T5Config

    vocab = tiny_t5_tokenizer().get_vocab_size()
    t5 = T5Config(vocab_size=vocab, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4,
                  relative_attention_num_buckets=8, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
                  decoder_start_token_id=_PAD, pad_token_id=_PAD, eos_token_id=_EOS, dropout_rate=0.0,
                  initializer_factor=0.6)  # small logits: probabilities away from 0
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2,
                              image_size=56, patch_size=14, projection_dim=32, hidden_act="quick_gelu")
    return t5, vision


def _full_configs(t5_file, vision_file):
    from transformers import CLIPVisionConfig, T5Config

    t5 = T5Config.from_dict({k: v for k, v in json.loads(Path(t5_file).read_text()).items() if k != "model_type"})
    v = json.loads(Path(vision_file).read_text())
    vision = CLIPVisionConfig(**v.get("vision_config", v))
    return t5, vision


_SPEC = RewardSpec(
    name="vqascore", aliases=("vqascore-clip-flant5", "vqascore-clip-flant5-xxl"), category="composition",
    higher_is_better=True, range=(0.0, 1.0), differentiable=True, needs_prompt=True,
    weights=(WeightSource("hub", "zhiqiulin/clip-flant5-xxl", note="t2v_metrics' CLIP-FlanT5 checkpoint"),
             WeightSource("hub", "google/flan-t5-xxl", filename="tokenizer.json", note="FlanT5's tokenizer"),
             WeightSource("hub", VISION_TOWER, note="the CLIP tower, where the checkpoint holds none")),
    license="Apache-2.0 (t2v_metrics; FlanT5); MIT (OpenAI CLIP)",
    paper="Lin et al., Evaluating Text-to-Visual Generation with Image-to-Text Generation, ECCV 2024, "
          "arXiv 2404.01291",
    description="VQAScore (t2v_metrics' clip-flant5-xxl): exp(-CE) of 'Yes' given the image and 'Does this figure "
                "show \"prompt\"? Please answer yes or no.'",
    tiny_config={"tiny": True},
    options={"tiny": Option(bool, False, "a tiny random architecture (tests)"),
             "model": Option(str, "clip-flant5-xxl", "t2v_metrics' CLIP-FlanT5 model", choices=tuple(CLIP_T5_MODELS)),
             "question_template": Option(str, QUESTION_TEMPLATE, "the question, {} standing for the prompt"),
             "answer_template": Option(str, ANSWER_TEMPLATE, "the answer whose probability is the score"),
             "pil_preprocess": Option(bool, False, "pad and resize uint8 pixels with PIL as t2v_metrics does "
                                                   "(exact for files; not differentiable)")},
)


def vqascore(**cfg: Any) -> CLIPFlanT5VQAScore:
    """VQAScore on CLIP-FlanT5 (module docstring)."""
    return CLIPFlanT5VQAScore(spec=_SPEC, **cfg)


vqascore.weight_sources = CLIPFlanT5VQAScore.weight_sources
register_reward(spec=_SPEC)(vqascore)
