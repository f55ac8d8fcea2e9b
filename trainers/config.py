"""Trainer configuration: frozen dataclasses (units in the comments), loaded from YAML recipes with
command-line overrides.

The algorithm's defaults are the paper's (arXiv 2401.12244, Sec. 3, Algorithm 1, Appendix A and Table 6;
its released code, pinterest/atg-research joint-rl-diffusion/train.py, where the text gives no value):
DDIM 50 steps with eta = 1, CFG 7.0 in sampling and training, AdamW lr 2e-6 betas (0.9, 0.999) eps 1e-8
weight decay 1e-2, PPO clip range 1e-4, advantages normalised over the whole batch (std + 1e-7) and
clamped to ±10, K = 5 timesteps per iteration with one optimizer step per timestep (``train.step_mode``),
every task sampled first and then updated task by task, then one pretraining-loss step
(``train.task_order``), group rewards over each process's minibatch (``sample.group_by``), 16 images per
process per task. Defaults that are NOT the paper's, chosen so a run starts on one small GPU: LoRA
(``model.lora``; the paper fine-tunes the whole UNet), fp32 (``model.mixed_precision``; the paper's
code runs bf16), 512 px SD 2 base but ``pretrain.beta = 0`` (no L_pre, which needs a caption dataset;
the paper uses a 12M aesthetic LAION subset). The paper recipes (``trainers/recipes/_paper_base.yaml``)
set full fine-tuning and bf16.

Every value is checked when the config is made: of its field's type and in its range (`RANGES`), one line naming
the field (``rewardbench train``'s exit 2). A task's ``reward`` may be ``"package.module:callable"``: that module is
imported when the run starts, whatever it is, and its top-level code runs with the trainer's rights, so run only
recipes you trust.

Example:
    >>> cfg = load_config(None, ["model.pretrained=tiny", "train.lr=1e-5", "run.iterations=3"])
    >>> cfg.train.lr, cfg.model.pretrained, cfg.sample.eta
    (1e-05, 'tiny', 1.0)
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .algorithms import algorithm_entry
from .fields import check_fields


@dataclass(frozen=True)
class ModelConfig:
    pretrained: str = "stabilityai/stable-diffusion-2-base"  # diffusers hub id, local path, "tiny" or "sd2-base-random"
    revision: str | None = None
    resolution: int = 512  # image side (pixels); tiny pipeline: 32 or 64
    lora: bool = True  # True: train LoRA adapters on the UNet (peft); False: full fine-tuning of the UNet
    lora_rank: int = 8
    lora_alpha: float = 8.0
    # attention projections, as diffusers' LoRA scripts
    lora_targets: tuple[str, ...] = ("to_q", "to_k", "to_v", "to_out.0")
    gradient_checkpointing: bool = False
    mixed_precision: str = "no"  # "no" | "bf16" | "fp16" (frozen parts are cast; trainable weights stay fp32)
    tiny_seed: int = 0  # seed of the tiny pipeline's random weights


@dataclass(frozen=True)
class SampleConfig:
    num_steps: int = 50  # DDIM steps
    eta: float = 1.0  # DDIM eta; 1 = DDPM-like stochastic sampling (needed for a log-probability)
    guidance_scale: float = 7.0  # CFG in sampling AND in the training pass
    batch_size: int = 16  # images per process per task per iteration (the paper: 16 per GPU); a task may override
    micro_batch_size: int = 8  # images per UNet call while sampling (per process)
    images_per_prompt: int = 1  # images of one prompt per process (a task may override)
    # what a group reward (skin-tone parity, Vendi, ...) scores as one group, every member getting its value:
    # "minibatch" = all of a task's images on one process in one iteration (the paper, Sec. 3.2: "computed on
    # each minibatch"); "prompt" = the images of one prompt (the two coincide when batch_size = images_per_prompt)
    group_by: str = "minibatch"
    negative_prompt: str = ""


@dataclass(frozen=True)
class TrainConfig:
    # the RL algorithm (trainers/algorithms/): "ddpo", the paper's; its defaults apply under the recipe's values
    algorithm: str = "ddpo"
    lr: float = 2e-6  # AdamW learning rate (the paper)
    adam_betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 1e-2
    adam_eps: float = 1e-8
    warmup_steps: int = 0  # optimizer steps of linear LR warm-up, then constant
    timesteps_per_iter: int = 5  # K random denoising steps trained per sample per iteration
    # "paper": K timesteps drawn for the whole batch, one optimizer step per timestep (K steps per task per
    # iteration; the paper's Algorithm 1 and Appendix A: "a gradient update across all the samples in the batch
    # for each of the timesteps, resulting in 5 gradient updates per iteration"); "ddpo": K timesteps per sample,
    # gradients accumulated over all of them, one optimizer step per task per iteration (ddpo-pytorch)
    step_mode: str = "paper"
    # "algorithm1": sample every task from the same model, then update task by task, then one pretraining-loss
    # step (the paper's Algorithm 1 and Sec. 3.3); "interleaved": sample and update each task in turn, the
    # pretraining loss added to every task's update
    task_order: str = "algorithm1"
    micro_batch_size: int = 4  # samples per forward/backward in the training pass (per process)
    clip_range: float = 1e-4  # PPO clip of the importance ratio
    adv_clip_max: float = 10.0  # advantages clamped to ±this
    max_grad_norm: float = 1.0
    logprob_reduction: str = "mean"  # "mean" | "sum" over latent dims (see ddpo_math.ddim_step_with_logprob)
    per_prompt_stats: bool = False  # DDPO's per-prompt running reward statistics instead of batch statistics
    # GRPO's advantages (Flow-GRPO, DiffusionNFT): each reward against its prompt's group in this iteration's batch
    # gathered from every process (mean and std + 1e-4 of the group), not against the whole batch
    group_advantages: bool = False
    global_std: bool = False  # with group_advantages: divide by the std of the whole gathered batch (+ 1e-4)
    stat_buffer_size: int = 16
    stat_min_count: int = 16


@dataclass(frozen=True)
class FlowConfig:
    """The flow-matching algorithms' options (``train.algorithm``: flow_grpo, flow_grpo_fast, diffusion_nft; DDPO
    ignores them). The defaults are Flow-GRPO's SD3.5-M configurations (yifan123/flow_grpo config/grpo.py@54809b5,
    general_ocr_sd3 and geneval_sd3; config/base.py@ac4c86e); the algorithms' registered defaults set the rest."""

    noise_level: float = 0.7  # a, the SDE step's noise level (sample.noise_level)
    sde_type: str = "sde"  # "sde" (Flow-GRPO's SDE) | "cps" (its coefficients-preserving step)
    # Flow-GRPO-Fast: this many consecutive stochastic steps, the rest deterministic (0: every step stochastic)
    window_size: int = 0
    window_range: tuple[int, ...] = ()  # (lo, hi): where a window lies; () = the first half, (0, num_steps // 2)
    timestep_fraction: float = 0.99  # trained steps: the first int(num_steps * fraction) (without a window)
    kl_beta: float = 0.04  # weight of the KL to the reference model (ocr/geneval 0.04, pickscore 0.01, fast 0)
    train_cfg: bool = True  # CFG in the training pass as in sampling (train.cfg; the fast no-CFG configs: False)
    optimizer_steps: int = 2  # optimizer steps per task per iteration ("gradients are updated twice per epoch")
    ema: bool = True  # an EMA of the trained weights, which evaluation and the exported weights use
    ema_decay: float = 0.9
    ema_every: int = 8  # optimizer steps between EMA updates (Flow-GRPO 8; DiffusionNFT 1)
    # DiffusionNFT (NVlabs/DiffusionNFT config/nft.py@24af555)
    nft_beta: float = 1.0  # beta of the implicit policies v+- (config.beta; sd3_ocr 0.1)
    nft_decay_type: int = 1  # the old model's schedule (trainers/flow_math.nft_old_decay; sd3_ocr 2)
    nft_kl_beta: float = 1e-4  # weight of the velocity regulariser ||v - v_ref||^2 (train.beta)


@dataclass(frozen=True)
class PretrainConfig:
    """The pretraining-loss regulariser: eps-prediction MSE on image-caption pairs, weight beta."""

    beta: float = 0.0  # 0 = off
    dataset: str | None = None  # `datasets` id, or a local folder (images + same-name .txt captions or metadata.jsonl)
    split: str = "train"
    image_column: str = "image"
    caption_column: str = "text"
    batch_size: int = 2  # pairs per update (per process; the paper: 16)


@dataclass(frozen=True)
class TaskConfig:
    """One task: a prompt source + a reward + a weight on its loss."""

    name: str = "task"
    # registry name or alias, or "package.module:callable" (a ddpo-style fn): that module is IMPORTED when the run
    # starts, whatever it is, so its top-level code runs with the trainer's rights: load recipes you trust
    reward: str = "jpeg-compressibility"
    reward_kwargs: Mapping[str, Any] = field(default_factory=dict)  # to load_reward (e.g. pretrained, weights)
    # a list of prompts | a file path | a prompt set: "set:NAME" | {set: NAME, path: local copy, <loader options>}
    # (`rewardbench prompts list`; training splits: diffusiondb-train, person-descriptions, object-pairs-train)
    prompts: Any = ("a cat asleep on a windowsill",)
    weight: float = 1.0  # multiplies this task's loss
    batch_size: int | None = None  # images per process per iteration for this task (None: sample.batch_size)
    images_per_prompt: int | None = None  # None: sample.images_per_prompt
    # training prompts that are also a held-out evaluation set's prompts (benchmarks/prompt_sets/splits.py) are
    # refused, unless drop_eval_overlap (leave those prompts out) or allow_eval_overlap (train on them anyway) is true
    drop_eval_overlap: bool = False
    allow_eval_overlap: bool = False

    def sizes(self, sample: SampleConfig) -> tuple[int, int]:
        """(images per process per iteration, images per prompt) of this task."""
        return (self.batch_size or sample.batch_size, self.images_per_prompt or sample.images_per_prompt)


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation while training (every ``run.eval_every`` iterations; trainers/evaluate.py): held-out prompts
    with fixed seeds, judged through run-benchmark by the training rewards and other judges."""

    suite: str = "preference"  # a run-benchmark suite (benchmarks/suites) or a YAML path: held-out prompts
    prompts: int = 50  # the first N prompts of each of the suite's sources (the same at every evaluation)
    # None: the suite's, or 4 when a judge is a group reward (diversity, parity: evaluate.eval_images_per_prompt)
    images_per_prompt: int | None = None
    # sampling steps of the evaluation's images; None: sample.num_steps (Flow-GRPO trains with few steps and
    # evaluates with more: eval_num_steps 40 for SD3.5-M, 28 for FLUX.1-dev)
    num_steps: int | None = None
    judges: tuple[str, ...] = ("aesthetic", "clipscore", "hpsv2", "vendi")  # besides the training rewards
    training_rewards: bool = True  # judge with every task's registered reward too
    baseline: bool = True  # also generate the base model's images: win rates against it, its means as reference
    seed: int = 0  # base of the per-(prompt, image) noise seeds
    n_boot: int = 1000  # bootstrap resamples for the confidence intervals
    random_weights: bool = False  # judges with random weights (offline smoke runs only; labelled in the report)


@dataclass(frozen=True)
class RunConfig:
    output_dir: str = "runs/train"
    seed: int = 0
    iterations: int = 100  # outer iterations (each samples and updates every task once)
    checkpoint_every: int = 10  # iterations; 0 = only at the end
    keep_checkpoints: int = 2
    sample_every: int = 10  # iterations between saved sample grids; 0 = never
    resume: str | None = None  # checkpoint dir, or "latest" (newest under output_dir/checkpoints)
    resume_force: bool = False  # resume even when the checkpoint was written by a run with another fingerprint
    # start over in an output_dir that holds a run, deleting its checkpoints, metrics, samples and evaluations
    # (without it, or resume, such a folder is refused: a new run would rotate the old checkpoints away)
    overwrite: bool = False
    prompt_paths: Mapping[str, str] = field(default_factory=dict)  # prompt set -> local copy of its official file
    eval_every: int = 0  # iterations between held-out evaluations (the `eval` section); 0 = never
    tensorboard: bool = True
    async_rewards: bool = True  # score a micro-batch in a thread while the next one is sampled
    device: str | None = None  # None: accelerate's choice; "cpu" forces CPU
    progress: bool = True  # the progress bar (`rewardbench train --no-progress` sets it False)


@dataclass(frozen=True)
class Config:
    model: ModelConfig = ModelConfig()
    sample: SampleConfig = SampleConfig()
    train: TrainConfig = TrainConfig()
    pretrain: PretrainConfig = PretrainConfig()
    tasks: tuple[TaskConfig, ...] = (TaskConfig(),)
    flow: FlowConfig = FlowConfig()
    run: RunConfig = RunConfig()
    eval: EvalConfig = EvalConfig()

    def __post_init__(self) -> None:
        s, t = self.sample, self.train
        for name, cls in _SECTIONS.items():  # every value of its field's type, and in its range
            check_fields(getattr(self, name), cls, name, RANGES)
        for i, task in enumerate(self.tasks):
            check_fields(task, TaskConfig, f"tasks[{i}]", RANGES, "tasks")
        for i, task in enumerate(self.tasks):
            b, g = task.sizes(s)
            if b < 1 or g < 1 or b % g:
                raise ValueError(f"tasks[{i}] ({task.name}): batch_size={b} must be a positive multiple of "
                                 f"images_per_prompt={g} (each process holds whole groups)")
        for key, value, allowed in (("sample.group_by", s.group_by, ("minibatch", "prompt")),
                                    ("train.step_mode", t.step_mode, ("paper", "ddpo")),
                                    ("train.task_order", t.task_order, ("algorithm1", "interleaved"))):
            if value not in allowed:
                raise ValueError(f"{key} must be one of {allowed}, got {value!r}")
        flow_sampler = algorithm_entry(t.algorithm).sampler == "flow"  # ValueError naming the known algorithms
        if s.eta <= 0 and not flow_sampler:
            raise ValueError("sample.eta must be > 0: the policy needs a stochastic step to have a log-probability")
        if self.run.resume and self.run.overwrite:
            raise ValueError("run.resume and run.overwrite: choose one (resume continues the run in run.output_dir, "
                             "overwrite deletes it and starts over)")
        if flow_sampler:
            _check_flow(self)
        elif not 1 <= t.timesteps_per_iter <= s.num_steps:
            raise ValueError(f"train.timesteps_per_iter={t.timesteps_per_iter} must lie in "
                             f"[1, sample.num_steps={s.num_steps}]")
        if t.logprob_reduction not in ("mean", "sum"):
            raise ValueError("train.logprob_reduction must be 'mean' or 'sum'")
        if self.model.mixed_precision not in ("no", "bf16", "fp16"):
            raise ValueError("model.mixed_precision must be 'no', 'bf16' or 'fp16'")
        if not self.tasks:
            raise ValueError("at least one task is needed")
        names = [k.name for k in self.tasks]
        if len(set(names)) != len(names) or "pretrain" in names:
            raise ValueError(f"task names must be unique and not 'pretrain' (the L_pre step's name), got {names}")
        if self.pretrain.beta > 0 and not self.pretrain.dataset:
            raise ValueError("pretrain.beta > 0 needs pretrain.dataset")

    def to_dict(self) -> dict:
        return _plain(dataclasses.asdict(self))


def _check_flow(cfg: Config) -> None:
    """The flow algorithms' choices and how they fit the sampling schedule; and their base must be a flow model."""
    f, n = cfg.flow, cfg.sample.num_steps
    if f.sde_type not in ("sde", "cps"):
        raise ValueError(f"flow.sde_type must be 'sde' or 'cps', got {f.sde_type!r}")
    if f.ema_decay >= 1 or f.timestep_fraction > 1:
        raise ValueError(f"flow.ema_decay must lie in [0, 1) and flow.timestep_fraction in (0, 1], got {f.ema_decay} "
                         f"and {f.timestep_fraction}")
    if cfg.train.algorithm == "diffusion_nft" and cfg.sample.guidance_scale != 1:
        from rewardbench.benchmarks.pipelines import flow_family_before_loading

        # FLUX.1's guidance is an embedding, not CFG: any value is CFG-free (a base not known before loading is
        # checked again when it has loaded)
        if flow_family_before_loading(cfg.model.pretrained, cfg.model.revision) == "sd3":
            raise ValueError(f"sample.guidance_scale={cfg.sample.guidance_scale}: DiffusionNFT samples and trains "
                             "CFG-free (guidance 1; FLUX.1's guidance embedding may take any value)")
    if f.nft_decay_type not in (0, 1, 2):
        raise ValueError(f"flow.nft_decay_type must be 0, 1 or 2, got {f.nft_decay_type}")
    if f.window_range and len(f.window_range) != 2:
        raise ValueError(f"flow.window_range must be two step indices [lo, hi], got {list(f.window_range)}")
    if f.window_size:
        lo, hi = f.window_range or (0, n // 2)
        if not 0 <= lo <= hi - f.window_size or hi > n:
            raise ValueError(f"flow.window_size={f.window_size} does not fit flow.window_range=[{lo}, {hi}] of "
                             f"sample.num_steps={n} steps")
    from rewardbench.benchmarks.pipelines import FLOW_KINDS, RANDOM_KINDS

    if cfg.model.pretrained in RANDOM_KINDS and cfg.model.pretrained not in FLOW_KINDS:
        raise ValueError(f"model.pretrained={cfg.model.pretrained} is a UNet pipeline (DDIM); train.algorithm="
                         f"{cfg.train.algorithm} needs a flow-matching one, e.g. {FLOW_KINDS[0]} or "
                         "stabilityai/stable-diffusion-3.5-medium")


def _plain(x):
    if isinstance(x, Mapping):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


_SECTIONS = {"model": ModelConfig, "sample": SampleConfig, "train": TrainConfig, "pretrain": PretrainConfig,
             "run": RunConfig, "eval": EvalConfig, "flow": FlowConfig}

# Where a number must lie beyond its type, by "section.field" (tasks: every task's): ">= n" or "> n", or "[a, b)"
# for each item of a tuple (trainers/fields.py checks them). Choices of strings are checked in `Config.__post_init__`.
RANGES = {
    "model.resolution": ">= 1", "model.lora_rank": ">= 1", "model.lora_alpha": "> 0", "model.tiny_seed": ">= 0",
    "sample.num_steps": ">= 1", "sample.guidance_scale": ">= 0", "sample.batch_size": ">= 1",
    "sample.micro_batch_size": ">= 1", "sample.images_per_prompt": ">= 1",
    "train.lr": "> 0", "train.adam_betas": "[0, 1)", "train.weight_decay": ">= 0", "train.adam_eps": "> 0",
    "train.warmup_steps": ">= 0", "train.micro_batch_size": ">= 1", "train.clip_range": "> 0",
    "train.adv_clip_max": "> 0", "train.max_grad_norm": "> 0", "train.stat_buffer_size": ">= 1",
    "train.stat_min_count": ">= 0",
    "pretrain.beta": ">= 0", "pretrain.batch_size": ">= 1",
    "tasks.batch_size": ">= 1", "tasks.images_per_prompt": ">= 1",
    "run.iterations": ">= 0", "run.checkpoint_every": ">= 0", "run.keep_checkpoints": ">= 1",
    "run.sample_every": ">= 0", "run.eval_every": ">= 0",
    "eval.prompts": ">= 1", "eval.images_per_prompt": ">= 1", "eval.num_steps": ">= 1", "eval.n_boot": ">= 1",
    "flow.noise_level": ">= 0", "flow.window_size": ">= 0", "flow.window_range": "[0, 100000)",
    "flow.timestep_fraction": "> 0", "flow.kl_beta": ">= 0", "flow.optimizer_steps": ">= 1",
    "flow.ema_decay": ">= 0", "flow.ema_every": ">= 1", "flow.nft_beta": "> 0", "flow.nft_kl_beta": ">= 0",
}


def _build(cls, data: Mapping[str, Any], where: str):
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        import difflib

        hints = [f"{u!r} (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(u, fields, 1)) else repr(u)
                 for u in unknown]
        raise ValueError(f"{where}: unknown key(s) {', '.join(hints)}; known: {', '.join(fields)}")
    kw = {}
    for k, v in data.items():
        default = getattr(cls(), k) if k != "tasks" else None
        if isinstance(default, tuple) and isinstance(v, list):
            v = tuple(v)
        elif isinstance(default, float) and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        elif isinstance(default, str) and isinstance(v, bool):  # YAML 1.1 reads a bare `no` as False
            v = "yes" if v else "no"
        kw[k] = v
    return cls(**kw)


def config_from_dict(data: Mapping[str, Any]) -> Config:
    """Nested dict (a parsed YAML recipe) -> `Config`, with clear errors on unknown keys."""
    data = _renamed(dict(data or {}))
    unknown = sorted(set(data) - set(_SECTIONS) - {"tasks"})
    if unknown:
        raise ValueError(f"unknown config section(s) {unknown}; known: {', '.join([*_SECTIONS, 'tasks'])}")
    kw: dict[str, Any] = {name: _build(cls, data.get(name) or {}, name) for name, cls in _SECTIONS.items()}
    tasks = data.get("tasks")
    if tasks is not None:
        if isinstance(tasks, Mapping):  # {name: {...}} form
            tasks = [{"name": k, **(v or {})} for k, v in tasks.items()]
        built = []
        for i, t in enumerate(tasks):
            t = dict(t)
            if isinstance(t.get("prompts"), list):
                t["prompts"] = tuple(t["prompts"])
            built.append(_build(TaskConfig, t, f"tasks[{i}]"))
        kw["tasks"] = tuple(built)
    return Config(**kw)


def _renamed(data: dict) -> dict:
    """``run.suite_paths``, the name of ``run.prompt_paths`` before prompt sets had theirs, read as the new key (with
    a DeprecationWarning); where both name a prompt set, ``run.prompt_paths`` wins."""
    run = data.get("run")
    if isinstance(run, Mapping) and "suite_paths" in run:
        warnings.warn("run.suite_paths is now run.prompt_paths (prompt set -> local copy of its official file)",
                      DeprecationWarning, stacklevel=3)
        run = dict(run)
        old = run.pop("suite_paths") or {}
        data["run"] = {**run, "prompt_paths": {**old, **(run.get("prompt_paths") or {})}}
    return data


def apply_overrides(data: dict, overrides: Sequence[str]) -> dict:
    """Apply ``section.key=value`` strings (values parsed as YAML) to a nested dict in place.
    ``tasks.0.weight=2`` indexes the task list."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r}: expected KEY=VALUE, e.g. train.lr=1e-5")
        value = yaml.safe_load(raw) if raw != "" else ""
        if isinstance(value, str) and raw.strip():
            try:  # YAML 1.1 reads "1e-5" as a string; take it as a number
                value = float(raw)
            except ValueError:
                pass
        parts = key.split(".")
        node: Any = data
        for j, p in enumerate(parts[:-1]):
            nxt = parts[j + 1]
            if isinstance(node, list):
                node = node[int(p)]
                continue
            if p not in node or node[p] is None:
                node[p] = [] if nxt.isdigit() else {}
            node = node[p]
        last = parts[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return data


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> Config:
    """Read a YAML recipe (or start from the defaults) and apply ``key=value`` overrides."""
    data: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"config file {p} not found")
        data = yaml.safe_load(p.read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{p}: a recipe must be a YAML mapping")
        # a recipe may name a base recipe it extends (path relative to itself)
        base = data.pop("base", None)
        if base:
            base_data = yaml.safe_load((p.parent / base).read_text()) or {}
            data = _merge(base_data, data)
    # overrides apply on top of the defaults, so that e.g. tasks.0.reward=... works without a recipe
    if isinstance(data.get("tasks"), Mapping):
        data["tasks"] = [{"name": k, **(v or {})} for k, v in data["tasks"].items()]
    full = _merge(Config().to_dict(), data)
    # the algorithm's defaults lie between the config's and the recipe's (overrides may name the algorithm)
    algorithm = apply_overrides(copy.deepcopy(full), overrides)["train"]["algorithm"]
    defaults = algorithm_entry(algorithm).defaults
    if defaults:
        full = _merge(_merge(Config().to_dict(), _nested(defaults)), data)
    return config_from_dict(apply_overrides(full, overrides))


def _nested(dotted: Mapping[str, Any]) -> dict:
    """``{"train.lr": 1e-4}`` -> ``{"train": {"lr": 1e-4}}``."""
    out: dict = {}
    for key, value in dotted.items():
        *parents, last = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return out


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
