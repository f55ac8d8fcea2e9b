"""UnifiedReward's pointwise score as Flow-GRPO uses it (Wang et al. 2025, arXiv 2503.05236; Liu et al. 2025,
Flow-GRPO, arXiv 2505.05470), by batched greedy generation on a Qwen-VL UnifiedReward checkpoint.

Flow-GRPO (github.com/yifan123/flow_grpo @ ac4c86e, ``flow_grpo/rewards.py`` ``unifiedreward_score_sglang``):

1. the images rounded to uint8 (``(images * 255).round().clamp(0, 255)``) and resized to 512 x 512 with PIL
   (``Image.fromarray(image).resize((512, 512))``, PIL's default bicubic);
2. one user message ``[image, question]``, the question (`FLOW_GRPO_QUESTION`) asking for "a score from 1 to 5
   after 'Final Score:'" for the caption; ``temperature=0`` (greedy);
3. the answer parsed with ``re.search(r"Final Score:\\s*([1-5](?:\\.\\d+)?)", text)``: that number, or 0.0 when there
   is none (`parse_final_score`);
4. the reward ``score / 5.0``.

Our score is that reward (0 to 1); ``details``: ``final_score`` (the parsed 1–5 value, 0 when none),
``parsed`` (False where the answer held no score: count them), ``text`` (the generated answer).

What differs from Flow-GRPO, and why:

- the checkpoint: Flow-GRPO serves ``CodeGoat24/UnifiedReward-7b-v1.5`` with sglang (``--chat-template
  chatml-llava``), a LLaVA-OneVision model (SigLIP + Qwen2), which this core (Qwen2-VL / Qwen2.5-VL / Qwen3-VL on
  transformers) does not build. We run the same prompt and parsing on UnifiedReward's Qwen-VL checkpoints
  (default ``CodeGoat24/UnifiedReward-qwen-7b``, a Qwen2.5-VL-7B-Instruct fine-tune; the ``model`` option lists
  the others), in the model's own chat template;
- the question's leading ``"<image>\\n"`` is LLaVA's image placeholder; in a Qwen-VL chat template the image is
  the message's image item (``<|vision_start|><|image_pad|>...<|vision_end|>``), so the question starts after it;
- the 512 x 512 image then goes through the Qwen2.5-VL processor's own budget (``preprocessor_config.json``
  min_pixels 3136, max_pixels 12845056: 504 x 504), resized by PIL's bicubic as transformers' PIL image processor
  does (the reward is parsed text: nothing to differentiate);
- generation stops at ``max_new_tokens`` (default 512, UnifiedReward's own Qwen example) where the server had the
  context length.

Example:
    >>> parse_final_score("Alignment is good. Final Score: 4")
    4.0
    >>> parse_final_score("no score here"), parse_final_score("Final Score: 7")
    (None, None)
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from rewardbench import Option, RewardModel, RewardOutput, RewardSpec, WeightSource, register_reward
from rewardbench.weights import resolve_weights

from ._vlm import VLM_OPTIONS, build_qwen_vl, load_qwen_vl
from ._vlm_build import load_tokenizer
from ._vlm_inputs import PixelBudget, chat_text, pil_resize

__all__ = ["UnifiedReward", "FLOW_GRPO_QUESTION", "FINAL_SCORE", "parse_final_score", "UNIFIEDREWARD_MODELS"]

# flow_grpo/rewards.py unifiedreward_score_sglang.evaluate_image: the question, without LLaVA's "<image>\n" prefix
FLOW_GRPO_QUESTION = (
    "You are given a text caption and a generated image based on that caption. Your task is to evaluate this image "
    "based on two key criteria:\n"
    "1. Alignment with the Caption: Assess how well this image aligns with the provided caption. Consider the "
    "accuracy of depicted objects, their relationships, and attributes as described in the caption.\n"
    "2. Overall Image Quality: Examine the visual quality of this image, including clarity, detail preservation, "
    "color accuracy, and overall aesthetic appeal.\n"
    "Based on the above criteria, assign a score from 1 to 5 after 'Final Score:'.\n"
    "Your task is provided as follows:\n"
    "Text Caption: [{prompt}]"
)
FINAL_SCORE = re.compile(r"Final Score:\s*([1-5](?:\.\d+)?)")  # flow_grpo/rewards.py _extract_scores
RESIZE = 512  # flow_grpo/rewards.py: Image.fromarray(image).resize((512, 512))
MAX_SCORE = 5.0  # flow_grpo/rewards.py: score = [sc / 5.0 for sc in score]
# Qwen/Qwen2.5-VL-7B-Instruct preprocessor_config.json min_pixels / max_pixels (the server's processor)
PROCESSOR_BUDGET = PixelBudget(3136, 12845056)

# UnifiedReward's Qwen-VL checkpoints (github.com/CodeGoat24/UnifiedReward README): name -> (family, hub id)
UNIFIEDREWARD_MODELS: dict[str, tuple[str, str]] = {
    "qwen-7b": ("qwen2_5_vl", "CodeGoat24/UnifiedReward-qwen-7b"),
    "2.0-qwen-3b": ("qwen2_5_vl", "CodeGoat24/UnifiedReward-2.0-qwen-3b"),
    "2.0-qwen-7b": ("qwen2_5_vl", "CodeGoat24/UnifiedReward-2.0-qwen-7b"),
    "2.0-qwen-32b": ("qwen2_5_vl", "CodeGoat24/UnifiedReward-2.0-qwen-32b"),
    "2.0-qwen-72b": ("qwen2_5_vl", "CodeGoat24/UnifiedReward-2.0-qwen-72b"),
    "2.0-qwen3vl-2b": ("qwen3_vl", "CodeGoat24/UnifiedReward-2.0-qwen3vl-2b"),
    "2.0-qwen3vl-4b": ("qwen3_vl", "CodeGoat24/UnifiedReward-2.0-qwen3vl-4b"),
    "2.0-qwen3vl-8b": ("qwen3_vl", "CodeGoat24/UnifiedReward-2.0-qwen3vl-8b"),
    "2.0-qwen3vl-32b": ("qwen3_vl", "CodeGoat24/UnifiedReward-2.0-qwen3vl-32b"),
}
DEFAULT_MODEL = "qwen-7b"


def parse_final_score(text: str) -> float | None:
    """The 1–5 number after "Final Score:" (Flow-GRPO's regular expression, first match), or None."""
    m = FINAL_SCORE.search(text)
    return float(m.group(1)) if m else None


def flow_grpo_pixels(pixels: torch.Tensor, size: int = RESIZE) -> torch.Tensor:
    """Flow-GRPO's image path before the server: round to uint8, PIL resize to ``size`` x ``size`` (bicubic, PIL's
    default), back to float in [0, 1]. Not differentiable (the reward is parsed text)."""
    return pil_resize(pixels, (size, size))


@register_reward()
class UnifiedReward(RewardModel):
    """UnifiedReward's pointwise 1–5 score / 5 from a greedy answer (module docstring)."""

    spec = RewardSpec(
        name="unifiedreward", aliases=("unified-reward", "unifiedreward-qwen-7b"), category="preference",
        higher_is_better=True, range=(0.0, 1.0), differentiable=False, needs_prompt=True,
        weights=(WeightSource("hub", UNIFIEDREWARD_MODELS[DEFAULT_MODEL][1],
                              note="a transformers Qwen2.5-VL checkpoint (hub snapshot)"),),
        license="MIT (UnifiedReward code and checkpoints; Flow-GRPO); Apache-2.0 (Qwen2.5-VL-7B-Instruct base)",
        paper="Wang et al., Unified Reward Model for Multimodal Understanding and Generation, arXiv 2503.05236; "
              "Liu et al., Flow-GRPO: Training Flow Matching Models via Online RL, arXiv 2505.05470",
        description="UnifiedReward pointwise score as Flow-GRPO uses it: the 1-5 value after 'Final Score:' / 5 "
                    "(0 when none), batched greedy generation on UnifiedReward-qwen-7b",
        tiny_config={"tiny": True, "max_new_tokens": 8},
        options={**VLM_OPTIONS,
                 "model": Option(str, DEFAULT_MODEL, "which UnifiedReward Qwen-VL checkpoint",
                                 choices=tuple(UNIFIEDREWARD_MODELS)),
                 "max_new_tokens": Option(int, 512, "the longest answer generated", low=1),
                 "question_template": Option(str, FLOW_GRPO_QUESTION, "the question, {prompt} standing for the "
                                                                      "caption (Flow-GRPO's)")},
    )

    @classmethod
    def weight_sources(cls, spec: RewardSpec, cfg: dict[str, Any]):
        if cfg.get("tiny"):
            return None
        name = cfg.get("model", DEFAULT_MODEL)
        return (WeightSource("hub", UNIFIEDREWARD_MODELS[name][1]),) if name in UNIFIEDREWARD_MODELS else None

    def __init__(self, model: str = DEFAULT_MODEL, *, tiny: bool = False, max_new_tokens: int = 512,
                 question_template: str = FLOW_GRPO_QUESTION, device_map: str | None = None):
        super().__init__()
        if model not in UNIFIEDREWARD_MODELS:
            raise ValueError(f"unifiedreward: unknown model {model!r}; choose from {', '.join(UNIFIEDREWARD_MODELS)}")
        if "{prompt}" not in question_template:
            raise ValueError("question_template needs a {prompt} for the caption")
        self.model_name = model
        self.family, self.hub_id = UNIFIEDREWARD_MODELS[model]
        self.tiny = tiny
        self.max_new_tokens = int(max_new_tokens)
        self.question_template = question_template
        self.device_map = device_map
        # tiny: a 56 x 56 image (four merged patches); else the server processor's budget
        self.budget = PixelBudget(3136, 3136) if tiny else PROCESSOR_BUDGET
        self.resize = 64 if tiny else RESIZE
        self.vlm: Any = build_qwen_vl(self.family, tiny=True, seed_id=f"unifiedreward+{model}+tiny") if tiny else None

    # -- weights -----------------------------------------------------------------------------
    def _ensure_built(self) -> None:
        if self.vlm is None:  # pretrained=False at full size: the real architecture with random weights
            from ._vlm_inputs import FAMILIES

            tok, cfg = (resolve_weights((WeightSource("hub", self.hub_id, filename=f),), reward=self.spec.name).path
                        for f in ("tokenizer.json", "config.json"))
            config = FAMILIES[self.family].config_class().from_json_file(str(cfg))
            self.vlm = build_qwen_vl(self.family, tiny=False, seed_id=f"unifiedreward+{self.model_name}",
                                     config=config, tokenizer=load_tokenizer(tok))

    def _apply(self, fn, recurse=True):
        self._ensure_built()
        return super()._apply(fn, recurse)

    def load_pretrained(self, weights: str | os.PathLike | None = None):
        """Load the checkpoint's hub snapshot (or ``weights``: a local folder with config.json, tokenizer.json and
        the safetensors)."""
        found = resolve_weights((WeightSource("hub", self.hub_id),), reward=self.spec.name, override=weights)
        folder = Path(found.path) if Path(found.path).is_dir() else Path(found.path).parent
        self.vlm = load_qwen_vl(self.family, tokenizer=load_tokenizer(folder / "tokenizer.json"), path=folder,
                                device_map=self.device_map)
        self.record_weights(found.provenance)
        return self.provenance()

    # -- scoring -----------------------------------------------------------------------------
    def questions(self, prompts: list[str]) -> list[str]:
        """The rendered prompts the model reads (its chat template around Flow-GRPO's question)."""
        return [chat_text(self.family, self.question_template.format(prompt=p)) for p in prompts]

    @torch.no_grad()
    def score(self, pixels, prompts, groups) -> RewardOutput:
        self._ensure_built()
        texts = self.vlm.generate(flow_grpo_pixels(pixels, self.resize), self.questions(prompts), self.budget,
                                  max_new_tokens=self.max_new_tokens, pil=True)
        values = [parse_final_score(t) for t in texts]
        final = torch.tensor([v or 0.0 for v in values], dtype=torch.float32, device=pixels.device)
        return RewardOutput(final / MAX_SCORE, {"final_score": final, "parsed": [v is not None for v in values],
                                                "text": texts})
