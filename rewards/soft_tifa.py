"""Soft-TIFA, GenEval 2's evaluator (Kamath et al. 2025, arXiv 2512.16853): per atom of the prompt, the VQA model's
probability of the expected answer; per image their geometric mean (Soft-TIFA GM, the prompt-level score) and
arithmetic mean (Soft-TIFA AM, the atom-level one).

As github.com/facebookresearch/GenEval2 @ a6e82d2 ``evaluation.py`` computes it (``soft_tifa``,
``send_message_with_image``):

1. the prompt's questions from GenEval 2's data (`rewardbench.geneval2`: ``vqa_list``, looked up by the prompt's
   exact text), each asked as ``'{question} Answer in one word.'`` in one user turn ``[image, text]`` rendered by
   Qwen3-VL-8B-Instruct's chat template with the generation prompt;
2. the processor's own image handling: Qwen3-VL-8B-Instruct's ``preprocessor_config.json`` budget
   (``shortest_edge`` 65536 to ``longest_edge`` 16777216 pixels, factor 32), mean/std 0.5;
3. ``generate(max_new_tokens=1, do_sample=False, output_scores=True)``, the softmax of that step's scores, and the
   sum of the probabilities at the first token of each written form of the answer
   (`rewardbench.geneval2.answer_forms`: for "How many" questions the number word, capitalised, with a leading
   space, and its digits; for the others Yes/yes with and without a space). Forms are summed as listed: two forms
   whose first tokens coincide count that token twice, as the official loop does;
4. per prompt the arithmetic mean (``sum(s)/len(s)``) and the geometric mean (``scipy.stats.gmean``) of its
   questions' probabilities; the benchmark's number is 100 x the mean over prompts (`rewardbench.benchmarks.atoms`
   adds the per-skill and per-atom-count rows of ``soft_tifa_analysis.py``).

Here each image of a batch goes through the vision tower and the decoder once: the template up to
``<|vision_end|>`` is the same for all its questions, so it runs once per image with a KV cache and each question's
remaining text runs on a copy of that cache (`rewards._vlm.QwenVL.shared_prefix_logits`; ``share_image=False``: one
full left-padded sequence per (image, question) pair). Both give the logits of ``generate``'s first step; the
checkpoint's ``generation_config.json`` repetition penalty applies as in `rewards.vqascore` (1.0 in
Qwen3-VL-8B-Instruct's). The score is GM (``mean="am"`` for AM); ``details`` hold both,
each question's probability (``atom_scores``), its skill (``atom_skills``) and the prompt's ``atom_count``.

Not exact by default: the resize (torch's anti-aliased bicubic on the float image, differentiable). The official
processor resizes the decoded file: Qwen3-VL-8B-Instruct's ``preprocessor_config.json`` names
``Qwen2VLImageProcessorFast``, so on the transformers GenEval 2 pins (4.57.0) that is torchvision's anti-aliased
bicubic on the uint8 tensor, which ``processor_resize=True`` does (`rewards._vlm_inputs.torchvision_resize`; tested
equal to transformers' fast processor); ``pil_preprocess=True`` resizes with PIL as the slow processor does.

A prompt that is not in GenEval 2's data is a per-row error, unless ``questions`` gives the questions to ask of every
image (the tiny test configuration does).

Example:
    >>> import torch, rewardbench
    >>> r = rewardbench.load_reward("soft-tifa", pretrained=False, tiny=True,
    ...                             questions=[["Is there a cat in the image?", "Yes", "object"]])
    >>> out = r(torch.rand(2, 3, 64, 64), ["a cat", "a cat"])
    >>> out.details["atom_skills"]
    [['object'], ['object']]
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from rewardbench import Option, RewardOutput, RewardSpec, WeightSource, register_reward
from rewardbench.geneval2 import LICENSE as DATA_LICENSE
from rewardbench.geneval2 import PAPER, GenEval2Item, answer_forms, read_geneval2

from ._vlm import VLM_OPTIONS, next_token_probs
from .vqascore import VQA_MODELS, VQAScore

__all__ = ["SoftTIFA", "SOFT_TIFA_TEMPLATE", "QWEN3_VL_PROCESSOR_PIXELS"]

SOFT_TIFA_TEMPLATE = "{} Answer in one word."  # evaluation.py soft_tifa
# Qwen/Qwen3-VL-8B-Instruct preprocessor_config.json "size": shortest_edge / longest_edge (pixels)
QWEN3_VL_PROCESSOR_PIXELS = (65536, 16777216)


class SoftTIFA(VQAScore):
    """Soft-TIFA on a Qwen3-VL model: the probability of each atom's answer, their geometric (default) or arithmetic
    mean per image (module docstring)."""

    def __init__(self, model: str = "qwen3-vl-8b", *, tiny: bool = False, spec: RewardSpec | None = None,
                 data: str | None = None, questions: list | None = None, mean: str = "gm", max_batch: int = 64,
                 repetition_penalty: float | None = None, min_pixels: int | None = None,
                 max_pixels: int | None = None, device_map: str | None = None, pil_preprocess: bool = False,
                 processor_resize: bool = False, share_image: bool = True):
        if mean not in ("gm", "am"):
            raise ValueError(f"soft-tifa: mean must be 'gm' or 'am', got {mean!r}")
        lo, hi = (None, None) if tiny else QWEN3_VL_PROCESSOR_PIXELS  # tiny: the tiny VQAScore budget
        super().__init__(model, tiny=tiny, spec=spec, question_template=SOFT_TIFA_TEMPLATE,
                         repetition_penalty=repetition_penalty, min_pixels=min_pixels or lo,
                         max_pixels=max_pixels or hi, device_map=device_map, pil_preprocess=pil_preprocess)
        if processor_resize and pil_preprocess:
            raise ValueError("soft-tifa: processor_resize and pil_preprocess are two resizes; choose one")
        if processor_resize:  # evaluation.py's processor on transformers >= 4.57: the fast (torchvision) one
            self.pil_preprocess = "torchvision"
        self.data, self.mean, self.max_batch, self.share_image = data, mean, int(max_batch), bool(share_image)
        self.fixed = _fixed_item(questions) if questions is not None else None
        self._items: dict[str, GenEval2Item] | None = None
        self._data_error: Exception | None = None

    # -- the questions -----------------------------------------------------------------------
    def item(self, prompt: str) -> GenEval2Item:
        """The GenEval 2 item asked of an image of ``prompt`` (``questions``, else the data's item of that text)."""
        if self.fixed is not None:
            return self.fixed
        if self._items is None:
            if self._data_error is not None:  # read once: an offline URL fails every later call at once
                raise self._data_error
            try:
                self._items = {it.prompt: it for it in read_geneval2(self.data)}
            except (OSError, ValueError) as e:
                self._data_error = e
                raise
        found = self._items.get(prompt)
        if found is None:
            raise ValueError(f"soft-tifa: prompt {prompt!r} is not a GenEval 2 prompt (no questions for it in "
                             f"{self.data or 'the official data'}); score GenEval 2's prompts, or pass questions=")
        return found

    def form_ids(self, question: str, answer: str) -> list[int]:
        """The first token of each written form of the answer (``tokenizer.encode(form)[0]``; Qwen adds no special
        token), duplicates kept."""
        return [self.vlm.tokenizer.encode(f, add_special_tokens=False).ids[0] for f in answer_forms(question, answer)]

    # -- scoring -----------------------------------------------------------------------------
    def _chunks(self, items: list[GenEval2Item]) -> list[list[int]]:
        """Consecutive images whose questions fit in ``max_batch`` pairs (an image with more questions alone)."""
        chunks, cur, n = [], [], 0
        for i, it in enumerate(items):
            if cur and n + len(it.vqa) > self.max_batch:
                chunks.append(cur)
                cur, n = [], 0
            cur.append(i)
            n += len(it.vqa)
        return chunks + [cur]

    def _pair_logits(self, pixels: torch.Tensor, chunk: list[tuple[int, str, str]]):
        """Next-token logits of (image, question) pairs and the token ids a repetition penalty reads."""
        if self.share_image:  # each image through the decoder once, its questions on copies of its KV cache
            owners = sorted({i for i, _, _ in chunk})
            local = {i: k for k, i in enumerate(owners)}
            idx = torch.tensor(owners, device=pixels.device)
            return self.vlm.shared_prefix_logits(pixels.index_select(0, idx), self.questions([q for _, q, _ in chunk]),
                                                 [local[i] for i, _, _ in chunk], self.budget, pil=self.pil_preprocess)
        idx = torch.tensor([i for i, _, _ in chunk], device=pixels.device)
        logits, run = self.vlm.next_token_logits(pixels.index_select(0, idx), self.questions([q for _, q, _ in chunk]),
                                                 self.budget, pil=self.pil_preprocess)
        ids = torch.where(run["attention_mask"].bool(), run["input_ids"], run["input_ids"][:, -1:])
        return logits, ids

    def score(self, pixels, prompts, groups) -> RewardOutput:
        self._ensure_built()
        items = [self.item(p) for p in prompts]  # an unknown prompt fails before any forward
        probs = []
        for images in self._chunks(items):
            chunk = [(i, q, a) for i in images for q, a in items[i].vqa]  # (image, question, answer)
            logits, seq = self._pair_logits(pixels, chunk)
            dist = next_token_probs(logits / self.temperature, seq, None, self.penalty)
            ids = [self.form_ids(q, a) for _, q, a in chunk]
            rows = torch.arange(len(chunk), device=dist.device).repeat_interleave(torch.tensor([len(x) for x in ids],
                                                                                               device=dist.device))
            flat = torch.tensor([t for x in ids for t in x], device=dist.device)
            probs.append(torch.zeros(len(chunk), device=dist.device).index_add(0, rows, dist[rows, flat]))
        p = torch.cat(probs)  # (pairs,)
        per_image = list(torch.split(p, [len(it.vqa) for it in items]))
        am = torch.stack([s.mean() for s in per_image])
        gm = torch.stack([torch.exp(torch.log(s).mean()) for s in per_image])  # scipy gmean; a 0 gives 0
        return RewardOutput(gm if self.mean == "gm" else am, {
            "soft_tifa_am": am.detach().cpu(), "soft_tifa_gm": gm.detach().cpu(),
            "atom_scores": [s.detach().cpu().tolist() for s in per_image],
            "atom_skills": [list(it.skills) for it in items],
            "atom_count": torch.tensor([it.atom_count for it in items])})


def _fixed_item(questions: list) -> GenEval2Item:
    """``questions`` = [[question, answer] or [question, answer, skill], ...] as one item asked of every image."""
    rows = []
    for q in questions:
        if not isinstance(q, (list, tuple)) or len(q) not in (2, 3) or not all(isinstance(x, str) for x in q):
            raise ValueError(f"soft-tifa: questions are [question, answer] or [question, answer, skill] strings, "
                             f"got {q!r}")
        rows.append((q[0], q[1], q[2] if len(q) == 3 else "unknown"))
    if not rows:
        raise ValueError("soft-tifa: questions= needs at least one question")
    return GenEval2Item("(questions=)", len(rows), tuple((q, a) for q, a, _ in rows), tuple(s for _, _, s in rows))


_MODELS = tuple(m for m, (family, _) in VQA_MODELS.items() if family == "qwen3_vl")
_SPEC = RewardSpec(
    name="soft-tifa", aliases=("soft-tifa-gm", "geneval2-soft-tifa"), category="composition", higher_is_better=True,
    range=(0.0, 1.0), differentiable=True, needs_prompt=True,
    weights=(WeightSource("hub", VQA_MODELS["qwen3-vl-8b"][1], note="a transformers checkpoint (hub snapshot)"),),
    license=f"Apache-2.0 (Qwen3-VL); the questions: {DATA_LICENSE}; GenEval 2's code CC BY-NC 4.0",
    paper=PAPER,
    description="GenEval 2's Soft-TIFA (Qwen3-VL-8B): per-atom answer probabilities from one batched forward, "
                "their geometric mean per image",
    tiny_config={"tiny": True, "questions": [["Is there a cat in the image?", "Yes", "object"],
                                             ["How many dogs are in the image?", "two", "count"]]},
    options={**VLM_OPTIONS,
             "model": Option(str, "qwen3-vl-8b", "the Qwen3-VL model (GenEval 2 uses the 8B)", choices=_MODELS),
             "data": Option(str, None, "geneval2_data.jsonl: a local path or URL (default: the official URL)",
                            optional=True),
             "questions": Option(list, None, "ask these [question, answer(, skill)] of every image instead of the "
                                             "prompt's GenEval 2 questions", optional=True),
             "mean": Option(str, "gm", "the score: geometric (gm, prompt-level) or arithmetic (am) mean",
                            choices=("gm", "am")),
             "max_batch": Option(int, 64, "(image, question) pairs per forward (an image with more: alone)", low=1),
             "share_image": Option(bool, True, "each image through the decoder once, its questions on copies of its "
                                               "KV cache (False: one full sequence per question)"),
             "repetition_penalty": Option(float, None, "the generation config's repetition penalty (default: the "
                                                       "checkpoint's generation_config.json)", low=1e-6,
                                          optional=True),
             "min_pixels": Option(int, None, "the fewest pixels (default: the processor's 65536)", low=1,
                                  optional=True),
             "max_pixels": Option(int, None, "the most pixels (default: the processor's 16777216)", low=1,
                                  optional=True),
             "pil_preprocess": Option(bool, False, "resize uint8 pixels with PIL's bicubic, as the slow processor "
                                                   "(not differentiable)"),
             "processor_resize": Option(bool, False, "resize uint8 pixels as evaluation.py's processor does on "
                                                     "transformers 4.57 (fast, torchvision bicubic with antialias; not "
                                                     "differentiable)")},
)


def soft_tifa(**cfg: Any) -> SoftTIFA:
    """Soft-TIFA (module docstring); ``load_reward("soft-tifa", data="geneval2_data.jsonl")``."""
    return SoftTIFA(spec=_SPEC, **cfg)


soft_tifa.__signature__ = inspect.Signature([p for p in inspect.signature(SoftTIFA).parameters.values()
                                             if p.name != "spec"])
soft_tifa.weight_sources = SoftTIFA.weight_sources
register_reward(spec=_SPEC)(soft_tifa)
