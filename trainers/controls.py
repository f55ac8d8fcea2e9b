"""Learning evidence that can fail: a run against a reward beside its controls (the negated reward, a constant).

The three runs share their seed, so each iteration draws the same prompts and the same noise in all of them
(common random numbers): compared image by image, their difference is the effect of what each has learnt, with
a standard error far below the spread of the images themselves. A trainer that learns moves the reward up in
the first run and down in the second, relative to the constant run, whose advantages are all zero (so only
weight decay touches its weights). Used by tests/trainers/test_train.py,
scripts/training/learning_curve.py and scripts/training/flow_learning_curve.py.

    >>> import torch
    >>> paired_difference([torch.tensor([1.0, 2.0])], [torch.tensor([0.5, 1.0])])
    (0.75, 0.25)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from .config import Config

Scorer = Callable[[torch.Tensor, list], torch.Tensor]  # (images (B, 3, H, W), prompts) -> (B,) scores
ARMS = {"up": 1.0, "down": -1.0, "flat": 0.0}  # the reward, its negation, a constant


def controlled_runs(config: Config, score: Scorer) -> dict[str, dict]:
    """Train ``config`` three times, its first task's reward replaced by ``score``, ``-score`` and a
    constant, each in ``run.output_dir/<arm>``. Returns ``{arm: {"scores": [per-iteration (B,) values of
    score on that iteration's samples], "result": train()'s result}}``."""
    from .train import train

    out = {}
    for arm, sign in ARMS.items():
        seen: list[torch.Tensor] = []

        def reward(images, prompts, metadata, sign=sign, seen=seen):
            s = score(images, list(prompts)).float()
            seen.append(s.detach().cpu())
            return (sign * s if sign else torch.ones_like(s)), {}

        run = dataclasses.replace(config.run, output_dir=str(Path(config.run.output_dir) / arm))
        result = train(dataclasses.replace(config, run=run), rewards={config.tasks[0].name: reward})
        out[arm] = {"scores": seen, "result": result}
    return out


def paired_difference(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> tuple[float, float]:
    """Mean and standard error of ``a - b`` image by image, pooled over the iterations given."""
    d = torch.cat([x - y for x, y in zip(a, b)]).double()
    return float(d.mean()), float(d.std() / len(d) ** 0.5)


def versus_constant(runs: dict[str, dict], held: dict[str, torch.Tensor] | None = None,
                    last: int = 3) -> tuple[list[dict], dict]:
    """The arms of `controlled_runs` against the constant one, image by image: a row per iteration and arm
    (``iteration``, ``arm``, ``reward_mean``, ``vs_constant``, ``se``) and a summary (``last3_vs_constant``: up and
    down over the last ``last`` iterations; ``heldout_vs_constant`` from ``held``, each arm's `heldout_scores`;
    ``per_image_std``: the spread of the constant run's first images)."""
    flat = runs["flat"]["scores"]
    rows = []
    for it in range(len(flat)):
        for arm in ARMS:
            scores = runs[arm]["scores"][it]
            d, se = paired_difference([scores], [flat[it]])
            rows.append({"iteration": it, "arm": arm, "reward_mean": float(scores.mean()), "vs_constant": d,
                         "se": se})
    tail = slice(-last, None)
    summary = {f"last{last}_vs_constant": {
        a: dict(zip(("diff", "se"), paired_difference(runs[a]["scores"][tail], flat[tail]))) for a in ("up", "down")}}
    if held is not None:
        summary["heldout_vs_constant"] = {a: dict(zip(("diff", "se"), paired_difference([held[a]], [held["flat"]])))
                                          for a in ("up", "down")}
    summary["per_image_std"] = float(flat[0].std())
    return rows, summary


@torch.no_grad()
def heldout_scores(config: Config, unet: torch.nn.Module, prompts: Sequence[str], score: Scorer,
                   images_per_prompt: int = 8, seed: int = 1234) -> torch.Tensor:
    """``score`` of images of ``prompts`` sampled from ``unet`` (a trained UNet, or a flow model's transformer)
    with fixed noise (the same for every model given the same seed): the run's DDIM sampler, or for a
    flow-matching run the deterministic flow ODE at the run's guidance (Flow-GRPO's and DiffusionNFT's
    evaluation sampler). ``(len(prompts) * images_per_prompt,)``."""
    m, s = config.model, config.sample
    ps = [p for p in prompts for _ in range(images_per_prompt)]
    if getattr(getattr(unet, "config", None), "patch_size", None):  # a transformer over latent patches: SD3
        return score(_flow_ode_images(config, unet, ps, seed), ps).float().cpu()
    from .pipeline import encode_prompts, load_pipeline, sample_with_logprob

    pipe = load_pipeline(m.pretrained, revision=m.revision, seed=m.tiny_seed)
    dev = next(unet.parameters()).device
    for part in (pipe.vae, pipe.text_encoder):
        part.to(dev)
    cond = encode_prompts(pipe, ps)
    uncond = encode_prompts(pipe, [s.negative_prompt]).expand(len(ps), -1, -1)
    out = sample_with_logprob(pipe, cond, uncond, num_steps=s.num_steps, eta=s.eta, guidance_scale=s.guidance_scale,
                              resolution=m.resolution, generator=torch.Generator().manual_seed(seed), unet=unet)
    return score(out.images, ps).float().cpu()


def _flow_ode_images(config: Config, model: torch.nn.Module, prompts: list[str], seed: int) -> torch.Tensor:
    """Images of ``prompts`` from a flow model's transformer by the deterministic flow ODE, fixed noise."""
    from rewardbench.benchmarks.pipelines import load_flow_pipeline

    from .flow_sampling import encode_prompts, sample_flow

    m, s = config.model, config.sample
    pipe = load_flow_pipeline(m.pretrained, m.revision, m.tiny_seed)
    text, neg = encode_prompts(pipe, prompts), encode_prompts(pipe, [s.negative_prompt])
    out = sample_flow(pipe, model, text, neg.expand(len(prompts)), num_steps=s.num_steps, resolution=m.resolution,
                      guidance_scale=s.guidance_scale, noise_level=0.0, window=(0, 0),
                      generator=torch.Generator().manual_seed(seed))
    return out.images
