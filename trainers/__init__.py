"""The reference RL trainer: the paper's algorithm (arXiv 2401.12244) on diffusers + accelerate.

    trainers.config     frozen dataclass configs, YAML recipes, key=value overrides
    trainers.ddpo_math  DDIM step log-probability, advantages, clipped loss (pure maths)
    trainers.pipeline   SD pipelines (hub id, local path, tiny offline), prompt encoding, sampling
    trainers.train      the loop (SAMPLING / REWARDS / TRAINING)
    trainers.cli        `rewardbench train --config FILE [section.key=value ...]`

Example:
    >>> from rewardbench.trainers.config import load_config
    >>> load_config("trainers/recipes/tiny_smoke.yaml").model.pretrained
    'tiny'
"""
