"""The reference RL trainer: the paper's algorithm (arXiv 2401.12244) on diffusers + accelerate.

    trainers.config     frozen dataclass configs, YAML recipes, key=value overrides
    trainers.ddpo_math  DDIM step log-probability, advantages, clipped loss (pure maths)
    trainers.pipeline   prompt encoding, sampling with log-probs, LoRA/full fine-tuning set-up (pipelines
                        load through benchmarks.pipelines)
    trainers.train      the loop, Algorithm 1 (SAMPLING / REWARDS / TRAINING / L_PRE / EVALUATION)
    trainers.evaluate   evaluation while training: held-out prompts judged through run-benchmark
    trainers.controls   learning evidence: a run beside its controls (negated reward, constant reward)
    trainers.cli        `rewardbench train --config FILE [section.key=value ...]`

Example:
    >>> from rewardbench.trainers.config import load_config
    >>> load_config("trainers/recipes/tiny_smoke.yaml").model.pretrained
    'tiny'
"""
