"""The trainer's plumbing used to live here; it is now split by job: trainers/prompts.py, reward_fns.py,
captions.py, checkpoints.py and metrics_log.py. Kept only for trainers/cli.py's ``from ._io import HELDOUT``
until the command line moves to the CLI room; import from the new modules."""

from .metrics_log import HELDOUT

__all__ = ["HELDOUT"]
