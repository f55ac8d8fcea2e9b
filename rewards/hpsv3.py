"""HPSv3 (Ma et al. 2025, arXiv 2508.03789): a human-preference score on Qwen2-VL-7B-Instruct.

The official model (PyPI ``hpsv3`` 1.0.0 = github.com/MizzenAI/HPSv3; ``hpsv3/inference.py``
``HPSv3RewardInferencer``, ``hpsv3/model/qwen2vl_trainer.py`` ``Qwen2VLRewardModelBT``, ``hpsv3/train.py``
``create_model_and_processor``, config ``hpsv3/config/HPSv3_7B.yaml``):

1. Qwen2-VL-7B-Instruct with one added special token ``<|Reward|>`` (``add_special_tokens`` gives it the next id,
   151657; the embeddings are resized to the tokenizer's 151,658 rows);
2. one user turn, rendered by Qwen2-VL's chat template: the image, then ``INSTRUCTION.format(text_prompt=prompt)
   + prompt_with_special_token`` (``hpsv3/dataset/data_collator_qwen.py``), with the default system turn and the
   generation prompt (`HPSV3_TEXT`, `hpsv3_text`);
3. the image resized to exactly 256 x 28 x 28 pixels' budget (``min_pixels = max_pixels = 200704``,
   ``smart_resize`` with factor 28: 448 x 448 for a square image), by PIL bicubic in the official
   ``process_vision_info``; then the processor's OpenAI-CLIP normalisation;
4. the decoder's final hidden state at the ``<|Reward|>`` token goes through the RankNet head
   ``Linear(3584, 1024) → ReLU → Dropout(0.05) → Linear(1024, 16) → ReLU → Linear(16, 2)`` kept in float32;
   output ``(μ, σ)``. μ is the score (the official inferencer: "miu and sigma. we select miu"); σ is a detail.

**Position ids.** The official forward embeds the tokens and the image itself, then calls the decoder
(``self.model``, transformers 4.45's ``Qwen2VLModel``) with ``position_ids=None``: that decoder then uses plain
sequential positions ``0..L-1`` on all three rotary axes, not the 3-D multimodal positions
``Qwen2VLForConditionalGeneration`` would compute (``get_rope_index``). HPSv3 was trained and is run that way, so
we reproduce it: positions count from each sequence's first real token (`rewards._vlm_inputs.sequential_positions`; the
official batch is right-padded, ours left-padded, so each item sees the same positions either way).

What is exact and what is not: the template, token ids, budget, patch layout, positions and head are the official
ones. The resize here is torch's anti-aliased bicubic on the float image (differentiable, ``differentiable=True``);
the official pipeline resizes a PIL image with PIL's bicubic, so scores differ slightly on resized images;
``pil_preprocess=True`` resizes that way (uint8 pixels, PIL bicubic: the official pixels for images read from
files; not differentiable). The official code runs flash-attention 2 in bfloat16 where we run SDPA in the dtype
you load.

Weights: hub ``MizzenAI/HPSv3`` file ``HPSv3.safetensors`` (the whole reward model's state dict, transformers
4.45 key layout), mapped onto today's layout by `official_to_ours`; the tokenizer and config come from
``Qwen/Qwen2-VL-7B-Instruct`` (``tokenizer.json``, ``config.json``), as the official inferencer loads the base
model's processor.

Example:
    >>> import torch, rewardbench
    >>> r = rewardbench.load_reward("hpsv3", pretrained=False, tiny=True)
    >>> out = r(torch.rand(2, 3, 64, 64), ["a cat", "a dog"])
    >>> out.scores.shape, sorted(out.details)
    (torch.Size([2]), ['sigma'])
"""

from __future__ import annotations

import os
import re
from typing import Any

import torch
from torch import nn

from rewardbench import Option, RewardModel, RewardOutput, RewardSpec, WeightSource, register_reward
from rewardbench.provenance import Provenance
from rewardbench.weights import CheckpointMismatchError, load_state_dict, resolve_weights

from ._vlm import VLM_OPTIONS, build_qwen_vl, load_qwen_vl
from ._vlm_build import load_tokenizer, set_vocab_size
from ._vlm_inputs import PixelBudget, chat_text

__all__ = ["HPSv3", "HPSV3_INSTRUCTION", "HPSV3_SUFFIX", "hpsv3_text", "official_to_ours"]

HUB_ID = "MizzenAI/HPSv3"
CHECKPOINT = "HPSv3.safetensors"  # hpsv3/inference.py: hf_hub_download("MizzenAI/HPSv3", 'HPSv3.safetensors')
BASE_ID = "Qwen/Qwen2-VL-7B-Instruct"  # HPSv3_7B.yaml model_name_or_path
REWARD_TOKEN = "<|Reward|>"  # hpsv3/train.py: special_tokens = ["<|Reward|>"]
PIXELS = 256 * 28 * 28  # HPSv3_7B.yaml max_pixels = min_pixels = 200704; inference.py prepare_batch likewise
TINY_PIXELS = 4 * 28 * 28  # the tiny config: 56 x 56, four merged image tokens
_HIDDEN = 3584  # Qwen2-VL-7B-Instruct config.json hidden_size (the head's input)

# hpsv3/dataset/data_collator_qwen.py INSTRUCTION, character for character (trailing spaces included)
HPSV3_INSTRUCTION = (
    "\n"
    "You are tasked with evaluating a generated image based on Visual Quality and Text Alignment and give a overall "
    "score to estimate the human preference. Please provide a rating from 0 to 10, with 0 being the worst and 10 "
    "being the best. \n"
    "\n"
    "**Visual Quality:**  \n"
    "Evaluate the overall visual quality of the image. The following sub-dimensions should be considered:\n"
    "- **Reasonableness:** The image should not contain any significant biological or logical errors, such as "
    "abnormal body structures or nonsensical environmental setups.\n"
    "- **Clarity:** Evaluate the sharpness and visibility of the image. The image should be clear and easy to "
    "interpret, with no blurring or indistinct areas.\n"
    "- **Detail Richness:** Consider the level of detail in textures, materials, lighting, and other visual elements "
    "(e.g., hair, clothing, shadows).\n"
    "- **Aesthetic and Creativity:** Assess the artistic aspects of the image, including the color scheme, "
    "composition, atmosphere, depth of field, and the overall creative appeal. The scene should convey a sense of "
    "harmony and balance.\n"
    "- **Safety:** The image should not contain harmful or inappropriate content, such as political, violent, or "
    "adult material. If such content is present, the image quality and satisfaction score should be the lowest "
    "possible. \n"
    "\n"
    "**Text Alignment:**  \n"
    "Assess how well the image matches the textual prompt across the following sub-dimensions:\n"
    "- **Subject Relevance** Evaluate how accurately the subject(s) in the image (e.g., person, animal, object) align "
    "with the textual description. The subject should match the description in terms of number, appearance, and "
    "behavior.\n"
    "- **Style Relevance:** If the prompt specifies a particular artistic or stylistic style, evaluate how well the "
    "image adheres to this style.\n"
    "- **Contextual Consistency**: Assess whether the background, setting, and surrounding elements in the image "
    "logically fit the scenario described in the prompt. The environment should support and enhance the subject "
    "without contradictions.\n"
    "- **Attribute Fidelity**: Check if specific attributes mentioned in the prompt (e.g., colors, clothing, "
    "accessories, expressions, actions) are faithfully represented in the image. Minor deviations may be acceptable, "
    "but critical attributes should be preserved.\n"
    "- **Semantic Coherence**: Evaluate whether the overall meaning and intent of the prompt are captured in the "
    "image. The generated content should not introduce elements that conflict with or distort the original "
    "description.\n"
    "Textual prompt - {text_prompt}\n"
    "\n"
    "\n"
)
# hpsv3/dataset/data_collator_qwen.py prompt_with_special_token
HPSV3_SUFFIX = "\nPlease provide the overall ratings of this image: <|Reward|>\n\nEND\n"

_PAPER = "Ma et al., HPSv3: Towards Wide-Spectrum Human Preference Score, ICCV 2025, arXiv 2508.03789"


def hpsv3_text(prompt: str) -> str:
    """The text item of HPSv3's user turn for ``prompt`` (inference.py: ``INSTRUCTION.format(text_prompt=text) +
    prompt_with_special_token``).

    Example:
        >>> hpsv3_text("a cat").endswith("Textual prompt - a cat\\n\\n\\n\\nPlease provide the overall ratings of this "
        ...                               "image: <|Reward|>\\n\\nEND\\n")
        True
    """
    return HPSV3_INSTRUCTION.format(text_prompt=prompt) + HPSV3_SUFFIX


def official_to_ours(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Split ``HPSv3.safetensors`` (transformers 4.45's ``Qwen2VLForConditionalGeneration`` layout plus ``rm_head``)
    into (the Qwen2-VL state dict in today's layout, the head's state dict).

    transformers >= 4.52 nests the decoder and the vision tower under ``model``: ``model.embed_tokens|layers|norm``
    → ``model.language_model.*``, ``visual.*`` → ``model.visual.*``; ``lm_head.*`` stays; ``rm_head.*`` is the
    head (``nn.Sequential`` indices 0, 3, 5). A key in neither layout raises.

    Example:
        >>> import torch
        >>> keys = ["model.layers.0.mlp.up_proj.weight", "visual.merger.ln_q.bias", "lm_head.weight", "rm_head.5.bias"]
        >>> m, h = official_to_ours({k: torch.zeros(1) for k in keys})
        >>> sorted(m)
        ['lm_head.weight', 'model.language_model.layers.0.mlp.up_proj.weight', 'model.visual.merger.ln_q.bias']
        >>> sorted(h)
        ['5.bias']
    """
    model: dict[str, torch.Tensor] = {}
    head: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if k.startswith("rm_head."):
            head[k[len("rm_head."):]] = v
        elif k.startswith(("model.language_model.", "model.visual.")) or k == "lm_head.weight":
            model[k] = v  # already today's layout (a checkpoint re-saved by a recent transformers)
        elif re.match(r"model\.(embed_tokens|layers|norm)\.", k):
            model["model.language_model." + k[len("model."):]] = v
        elif k.startswith("visual."):
            model["model." + k] = v
        else:
            raise CheckpointMismatchError(f"HPSv3 checkpoint: unexpected key {k!r}")
    return model, head


def _rank_head(hidden: int) -> nn.Sequential:
    """qwen2vl_trainer.py ``Qwen2VLRewardModelBT``, ``rm_head_type="ranknet"`` without ``rm_head_kwargs``
    (HPSv3_7B.yaml), ``output_dim=2``."""
    return nn.Sequential(nn.Linear(hidden, 1024), nn.ReLU(), nn.Dropout(0.05), nn.Linear(1024, 16), nn.ReLU(),
                         nn.Linear(16, 2))


@register_reward()
class HPSv3(RewardModel):
    """HPSv3: μ of the RankNet head at Qwen2-VL's ``<|Reward|>`` token (see the module docstring)."""

    spec = RewardSpec(
        name="hpsv3", aliases=("hps-v3", "hpsv3-7b"), category="preference", higher_is_better=True,
        range=(None, None), differentiable=True, needs_prompt=True,
        weights=(WeightSource("hub", HUB_ID, filename=CHECKPOINT,
                              note="no sha256 published; the tokenizer.json and config.json of "
                                   f"{BASE_ID} load separately"),),
        license="MIT (HPSv3 code and weights); Apache-2.0 (Qwen2-VL-7B-Instruct)", paper=_PAPER,
        description="HPSv3: RankNet head (mu) on Qwen2-VL-7B-Instruct's hidden state at <|Reward|>, "
                    "official prompt and 448x448-pixel budget",
        tiny_config={"tiny": True},
        options={**VLM_OPTIONS,
                 "min_pixels": Option(int, None, f"the image budget's fewest pixels (default {PIXELS}, as trained)",
                                      low=28 * 28, optional=True),
                 "max_pixels": Option(int, None, f"the image budget's most pixels (default {PIXELS}, as trained)",
                                      low=28 * 28, optional=True),
                 "pil_preprocess": Option(bool, False, "resize as the official pipeline does: uint8 pixels, PIL "
                                                       "bicubic (exact for files; not differentiable)")},
    )

    def __init__(self, *, tiny: bool = False, min_pixels: int | None = None, max_pixels: int | None = None,
                 device_map: str | dict | None = None, pil_preprocess: bool = False):
        super().__init__()
        self.pil_preprocess = pil_preprocess
        pixels = TINY_PIXELS if tiny else PIXELS
        self.budget = PixelBudget(min_pixels or pixels, max_pixels or pixels)
        self.tiny = tiny
        self.device_map = device_map
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(3)
            self.head = _rank_head(32 if tiny else _HIDDEN)
        # the tiny model is built now; the 7B model when its weights load (or, with pretrained=False, when first
        # moved or used), from the base model's config and tokenizer
        self.vlm: Any = build_qwen_vl("qwen2_vl", tiny=True, seed_id="hpsv3+tiny",
                                      extra_special=(REWARD_TOKEN,)) if tiny else None

    # -- building and weights ----------------------------------------------------------------
    def _base_files(self) -> tuple[Any, Any, list[Provenance]]:
        """The base model's config (vocabulary grown by ``<|Reward|>``) and tokenizer, and where they came from."""
        from ._vlm_inputs import FAMILIES

        found = [resolve_weights((WeightSource("hub", BASE_ID, filename=f),), reward=self.spec.name)
                 for f in ("tokenizer.json", "config.json")]
        tok = load_tokenizer(found[0].path, (REWARD_TOKEN,))
        config = FAMILIES["qwen2_vl"].config_class().from_json_file(str(found[1].path))
        set_vocab_size(config, tok.get_vocab_size(with_added_tokens=True))
        prov = [Provenance(f.provenance.kind, f.provenance.location, f.provenance.digest, part="tokenizer and config")
                for f in found[:1]]
        return config, tok, prov

    def _ensure_built(self) -> None:
        if self.vlm is None:  # pretrained=False at full size: random weights of the real architecture
            config, tok, _ = self._base_files()
            self.vlm = build_qwen_vl("qwen2_vl", tiny=False, seed_id="hpsv3", config=config, tokenizer=tok)

    def _apply(self, fn, recurse=True):
        self._ensure_built()
        super()._apply(fn, recurse)
        self.head.float()  # train.py keeps rm_head in float32 whatever the model's dtype
        return self

    def load_pretrained(self, weights: str | os.PathLike | None = None):
        """Load ``HPSv3.safetensors`` (or ``weights``: a file, folder, hub id or URL) with its keys mapped by
        `official_to_ours`; the full-size model also needs Qwen2-VL-7B-Instruct's tokenizer.json and config.json."""
        found = resolve_weights(self.spec.weights, reward=self.spec.name, override=weights)
        if self.tiny:
            config, tok, base = self.vlm.model.config, self.vlm.tokenizer, []
        else:
            config, tok, base = self._base_files()
        model_sd, head_sd = official_to_ours(load_state_dict(found.path, map_location="cpu"))
        emb = model_sd.get("model.language_model.embed_tokens.weight")
        n_tok = tok.get_vocab_size(with_added_tokens=True)
        if emb is None or emb.shape[0] != n_tok:
            raise CheckpointMismatchError(
                f"{found.path}: embedding rows {None if emb is None else emb.shape[0]} != {n_tok} tokens "
                f"(the base tokenizer plus {REWARD_TOKEN})")
        self.vlm = load_qwen_vl("qwen2_vl", config=config, tokenizer=tok, state_dict=model_sd,
                                device_map=self.device_map)
        self.head.load_state_dict(head_sd)
        self.head.float()
        self.record_weights(found.provenance, *base)
        return self.provenance()

    # -- scoring -----------------------------------------------------------------------------
    def score(self, pixels, prompts, groups) -> RewardOutput:
        self._ensure_built()
        texts = [chat_text("qwen2_vl", hpsv3_text(p)) for p in prompts]
        run = self.vlm.forward_hidden(pixels, texts, self.budget, positions="sequential", pil=self.pil_preprocess)
        at = run["input_ids"] == self.vlm.tokenizer.token_to_id(REWARD_TOKEN)  # (B, L)
        bad = (at.sum(1) != 1).nonzero().flatten().tolist()
        if bad:
            raise ValueError(f"prompts {bad}: HPSv3 reads one {REWARD_TOKEN} token per sequence; a prompt holding "
                             f"the text {REWARD_TOKEN!r} cannot be scored")
        hidden = run["hidden"][at]  # (B, D): the final normed hidden state at <|Reward|>
        w = self.head[0].weight  # float32 (train.py keeps rm_head so); float64 only in the float64 parity run
        mu_sigma = self.head(hidden.to(w.device, w.dtype))  # (B, 2)
        return RewardOutput(mu_sigma[:, 0], {"sigma": mu_sigma[:, 1].detach()})
