"""`RewardModel`: the one interface every reward implements.

A reward is an ``nn.Module`` with a declarative ``spec`` and a ``forward(images, prompts, groups)``
that returns a `RewardOutput`. Subclasses implement `RewardModel.score` on ready pixels; the base
class converts inputs, validates prompts and groups, and checks the output.

Example (a complete reward)::

    >>> import torch
    >>> from rewardbench import RewardModel, RewardOutput, RewardSpec
    >>> class Brightness(RewardModel):
    ...     spec = RewardSpec(name="brightness", category="baseline", range=(0.0, 1.0), differentiable=True)
    ...     def score(self, pixels, prompts, groups):
    ...         return RewardOutput(pixels.mean(dim=(1, 2, 3)))
    >>> Brightness()(torch.ones(2, 3, 8, 8)).scores
    tensor([1., 1.])
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from .data import is_blank
from .images import as_pixels, size_groups, to_image_batch
from .provenance import NO_WEIGHTS, NOT_LOADED, Provenance, describe
from .spec import RewardOutput, RewardSpec

PixelInput = Any  # Tensor [B,3,H,W] | sequence of paths / PIL / arrays / tensors


class RewardModel(nn.Module, abc.ABC):
    """Base class of every reward. See the module docstring for an example."""

    spec: ClassVar[RewardSpec]
    # If True, `score` may receive a list of [3,H,W] tensors when a batch mixes image sizes;
    # otherwise image-level rewards are called once per size and group rewards get resized pixels.
    accepts_ragged: ClassVar[bool] = False

    def __init__(self, spec: RewardSpec | None = None) -> None:
        super().__init__()
        if spec is not None:
            self.spec = spec  # instance-level spec, e.g. for composites or one class serving several names
        # a non-persistent buffer that follows .to(): tells the device even for parameter-free rewards
        self.register_buffer("_rb_anchor", torch.zeros(0), persistent=False)
        self._recorded: tuple[Provenance, ...] = (NOT_LOADED,) if self.spec.weights else (NO_WEIGHTS,)

    # -- properties -------------------------------------------------------------------------
    def provenance(self) -> list[Provenance]:
        """Where this reward's weights came from, one `rewardbench.provenance.Provenance` per part: what
        `load_pretrained` / `load_reward` recorded (`record_weights`). Rewards whose weights are fixed
        whatever ``pretrained=`` says (bundled models with no random variant) override it with the sources
        they always run."""
        return list(self._recorded)

    def record_weights(self, *provenance: Provenance) -> None:
        """Record where the weights just loaded came from (what `provenance` reports by default)."""
        if not provenance or not all(isinstance(p, Provenance) for p in provenance):
            raise TypeError(f"record_weights takes Provenance values, got {provenance!r}")
        self._recorded = tuple(provenance)

    @property
    def weights_used(self) -> str:
        """`provenance` as text for people ("hub:...", "random init ...", "bundled:..."); decisions read
        `provenance`'s fields."""
        return describe(self.provenance())

    @property
    def device(self) -> torch.device:
        return self._rb_anchor.device

    @property
    def dtype(self) -> torch.dtype:
        for p in self.parameters():
            if p.is_floating_point():
                return p.dtype
        return torch.float32

    # -- the contract -----------------------------------------------------------------------
    @abc.abstractmethod
    def score(self, pixels: torch.Tensor, prompts: list[str], groups: torch.Tensor | None) -> RewardOutput:
        """Score float pixels ``[B,3,H,W]`` in [0, 1] on ``self.device``. Implemented by each reward."""

    def forward(self, images: PixelInput, prompts: Sequence[str] | str | None = None,
                groups: torch.Tensor | Sequence[int] | None = None) -> RewardOutput:
        """Score a batch: ``images`` (float ``[B,3,H,W]`` in [0, 1], or paths, PIL images, arrays, tensors
        of any sizes), one prompt per image (or one string for all; ignored by prompt-free rewards), and
        optionally ``groups`` (one id per image) for group-level rewards. Returns `RewardOutput` with
        float32 ``scores`` ``[B]`` and per-image ``details``.

        Example:
            >>> import torch, rewardbench
            >>> reward = rewardbench.load_reward("jpeg-incompressibility")
            >>> out = reward(torch.zeros(2, 3, 32, 32), ["a black square"] * 2)
            >>> out.scores.dtype, tuple(out.scores.shape), sorted(out.details)
            (torch.float32, (2,), ['jpeg_kb'])
        """
        pixels = as_pixels(images, device=self.device)  # a list when the sizes differ (`images.size_groups`)
        n = pixels.shape[0] if isinstance(pixels, torch.Tensor) else len(pixels)
        prompt_list, group_t = self.check_inputs(prompts, groups, n)
        if isinstance(pixels, list) and not self.accepts_ragged:
            if self.spec.granularity != "group":
                return self._score_by_size(pixels, prompt_list)
            # a group is scored in one call: its images at one size (the largest height and width)
            h = max(t.shape[-2] for t in pixels)
            w = max(t.shape[-1] for t in pixels)
            pixels = to_image_batch(pixels, size=(h, w), device=self.device)
        return self.check_output(self.score(pixels, prompt_list, group_t), n, group_t)

    def _score_by_size(self, pixels: list[torch.Tensor], prompts: list[str]) -> RewardOutput:
        """Image-level reward on a batch of mixed sizes: one call per size, results put back in order."""
        scores: list[torch.Tensor | None] = [None] * len(pixels)
        details: dict[str, list[Any]] = {}
        for idx in size_groups(pixels):
            part = self.check_output(
                self.score(torch.stack([pixels[i] for i in idx]), [prompts[i] for i in idx], None), len(idx))
            for j, i in enumerate(idx):
                scores[i] = part.scores[j]
            for k, v in part.details.items():
                col = details.setdefault(k, [None] * len(pixels))
                for j, i in enumerate(idx):
                    col[i] = v[j]
        out_details = {k: torch.stack(v) if all(isinstance(x, torch.Tensor) for x in v) else v
                       for k, v in details.items()}
        return RewardOutput(torch.stack(scores), out_details)  # type: ignore[arg-type]

    def check_inputs(self, prompts: Sequence[str] | str | None, groups: torch.Tensor | Sequence[int] | None,
                     n: int) -> tuple[list[str], torch.Tensor | None]:
        """The contract's checks of ``n`` images' prompts and groups (`forward` and
        `BackboneReward.score_features` both run them): the prompt list and the group ids to score with."""
        return self.check_prompts(prompts, n), self._check_groups(groups, n)

    def refuses_prompt(self, prompt: Any) -> bool:
        """Whether this reward cannot score an image with ``prompt``: it needs prompts and this one is
        empty (`rewardbench.data.is_blank`). The harness asks it per row; `check_prompts` per batch."""
        return self.spec.needs_prompt and is_blank(prompt)

    def check_prompts(self, prompts: Sequence[str] | str | None, n: int) -> list[str]:
        if prompts is None:
            if self.spec.needs_prompt:
                raise ValueError(f"reward {self.spec.name!r} needs prompts: pass one prompt per image")
            return [""] * n
        if isinstance(prompts, str):
            prompts = [prompts] * n
        prompts = list(prompts)
        if len(prompts) != n:
            raise ValueError(f"reward {self.spec.name!r}: got {n} images but {len(prompts)} prompts")
        for i, p in enumerate(prompts):
            if not isinstance(p, str):
                raise ValueError(f"prompts[{i}]: expected str, got {type(p).__name__}")
            if self.refuses_prompt(p):
                raise ValueError(f"prompts[{i}]: empty prompt, but reward {self.spec.name!r} needs a prompt")
        return prompts

    def _check_groups(self, groups: torch.Tensor | Sequence[int] | None, n: int) -> torch.Tensor | None:
        if groups is None:
            if self.spec.granularity == "group":
                return torch.zeros(n, dtype=torch.long, device=self.device)  # the whole batch is one group
            return None
        g = torch.as_tensor(groups, device=self.device)
        if g.ndim != 1 or g.shape[0] != n:
            raise ValueError(f"groups: expected a 1-D tensor of length {n}, got shape {tuple(g.shape)}")
        if g.is_floating_point():
            raise ValueError("groups: expected integer group ids")
        return g.long()

    def check_output(self, out: RewardOutput, n: int, groups: torch.Tensor | None = None) -> RewardOutput:
        """The contract's checks of what a reward returned for ``n`` images (with ``groups``: its group
        details name groups of the call)."""
        if not isinstance(out, RewardOutput):
            raise TypeError(f"reward {self.spec.name!r}: score() must return a RewardOutput, got {type(out).__name__}")
        if out.scores.shape != (n,):
            raise RuntimeError(f"reward {self.spec.name!r}: returned scores of shape {tuple(out.scores.shape)} "
                               f"for {n} images")
        if out.group_details and groups is not None:
            unknown = set(out.group_details) - set(groups.detach().cpu().tolist())
            if unknown:
                raise RuntimeError(f"reward {self.spec.name!r}: group details for groups {sorted(unknown)} that the "
                                   "call did not have")
        return out

    # -- weights ----------------------------------------------------------------------------
    @classmethod
    def weight_sources(cls, spec: RewardSpec, cfg: dict[str, Any]) -> Sequence[Any] | None:
        """The weight sources `load_pretrained` needs for this build config, looked up by
        `load_reward` BEFORE the (possibly slow) build so that a missing weight fails at once.

        The default vouches for ``spec.weights`` only in the default configuration; a reward whose
        config changes its sources (e.g. another detector size) overrides this. ``None`` skips the check.
        """
        return spec.weights if not cfg else None

    def load_pretrained(self, weights: str | os.PathLike | None = None) -> list[Provenance]:
        """Load the reward's published weights (or ``weights``: a path, hub id or URL).

        The default loads one state dict into this module; rewards whose checkpoints need key
        mapping or several files override this. Records (`record_weights`) and returns the provenance.
        """
        from .weights import load_into, load_state_dict, resolve_weights

        if not self.spec.weights and weights is None:
            return self.provenance()
        found = resolve_weights(self.spec.weights, reward=self.spec.name, override=weights)
        load_into(self, load_state_dict(found.path, map_location="cpu"), source=str(found.path))
        self.record_weights(found.provenance)
        return self.provenance()

    # -- adapters ---------------------------------------------------------------------------
    def as_ddpo_fn(self, batch_size: int | None = None) -> Callable[..., tuple[np.ndarray, dict]]:
        """The ``fn(images, prompts, metadata) -> (rewards, info)`` signature of ddpo-pytorch.

        ``images`` may be a float tensor in [0, 1] or uint8 arrays. A group-level reward needs a
        ``"group"`` in every ``metadata`` entry (``ValueError`` otherwise: a mixed batch is never
        silently one group). ``batch_size`` scores in chunks of that many images (a group is never
        split: groups are packed whole, and one larger than ``batch_size`` is a chunk of its own).
        Returns a float32 numpy array and the details as numpy arrays or lists.

        Example:
            >>> import torch, rewardbench
            >>> fn = rewardbench.load_reward("jpeg-compressibility").as_ddpo_fn()
            >>> rewards, info = fn(torch.rand(2, 3, 32, 32), ["a", "b"], [{}, {}])
            >>> rewards.shape
            (2,)
        """
        return _DdpoAdapter(self, batch_size)

    def extra_repr(self) -> str:
        return f"spec={self.spec.name!r}, weights={self.weights_used!r}"


class _DdpoAdapter:
    def __init__(self, model: RewardModel, batch_size: int | None):
        if batch_size is not None and int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.batch_size = None if batch_size is None else int(batch_size)

    def _groups(self, metadata: Sequence[dict] | None, n: int) -> list | None:
        if self.model.spec.granularity != "group":
            return None
        if not metadata or len(metadata) != n or not all(isinstance(m, dict) and "group" in m for m in metadata):
            raise ValueError(f"{self.model.spec.name} is a group-level reward: give every image's metadata a "
                             "'group' (e.g. the index of its prompt), or the whole batch would be one group")
        return [m["group"] for m in metadata]

    def _chunks(self, n: int, groups: list | None) -> list[list[int]]:
        if self.batch_size is None:
            return [list(range(n))]
        units = [[i] for i in range(n)]
        if groups is not None:
            by: dict = {}
            for i, g in enumerate(groups):
                by.setdefault(g, []).append(i)
            units = list(by.values())
        chunks: list[list[int]] = []
        for u in units:
            if chunks and len(chunks[-1]) + len(u) <= self.batch_size:
                chunks[-1].extend(u)
            else:
                chunks.append(list(u))
        return chunks

    def __call__(self, images: Any, prompts: Sequence[str], metadata: Sequence[dict] | None = None):
        prompts = list(prompts)
        n = len(prompts)
        groups = self._groups(metadata, n)
        ids = None if groups is None else {g: k for k, g in enumerate(dict.fromkeys(groups))}
        scores = np.zeros(n, dtype=np.float32)
        info: dict[str, Any] = {}
        for idx in self._chunks(n, groups):
            part = images[idx] if isinstance(images, (torch.Tensor, np.ndarray)) else [images[i] for i in idx]
            g = None if groups is None else torch.as_tensor([ids[groups[i]] for i in idx])
            with torch.inference_mode():
                out = self.model(part, [prompts[i] for i in idx], g)
            scores[idx] = out.scores.detach().float().cpu().numpy()
            for k, v in out.details.items():
                v = v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else list(v)
                col = info.setdefault(k, [None] * n)
                for j, i in enumerate(idx):
                    col[i] = v[j]
        info = {k: _stack(v) for k, v in info.items()}
        return scores, info


def _stack(values: list) -> Any:
    """Per-image details back to one numpy array when they are numbers, else a list."""
    if all(isinstance(v, (np.generic, int, float, bool)) for v in values):
        return np.asarray(values)
    if all(isinstance(v, np.ndarray) for v in values) and len({v.shape for v in values}) == 1:
        return np.stack(values)
    return values


class BackboneReward(RewardModel):
    """A reward built as a shareable image encoder (``self.backbone``) plus a head.

    Rewards that declare the same ``spec.backbone`` id compute identical image features, so the
    scoring harness calls `embed_images` once per image and hands the features to every such
    reward's `score_embeddings`. The id must pin architecture, weights and preprocessing
    (e.g. ``"open_clip:ViT-L-14/openai"``); the harness additionally compares the backbones'
    parameters (`backbone_fingerprint`) before sharing, so random-weight variants are never mixed.
    """

    backbone: nn.Module

    @abc.abstractmethod
    def embed_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels ``[B,3,H,W]`` in [0, 1] → image features ``[B, D]`` (preprocessing included)."""

    @abc.abstractmethod
    def score_embeddings(self, image_embeds: torch.Tensor, prompts: list[str],
                         groups: torch.Tensor | None) -> RewardOutput:
        """The head: features from `embed_images` → scores."""

    def score(self, pixels, prompts, groups) -> RewardOutput:
        return self.score_embeddings(self.embed_images(pixels), prompts, groups)

    def score_features(self, features: torch.Tensor, prompts: Sequence[str] | str | None = None,
                       groups: torch.Tensor | Sequence[int] | None = None) -> RewardOutput:
        """`forward` on image features computed already (`embed_images`, e.g. by another reward sharing
        the backbone): the same contract, with the prompts, groups and output checked as `forward` does.

        Example:
            >>> import torch, rewardbench
            >>> r = rewardbench.load_reward("clipscore-b32", pretrained=False, tiny=True)
            >>> x = torch.rand(2, 3, 64, 64)
            >>> feats = r.embed_images(x)
            >>> torch.allclose(r.score_features(feats, ["a", "b"]).scores, r(x, ["a", "b"]).scores)
            True
        """
        n = features.shape[0]
        prompt_list, group_t = self.check_inputs(prompts, groups, n)
        return self.check_output(self.score_embeddings(features, prompt_list, group_t), n, group_t)

    def share_backbone(self, leader: BackboneReward) -> None:
        """Run on ``leader``'s backbone module instead of this reward's own (the harness calls it for
        rewards whose `backbone_fingerprint` equals the leader's), so that the weights sit in memory once.
        A reward whose backbone computes what its users ask of it overrides this to ask it."""
        self.backbone = leader.backbone

    def backbone_fingerprint(self) -> tuple:
        """Cheap identity of the backbone's weights: (id, n params, sum and sum of squares)."""
        return (self.spec.backbone, *param_fingerprint(self.backbone))


def param_fingerprint(module: nn.Module) -> tuple[int, float, float]:
    """(number of parameters, their sum, their sum of squares): tells random inits and checkpoints apart,
    cheap next to a scoring run.

    Example:
        >>> import torch
        >>> layer = torch.nn.Linear(2, 1)
        >>> with torch.no_grad():
        ...     _ = layer.weight.fill_(1.0), layer.bias.fill_(2.0)
        >>> param_fingerprint(layer)
        (3, 4.0, 6.0)
    """
    total = torch.zeros((), dtype=torch.float64)
    sq = torch.zeros((), dtype=torch.float64)
    n = 0
    with torch.no_grad():
        for p in module.parameters():
            q = p.detach().double()
            total += q.sum().cpu()
            sq += (q * q).sum().cpu()
            n += p.numel()
    return n, round(float(total), 6), round(float(sq), 6)
