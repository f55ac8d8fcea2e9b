"""VQAScore (Lin et al. 2024, arXiv 2404.01291): P("Yes" | image, "Does this figure show "{prompt}"?").

As t2v_metrics computes it for its Qwen backends (github.com/linzhiqiu/t2v_metrics @ 6ecb74f,
``t2v_metrics/models/vqascore_models/qwen2vl_model.py`` for Qwen2.5-VL, ``qwen3vl_model.py`` for Qwen3-VL):

1. the question ``'Does this figure show "{}"? Please answer Yes or No.'.format(prompt)`` (``question_template``)
   and the answer ``'Yes'`` (``answer_template``);
2. one user turn ``[image, question]`` rendered by the model's chat template with the generation prompt;
3. the image resized by qwen-vl-utils' ``process_vision_info`` with its default budget (``fetch_image``:
   4 to 16384 merged patches, i.e. ``min_pixels = 4 x f^2``, ``max_pixels = 16384 x f^2`` with f = 28 for
   Qwen2.5-VL, whose call leaves ``image_patch_size`` at 14, and f = 32 for Qwen3-VL, called with its processor's
   patch size 16), then the processor with ``do_resize=False``;
4. ``model.generate(max_new_tokens=1, do_sample=False, temperature=1.0, output_scores=True)`` and the softmax of
   that one step's scores at the answer's token (``_compute_token_prob``, temperature 1 applied by hand).

Here the same number comes from one batched forward (`rewards._vlm.QwenVL.next_token_logits`): the logits after
the prompt are what ``generate``'s first step scores. ``generate``'s scores are its *processed* logits, so the
model's ``generation_config.json`` processors that act without sampling apply: its ``repetition_penalty``
(1.05 in Qwen2.5-VL-7B-Instruct's; read from the checkpoint's file at load, 1.0 when it has none), applied to
the tokens of the unpadded prompt as ``RepetitionPenaltyLogitsProcessor`` does. The answer is its first token
when it has several (t2v_metrics generates one token and cuts the answer to it). When the greedy token is an end
token, t2v_metrics raises for that item ("No content tokens to score"); we give P(Yes) and mark it in
``details["t2v_metrics_refuses"]``.

What is exact: template, question, answer token, pixel budget, patch layout, positions, the probability and its
processing. Not exact by default: the resize (torch's anti-aliased bicubic on the float image, differentiable,
where qwen-vl-utils resizes a PIL image with PIL's bicubic; ``pil_preprocess=True`` does that, exact for images
read from files, not differentiable); attention kernels are SDPA as t2v_metrics asks (it loads bfloat16).

CLIP-FlanT5 (t2v_metrics' original default ``clip-flant5-xxl``) is `rewards.clip_flant5` (``vqascore``).

Example:
    >>> import torch, rewardbench
    >>> r = rewardbench.load_reward("vqascore-qwen2.5-vl", pretrained=False, tiny=True)
    >>> out = r(torch.rand(2, 3, 64, 64), ["a cat", "a dog"])
    >>> bool(((out.scores >= 0) & (out.scores <= 1)).all())
    True
"""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path
from typing import Any

import torch

from rewardbench import Option, RewardModel, RewardOutput, RewardSpec, WeightSource, register_reward
from rewardbench.weights import resolve_weights

from ._vlm import VLM_OPTIONS, answer_probability, build_qwen_vl, load_qwen_vl
from ._vlm_build import load_tokenizer
from ._vlm_inputs import PixelBudget, chat_text

__all__ = ["VQAScore", "VQA_MODELS", "QUESTION_TEMPLATE", "ANSWER_TEMPLATE", "t2v_metrics_budget"]

# t2v_metrics qwen2vl_model.py / qwen3vl_model.py forward(): the defaults of question_template and answer_template
QUESTION_TEMPLATE = 'Does this figure show "{}"? Please answer Yes or No.'
ANSWER_TEMPLATE = "Yes"

# t2v_metrics' Qwen model tables (QWEN2_VL_MODELS, QWEN3_VL_MODELS): name -> (family, hub id). The dense Instruct
# models only: the MoE ones are another transformers class, the Thinking ones another chat template.
VQA_MODELS: dict[str, tuple[str, str]] = {
    "qwen2.5-vl-3b": ("qwen2_5_vl", "Qwen/Qwen2.5-VL-3B-Instruct"),
    "qwen2.5-vl-7b": ("qwen2_5_vl", "Qwen/Qwen2.5-VL-7B-Instruct"),
    "qwen2.5-vl-32b": ("qwen2_5_vl", "Qwen/Qwen2.5-VL-32B-Instruct"),
    "qwen2.5-vl-72b": ("qwen2_5_vl", "Qwen/Qwen2.5-VL-72B-Instruct"),
    "qwen3-vl-2b": ("qwen3_vl", "Qwen/Qwen3-VL-2B-Instruct"),
    "qwen3-vl-4b": ("qwen3_vl", "Qwen/Qwen3-VL-4B-Instruct"),
    "qwen3-vl-8b": ("qwen3_vl", "Qwen/Qwen3-VL-8B-Instruct"),
    "qwen3-vl-32b": ("qwen3_vl", "Qwen/Qwen3-VL-32B-Instruct"),
}

_PAPER = ("Lin et al., Evaluating Text-to-Visual Generation with Image-to-Text Generation, ECCV 2024, "
          "arXiv 2404.01291")


def t2v_metrics_budget(family: str) -> PixelBudget:
    """qwen-vl-utils 0.0.14 ``fetch_image``'s default budget as t2v_metrics calls it: IMAGE_MIN_TOKEN_NUM = 4 and
    IMAGE_MAX_TOKEN_NUM = 16384 merged patches of side f = image_patch_size x 2 (14 for its Qwen2.5-VL call, 16 for
    Qwen3-VL's).

    Example:
        >>> t2v_metrics_budget("qwen2_5_vl"), t2v_metrics_budget("qwen3_vl").max_pixels
        (PixelBudget(min_pixels=3136, max_pixels=12845056), 16777216)
    """
    f = 28 if family == "qwen2_5_vl" else 32
    return PixelBudget(4 * f * f, 16384 * f * f)


class VQAScore(RewardModel):
    """VQAScore on a Qwen-VL backend: P(answer | image, question) from one batched forward (module docstring)."""

    @classmethod
    def weight_sources(cls, spec: RewardSpec, cfg: dict[str, Any]):
        if cfg.get("tiny"):
            return None
        name = cfg.get("model", spec.options["model"].default)
        return (WeightSource("hub", VQA_MODELS[name][1], note="a transformers checkpoint (hub snapshot)"),) \
            if name in VQA_MODELS else None

    def __init__(self, model: str = "qwen2.5-vl-7b", *, tiny: bool = False, spec: RewardSpec | None = None,
                 question_template: str = QUESTION_TEMPLATE, answer_template: str = ANSWER_TEMPLATE,
                 temperature: float = 1.0, repetition_penalty: float | None = None, min_pixels: int | None = None,
                 max_pixels: int | None = None, device_map: str | None = None, pil_preprocess: bool = False):
        super().__init__(spec)
        self.pil_preprocess = pil_preprocess
        if model not in VQA_MODELS:
            raise ValueError(f"vqascore: unknown model {model!r}; choose from {', '.join(VQA_MODELS)}")
        if "{}" not in question_template:
            raise ValueError("question_template needs a {} for the prompt")
        self.model_name = model
        self.family, self.hub_id = VQA_MODELS[model]
        self.tiny = tiny
        self.question_template, self.answer_template = question_template, answer_template
        self.temperature = float(temperature)
        self.repetition_penalty = repetition_penalty  # None: the checkpoint's generation_config.json (1.0 if absent)
        self.device_map = device_map
        default = t2v_metrics_budget(self.family)
        if tiny:  # tiny images: 4 to 16 merged patches
            default = PixelBudget(default.min_pixels, 4 * default.min_pixels)
        self.budget = PixelBudget(min_pixels or default.min_pixels, max_pixels or default.max_pixels)
        self.vlm: Any = build_qwen_vl(self.family, tiny=True, seed_id=f"vqascore+{model}+tiny") if tiny else None

    # -- weights -----------------------------------------------------------------------------
    def _snapshot(self, weights: str | os.PathLike | None = None):
        return resolve_weights((WeightSource("hub", self.hub_id),), reward=self.spec.name, override=weights)

    def _ensure_built(self) -> None:
        if self.vlm is None:  # pretrained=False at full size: the real architecture with random weights
            from ._vlm_inputs import FAMILIES

            tok, cfg = (resolve_weights((WeightSource("hub", self.hub_id, filename=f),), reward=self.spec.name).path
                        for f in ("tokenizer.json", "config.json"))
            config = FAMILIES[self.family].config_class().from_json_file(str(cfg))
            self.vlm = build_qwen_vl(self.family, tiny=False, seed_id=f"vqascore+{self.model_name}", config=config,
                                     tokenizer=load_tokenizer(tok))

    def _apply(self, fn, recurse=True):
        self._ensure_built()
        return super()._apply(fn, recurse)

    def load_pretrained(self, weights: str | os.PathLike | None = None):
        """Load the backend's transformers checkpoint: its hub snapshot (or ``weights``: a local folder holding
        config.json, tokenizer.json, generation_config.json and the safetensors)."""
        found = self._snapshot(weights)
        folder = Path(found.path)
        if not folder.is_dir():
            folder = folder.parent
        self.vlm = load_qwen_vl(self.family, tokenizer=load_tokenizer(folder / "tokenizer.json"), path=folder,
                                device_map=self.device_map)
        gen = folder / "generation_config.json"
        self.generation_penalty = float(json.loads(gen.read_text()).get("repetition_penalty", 1.0)) \
            if gen.is_file() else 1.0
        self.record_weights(found.provenance)
        return self.provenance()

    @property
    def penalty(self) -> float:
        if self.repetition_penalty is not None:
            return float(self.repetition_penalty)
        return getattr(self, "generation_penalty", 1.0)

    # -- scoring -----------------------------------------------------------------------------
    def questions(self, prompts: list[str]) -> list[str]:
        """The rendered prompts the model reads (chat template around the question)."""
        return [chat_text(self.family, self.question_template.format(p)) for p in prompts]

    def answer_id(self) -> int:
        ids = self.vlm.tokenizer.encode(self.answer_template, add_special_tokens=False).ids
        if not ids:
            raise ValueError(f"answer_template {self.answer_template!r} encodes to no token")
        return ids[0]

    def score(self, pixels, prompts, groups) -> RewardOutput:
        self._ensure_built()
        logits, run = self.vlm.next_token_logits(pixels, self.questions(prompts), self.budget,
                                                 pil=self.pil_preprocess)
        logits = logits / self.temperature
        p = answer_probability(logits, self.answer_id(), run["input_ids"], run["attention_mask"], self.penalty)
        greedy_end = torch.isin(logits.argmax(-1), torch.tensor(self.vlm.eos_ids, device=logits.device))
        return RewardOutput(p, {"t2v_metrics_refuses": greedy_end.detach().cpu().tolist()})


_OPTIONS = {
    **VLM_OPTIONS,
    "question_template": Option(str, QUESTION_TEMPLATE, "the question, {} standing for the prompt (t2v_metrics')"),
    "answer_template": Option(str, ANSWER_TEMPLATE, "the answer whose first token's probability is the score"),
    "temperature": Option(float, 1.0, "logits divided by it before the softmax (t2v_metrics' temperature)",
                          low=1e-6),
    "repetition_penalty": Option(float, None, "the generation config's repetition penalty on the prompt's tokens "
                                              "(default: the checkpoint's generation_config.json)", low=1e-6,
                                 optional=True),
    "min_pixels": Option(int, None, "the image budget's fewest pixels (default: qwen-vl-utils' 4 merged patches)",
                         low=1, optional=True),
    "max_pixels": Option(int, None, "the image budget's most pixels (default: qwen-vl-utils' 16384 merged "
                                    "patches)", low=1, optional=True),
    "pil_preprocess": Option(bool, False, "resize as qwen-vl-utils does: uint8 pixels, PIL bicubic (exact for files; "
                                          "not differentiable)"),
}

# One row per registered backend: name, aliases, default model, licence.
_ROWS = (
    ("vqascore-qwen2.5-vl", ("vqascore-qwen2.5-vl-7b",), "qwen2.5-vl-7b",
     "Apache-2.0 (t2v_metrics; Qwen2.5-VL-7B-Instruct; the 3B is under the Qwen Research licence, the 72B under "
     "the Qwen licence)"),
    ("vqascore-qwen3-vl", ("vqascore-qwen3-vl-8b",), "qwen3-vl-8b", "Apache-2.0 (t2v_metrics; Qwen3-VL)"),
)


def _declare(name: str, aliases: tuple[str, ...], default: str, license: str) -> None:
    family, hub_id = VQA_MODELS[default]
    models = tuple(m for m, (f, _) in VQA_MODELS.items() if f == family)
    spec = RewardSpec(
        name=name, aliases=aliases, category="composition", higher_is_better=True, range=(0.0, 1.0),
        differentiable=True, needs_prompt=True,
        weights=(WeightSource("hub", hub_id, note="a transformers checkpoint (hub snapshot)"),),
        license=license, paper=_PAPER,
        description=f"VQAScore (t2v_metrics' {default}): P('Yes' | image, 'Does this figure show \"prompt\"?') "
                    "from one batched forward",
        tiny_config={"tiny": True},
        options={**_OPTIONS, "model": Option(str, default, "the backend (t2v_metrics' model name)", choices=models)},
    )

    def build(**cfg: Any) -> VQAScore:
        cfg.setdefault("model", default)
        return VQAScore(spec=spec, **cfg)

    build.__name__ = build.__qualname__ = name.replace("-", "_").replace(".", "_")
    params = inspect.signature(VQAScore).parameters.values()
    build.__signature__ = inspect.Signature([p for p in params if p.name != "spec"])
    build.weight_sources = VQAScore.weight_sources
    register_reward(spec=spec)(build)


for _row in _ROWS:
    _declare(*_row)
