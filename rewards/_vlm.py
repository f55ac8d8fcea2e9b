"""One core for the vision-language judges on transformers' Qwen2-VL, Qwen2.5-VL and Qwen3-VL.

A judge (HPSv3, VQAScore's Qwen backends, UnifiedReward) is a `QwenVL` plus what it reads: a hidden state at a
token, the probability of an answer token, or generated text. The core owns what they share:

1. **the chat template** (`chat_text`): one user turn holding the image, then the judge's text, then the
   generation prompt, as each model's ``chat_template`` renders it (Qwen2-VL-7B-Instruct and
   Qwen2.5-VL-7B-Instruct ``chat_template.json``: a default system turn "You are a helpful assistant."; Qwen3-VL's
   template has none). The image becomes ``<|vision_start|>`` + one ``<|image_pad|>`` per merged patch +
   ``<|vision_end|>``, as the processors expand it (transformers ``Qwen2VLProcessor.__call__``);
2. **the image processing** (`QwenVL.preprocess`): the judge's pixel budget (`PixelBudget`: qwen-vl-utils
   ``smart_resize``, sides multiples of patch x merge, pixel count within [min_pixels, max_pixels]), a bicubic
   anti-aliased resize in torch (differentiable; the official pipelines resize a PIL image with bicubic, see
   each judge), the model's mean/std, then the patch layout of ``Qwen2VLImageProcessor`` (the frame repeated
   ``temporal_patch_size`` times, patches grouped by 2x2 merge window);
3. **one batched forward** (`QwenVL.forward_hidden`): every sequence left-padded to the longest, the padding
   masked out, position ids counted from each sequence's first real token, so item i in a batch sees exactly
   what it sees alone. Positions are the model's 3-D multimodal rotary positions (`mrope_positions`, which
   equals transformers' ``get_rope_index`` for one image) or, for HPSv3, plain sequential ones (its official
   model calls the decoder without them; see rewards/hpsv3.py). A judge that reads a probability reads it from
   this one forward (`QwenVL.next_token_logits`): no ``generate`` where one forward gives the same numbers;
4. **batched greedy generation** (`QwenVL.generate`) for judges that parse text: the same left-padded prefill,
   then one token per step for the whole batch with a KV cache, positions continuing after each sequence's
   largest position (what transformers' ``rope_deltas`` does), finished sequences padded;
5. **the text part once**: each judge's text is tokenised once per unique prompt (`QwenVL.text_ids`, an LRU
   cache). The decoder cannot reuse more: every official template puts the image before the judge's text, and a
   causal decoder's text states depend on the image before them.

Tiny configurations (`build_qwen_vl(..., tiny=True)`) are the same classes with two narrow layers per tower and
a byte-level BPE tokenizer (`rewards._vlm_build.tiny_tokenizer`: the Qwen2 pre-tokenizer and the models' special
tokens on a 256-byte alphabet plus a few merges), seeded from the judge's id: offline, deterministic, fast on a CPU.

Dtypes: ``load_reward(..., dtype="bfloat16")`` casts the model; pixels follow the vision tower's dtype and the
judges read their numbers in float32 (logits ``.float()`` before the softmax, as ``generate`` does).
Placement: ``device_map="auto"`` (a judge option) loads a 7B+ model across every visible GPU (transformers'
``from_pretrained(device_map=...)``, accelerate's placement, decoder layers kept whole); the judge then stays where
it was placed (`QwenVL` ignores later device moves, dtype casts still apply). See `load_qwen_vl`.

Where the parts live: the families, the chat template, the image's size and patch layout and the positions (parts
1 and 2, and the positions of part 3) in `rewards._vlm_inputs`; the tokenizers and tiny configurations in
`rewards._vlm_build`; here `QwenVL` (parts 3 to 5), its builders (`build_qwen_vl`, `load_qwen_vl`) and the
probabilities a judge reads (`answer_probability`, `next_token_probs`).
"""

from __future__ import annotations

import hashlib
import inspect
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rewardbench.spec import Option
from rewardbench.transforms import normalize, resize

from ._vlm_build import tiny_config, tiny_tokenizer
from ._vlm_inputs import (
    EOS_TOKENS,
    FAMILIES,
    IMAGE_PAD,
    PAD_TOKEN,
    Family,
    PixelBudget,
    chat_text,
    mrope_positions,
    patchify,
    pil_resize,
    sequential_positions,
    smart_resize,
    torchvision_resize,
)

# the last four are rewards._vlm_inputs' and rewards._vlm_build's, re-exported for the tests that reach them as _vlm.*
__all__ = ["build_qwen_vl", "load_qwen_vl", "QwenVL", "answer_probability", "next_token_probs", "VLM_OPTIONS",
           "PixelBudget", "smart_resize", "chat_text", "tiny_tokenizer"]

# the options every Qwen-VL judge takes
VLM_OPTIONS = {"tiny": Option(bool, False, "a tiny random architecture (tests)"),
               "device_map": Option(str, None, "spread a large model over the visible GPUs when its weights load "
                                               "(transformers/accelerate device_map)", optional=True,
                                    choices=("auto", "balanced", "balanced_low_0", "sequential"))}


# ---------------------------------------------------------------------------------------------
# building


def _seed_for(key: str) -> int:
    return int(hashlib.sha256(key.encode()).hexdigest()[:15], 16)


def build_qwen_vl(family: str, *, tiny: bool = True, seed_id: str = "", extra_special: Sequence[str] = (),
                  config: Any = None, tokenizer: Any = None) -> QwenVL:
    """A `QwenVL` with random weights seeded from ``seed_id`` (same arguments, same weights).

    ``tiny=True``: the family's tiny config and `tiny_tokenizer` (offline). Otherwise pass the real ``config``
    and ``tokenizer`` (a judge's ``load_pretrained`` does); random full-size weights are only built when asked for.
    """
    fam = FAMILIES[family]
    if tiny:
        tokenizer = tiny_tokenizer(extra_special)
        config = tiny_config(fam, tokenizer)
    elif config is None or tokenizer is None:
        raise ValueError("a full-size QwenVL needs its config and tokenizer (the judge's load_pretrained gives them)")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_seed_for(seed_id or fam.key))
        model = fam.model_cls()._from_config(config, attn_implementation="sdpa")
    model.eval().requires_grad_(False)
    return QwenVL(fam, model, tokenizer)


def load_qwen_vl(family: str, *, tokenizer: Any, config: Any = None, state_dict: dict | None = None,
                 path: Any = None, dtype: torch.dtype | str | None = None,
                 device_map: str | dict | None = None) -> QwenVL:
    """A `QwenVL` with real weights, through transformers' ``from_pretrained`` (safetensors; no remote code: the
    class is ours to pick): from a ``state_dict`` already in today's key layout (with its ``config``), or from a
    checkpoint folder ``path`` (a hub snapshot; its config.json unless ``config`` is given). ``dtype``: the
    checkpoint's own by default. ``device_map``: e.g. ``"auto"`` to spread a large model over the visible GPUs (the
    result then ignores device moves)."""
    fam = FAMILIES[family]
    kw: dict[str, Any] = dict(attn_implementation="sdpa")
    if config is not None:
        kw["config"] = config
    if device_map is not None:
        kw["device_map"] = device_map
    if state_dict is not None:
        floats = [v.dtype for v in state_dict.values() if v.is_floating_point()]
        kw["dtype"] = dtype or (floats[0] if floats else torch.float32)
        model = fam.model_cls().from_pretrained(None, state_dict=state_dict, **kw)
    else:
        model = fam.model_cls().from_pretrained(str(path), dtype=dtype or "auto", **kw)
    model.eval().requires_grad_(False)
    vl = QwenVL(fam, model, tokenizer)
    vl.dispatched = device_map is not None
    return vl


# ---------------------------------------------------------------------------------------------
# the runtime


def _cache_kwarg(module: nn.Module) -> str:
    """The name under which the installed transformers takes a KV cache (``past_key_values`` before 5.x's rename
    to ``cache``)."""
    params = inspect.signature(module.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


class QwenVL(nn.Module):
    """A transformers Qwen-VL model with its tokenizer, template, preprocessing and batched runs (module docstring).

    ``model``: a ``*ForConditionalGeneration``; ``tokenizer``: a ``tokenizers.Tokenizer`` holding the special
    tokens. ``budget`` is given per call (each judge has its own).
    """

    def __init__(self, family: Family, model: nn.Module, tokenizer: Any, text_cache_size: int = 4096):
        super().__init__()
        self.family = family
        self.model = model
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.token_to_id(PAD_TOKEN)
        self.image_token_id = tokenizer.token_to_id(IMAGE_PAD)
        self.eos_ids = tuple(tokenizer.token_to_id(t) for t in EOS_TOKENS)
        self._text_cache: OrderedDict[str, list[int]] = OrderedDict()
        self._text_cache_size = text_cache_size
        self.text_calls = 0  # tokenizer calls (each unique text once)
        self.dispatched = False  # spread over GPUs by accelerate: device moves are ignored

    # -- placement ---------------------------------------------------------------------------
    def _apply(self, fn, recurse=True):
        if not self.dispatched:
            return super()._apply(fn, recurse)
        # a dispatched model stays on its devices: apply only what keeps every tensor's device (a dtype cast)
        for dev in {p.device for p in self.model.parameters()}:
            probe = torch.zeros(1, device=dev)
            if fn(probe).device != probe.device:
                return self
        return super()._apply(fn, recurse)

    @property
    def input_device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    @property
    def vision_dtype(self) -> torch.dtype:
        return next(self.visual.parameters()).dtype

    @property
    def visual(self) -> nn.Module:
        return self.model.model.visual

    # -- inputs ------------------------------------------------------------------------------
    def preprocess(self, pixels: torch.Tensor, budget: PixelBudget, *,
                   pil: bool | str = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixels ``[B,3,H,W]`` in [0, 1] → (``pixel_values``, ``image_grid_thw``): resized to the budget's size
        (bicubic, anti-aliased, clamped to [0, 1] as a uint8 resize is), normalised, patchified. Differentiable.
        ``pil=True``: the official pipelines' resize instead (pixels rounded to uint8, PIL bicubic: qwen-vl-utils
        ``fetch_image``, HPSv3's ``process_vision_info``); ``pil="torchvision"``: transformers' fast (torchvision)
        image processor's (`torchvision_resize`); both exact for images read from files, not differentiable."""
        fam = self.family
        h, w = smart_resize(pixels.shape[-2], pixels.shape[-1], fam.factor, budget.min_pixels, budget.max_pixels)
        if pil == "torchvision":
            x = torchvision_resize(pixels, (h, w))
        else:
            x = pil_resize(pixels, (h, w)) if pil else resize(pixels.float(), (h, w))
        x = normalize(x, fam.mean, fam.std)
        pv, grid = patchify(x, fam.patch_size, fam.merge_size, fam.temporal_patch_size)
        return pv.to(device=next(self.visual.parameters()).device, dtype=self.vision_dtype), grid

    def text_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of ``texts`` (no special tokens added; special tokens in the text are recognised), each
        unique text tokenised once and remembered (LRU)."""
        out = []
        for t in texts:
            ids = self._text_cache.get(t)
            if ids is None:
                ids = self.tokenizer.encode(t, add_special_tokens=False).ids
                self.text_calls += 1
                self._text_cache[t] = ids
                while len(self._text_cache) > self._text_cache_size:
                    self._text_cache.popitem(last=False)
            else:
                self._text_cache.move_to_end(t)
            out.append(ids)
        return out

    def sequences(self, prompts: Sequence[str], grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rendered prompts (each with one ``<|image_pad|>``, `chat_text`) → left-padded ``input_ids`` and
        ``attention_mask`` ``[B,L]`` with each image placeholder expanded to its merged patch count."""
        seqs = []
        for i, prompt in enumerate(prompts):
            before, sep, after = prompt.partition(IMAGE_PAD)
            if not sep or IMAGE_PAD in after:
                raise ValueError(f"prompt {i} must hold exactly one {IMAGE_PAD}")
            n = int(grid[i].prod()) // self.family.merge_size ** 2
            head, tail = self.text_ids([before, after])
            seqs.append(head + [self.image_token_id] * n + tail)
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, width - len(s):] = torch.tensor(s)
            mask[i, width - len(s):] = 1
        dev = self.input_device
        return ids.to(dev), mask.to(dev)

    def positions(self, ids: torch.Tensor, mask: torch.Tensor, grid: torch.Tensor, kind: str) -> torch.Tensor:
        if kind == "mrope":
            return mrope_positions(ids, mask, self.image_token_id, grid, self.family.merge_size)
        if kind == "sequential":
            return sequential_positions(mask)
        raise ValueError(f"positions must be 'mrope' or 'sequential', got {kind!r}")

    # -- one forward -------------------------------------------------------------------------
    def forward_hidden(self, pixels: torch.Tensor, prompts: Sequence[str], budget: PixelBudget, *,
                       positions: str = "mrope", cache: Any = None, pil: bool | str = False) -> dict[str, torch.Tensor]:
        """One batched, left-padded forward of the decoder: ``hidden`` ``[B,L,D]`` (after the final norm),
        ``input_ids``, ``attention_mask``, ``position_ids``. ``prompts`` are rendered (`chat_text`); ``pil``: see
        `preprocess`."""
        pv, grid = self.preprocess(pixels, budget, pil=pil)
        ids, mask = self.sequences(prompts, grid)
        pos = self.positions(ids, mask, grid, positions).to(ids.device)
        kwargs = {} if cache is None else {_cache_kwarg(self.model.model): cache, "use_cache": True}
        out = self.model.model(input_ids=ids, attention_mask=mask, position_ids=pos, pixel_values=pv,
                               image_grid_thw=grid.to(ids.device), **kwargs)
        return {"hidden": out.last_hidden_state, "input_ids": ids, "attention_mask": mask, "position_ids": pos}

    def next_token_logits(self, pixels: torch.Tensor, prompts: Sequence[str], budget: PixelBudget,
                          positions: str = "mrope",
                          pil: bool | str = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The logits of the token after each prompt ``[B,V]`` (float32), from one forward; with the run's
        ``input_ids`` and ``attention_mask`` (`forward_hidden`)."""
        run = self.forward_hidden(pixels, prompts, budget, positions=positions, pil=pil)
        last = run["hidden"][:, -1]  # left padding: every sequence ends at the last column
        return self.model.lm_head(last).float(), run

    def shared_prefix_logits(self, pixels: torch.Tensor, prompts: Sequence[str], owners: Sequence[int],
                             budget: PixelBudget, pil: bool | str = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Next-token logits ``[P,V]`` (float32) of ``P`` rendered prompts about ``B`` images (``owners[p]``: the
        image of prompt p), each image read once: its prefix (the template up to ``<|vision_end|>``, the same for
        all its prompts) runs once per image with a KV cache, then every prompt's remaining text runs on a copy of
        its image's cache, right-padded. The same numbers as `next_token_logits` on each (image, prompt) pair, with
        the image's tokens through the decoder once instead of once per prompt. Returns the logits and each
        prompt's token ids ``[P,L]`` (padding replaced by a real token of the row, for a repetition penalty).
        3-D (multimodal) positions only."""
        from transformers import DynamicCache

        heads, tails = {}, []
        for p, o in zip(prompts, owners):
            before, sep, after = p.partition(IMAGE_PAD)
            end = "<|vision_end|>"
            if not sep or not after.startswith(end):
                raise ValueError(f"a prompt must hold {IMAGE_PAD}{end}")
            if heads.setdefault(int(o), before + IMAGE_PAD + end) != before + IMAGE_PAD + end:
                raise ValueError(f"the prompts of image {o} differ before the text that follows the image")
            tails.append(after[len(end):])
        if sorted(heads) != list(range(pixels.shape[0])):
            raise ValueError("every image needs at least one prompt")
        cache = DynamicCache()
        run = self.forward_hidden(pixels, [heads[i] for i in range(pixels.shape[0])], budget, cache=cache, pil=pil)
        dev = run["input_ids"].device
        own = torch.as_tensor(list(owners), device=dev)
        cache.batch_select_indices(own)  # (P, heads, prefix, d): each prompt its image's keys and values
        prefix_ids, prefix_mask = run["input_ids"][own], run["attention_mask"][own]
        start = run["position_ids"].amax(dim=(0, 2))[own] + 1  # (P,): text after the image continues from here
        ids = self.text_ids(tails)
        width = max(len(t) for t in ids)
        sids = torch.full((len(ids), width), self.pad_id, dtype=torch.long, device=dev)
        smask = torch.zeros((len(ids), width), dtype=torch.long, device=dev)
        for i, t in enumerate(ids):  # right padding: no real token attends to the padding after it
            sids[i, :len(t)] = torch.tensor(t, device=dev)
            smask[i, :len(t)] = 1
        pos = (start[:, None] + torch.arange(width, device=dev)[None]).unsqueeze(0).expand(3, -1, -1)
        mask = torch.cat([prefix_mask, smask], dim=1)
        out = self.model.model(input_ids=sids, attention_mask=mask, position_ids=pos, use_cache=True,
                               **{_cache_kwarg(self.model.model): cache})
        last = torch.tensor([len(t) - 1 for t in ids], device=dev)
        hidden = out.last_hidden_state[torch.arange(len(ids), device=dev), last]
        full = torch.cat([prefix_ids, sids], dim=1)
        full = torch.where(mask.bool(), full, sids[:, :1])  # padding points at a real token of its row
        return self.model.lm_head(hidden).float(), full

    # -- generation --------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, pixels: torch.Tensor, prompts: Sequence[str], budget: PixelBudget, *,
                 max_new_tokens: int = 512, pil: bool | str = False) -> list[str]:
        """Greedy decoding for the whole batch (argmax each step, as ``generate(do_sample=False)`` and a server at
        temperature 0), stopping a sequence at its first end token; the texts without special tokens."""
        from transformers import DynamicCache

        cache = DynamicCache()
        run = self.forward_hidden(pixels, prompts, budget, cache=cache, pil=pil)
        mask, pos = run["attention_mask"], run["position_ids"]
        b = mask.shape[0]
        next_pos = pos.amax(dim=(0, 2)) + 1  # (B,): text after the prompt continues after its largest position
        logits = self.model.lm_head(run["hidden"][:, -1]).float()
        out = torch.empty((b, 0), dtype=torch.long, device=mask.device)
        done = torch.zeros(b, dtype=torch.bool, device=mask.device)
        eos = torch.tensor(self.eos_ids, device=mask.device)
        for _ in range(max_new_tokens):
            tok = logits.argmax(-1).masked_fill(done, self.pad_id)
            out = torch.cat([out, tok[:, None]], dim=1)
            done |= torch.isin(tok, eos)
            if bool(done.all()):
                break
            mask = torch.cat([mask, torch.ones((b, 1), dtype=mask.dtype, device=mask.device)], dim=1)
            step = self.model.model(input_ids=tok[:, None], attention_mask=mask,
                                    position_ids=next_pos.view(1, b, 1).expand(3, b, 1),
                                    use_cache=True, **{_cache_kwarg(self.model.model): cache})
            next_pos = next_pos + 1
            logits = self.model.lm_head(step.last_hidden_state[:, -1]).float()
        texts = []
        for row in out.tolist():
            ends = [k for k, t in enumerate(row) if t in self.eos_ids]
            texts.append(self.tokenizer.decode(row[:ends[0]] if ends else row, skip_special_tokens=True))
        return texts


def answer_probability(logits: torch.Tensor, token_id: int, input_ids: torch.Tensor | None = None,
                       attention_mask: torch.Tensor | None = None, repetition_penalty: float = 1.0) -> torch.Tensor:
    """P(token) ``[B]`` from next-token logits ``[B,V]``: `next_token_probs` at ``token_id``."""
    return next_token_probs(logits, input_ids, attention_mask, repetition_penalty)[:, token_id]


def next_token_probs(logits: torch.Tensor, input_ids: torch.Tensor | None = None,
                     attention_mask: torch.Tensor | None = None, repetition_penalty: float = 1.0) -> torch.Tensor:
    """The next-token distribution ``[B,V]`` from logits ``[B,V]``: softmax over the whole vocabulary in float32.
    With ``repetition_penalty`` != 1 the logits of tokens already in a sequence's real (unpadded) ``input_ids`` are
    first divided (positive) or multiplied (negative) by it, as transformers' ``RepetitionPenaltyLogitsProcessor``
    does inside ``generate`` (whose ``output_scores`` are those processed logits) on an unpadded sequence."""
    logits = logits.float()
    if repetition_penalty != 1.0:
        if input_ids is None:
            raise ValueError("a repetition penalty needs the input ids")
        if attention_mask is not None:  # padding is no token of the sequence: point it at its last real token
            input_ids = torch.where(attention_mask.bool(), input_ids, input_ids[:, -1:])
        seen = torch.gather(logits, 1, input_ids)
        seen = torch.where(seen < 0, seen * repetition_penalty, seen / repetition_penalty)
        logits = logits.scatter(1, input_ids, seen)
    return F.softmax(logits, dim=-1)
