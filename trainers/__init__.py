"""The reference RL trainer: the paper's algorithm (arXiv 2401.12244) on diffusers + accelerate, and the
flow-matching algorithms (Flow-GRPO, DiffusionNFT) in the same loop.

    trainers.config       frozen dataclass configs, YAML recipes, key=value overrides
    trainers.train        the loop, Algorithm 1 (SAMPLING / REWARDS / ADVANTAGES / TRAINING / L_PRE /
                          CHECKPOINT / EVALUATION), the same for every algorithm
    trainers.steps        the loop's shared steps: rollouts, rewards, advantages (clamped once), update, L_pre
    trainers.algorithms   the algorithm seam: the `Algorithm` protocol and the registry (``train.algorithm``)
    trainers.algorithms.ddpo  the paper's DDPO on UNet pipelines (the default)
    trainers.algorithms.flow_grpo      Flow-GRPO and Flow-GRPO-Fast on Stable Diffusion 3 / 3.5
    trainers.algorithms.diffusion_nft  DiffusionNFT on Stable Diffusion 3 / 3.5
    trainers.ddpo_math    DDIM step log-probability, advantages, clipped loss (pure maths)
    trainers.flow_math    the flow algorithms' pure maths: SDE step log-probability, KL, groups, NFT loss, EMA
    trainers.flow_sampling  SD3 prompt embeddings, velocity, sampling that keeps what a loss needs, LoRA/full
    trainers.pipeline     prompt encoding, sampling with log-probs, LoRA/full fine-tuning set-up (pipelines
                          load through benchmarks.pipelines)
    trainers.tasks        tasks as the loop runs them: prompts, reward function, sizes, statistics
    trainers.prompts      prompt sources and the held-out overlap check
    trainers.reward_fns   a task's reward resolved to ``fn(images, prompts, groups) -> scores``
    trainers.captions     image-caption pairs for the pretraining loss
    trainers.checkpoints  exact-resume checkpoints, RNG state, the run's fingerprint (`ResumeRefusedError`)
    trainers.metrics_log  metrics.csv, TensorBoard, sample grids, the reward curve
    trainers.evaluate     evaluation while training: held-out prompts judged through run-benchmark
    trainers.controls     learning evidence: a run beside its controls (negated reward, constant reward)

The command, ``rewardbench train --config FILE [section.key=value ...]``, is in the CLI room
(`rewardbench.cli.train`).

Example:
    >>> from rewardbench.trainers.config import load_config
    >>> load_config("trainers/recipes/tiny_smoke.yaml").model.pretrained
    'tiny'
"""
