"""Tasks as the loop runs them: each a prompt source (resolved to its prompts, held-out ones checked), a reward
(resolved to a function), a weight on its loss, its batch sizes and its per-prompt reward statistics.

    >>> import torch
    >>> from rewardbench.trainers.config import load_config
    >>> cfg = load_config(None, ["tasks.0.prompts=[a cat, a dog]", "tasks.0.allow_eval_overlap=true",
    ...                          "sample.batch_size=4", "sample.images_per_prompt=2", "sample.group_by=prompt"])
    >>> task = build_tasks(cfg, {}, torch.device("cpu"))[0]
    >>> prompts, groups = task.draw(torch.Generator().manual_seed(0), cfg.sample.group_by)
    >>> len(prompts), groups.tolist()
    (4, [0, 0, 1, 1])
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from .config import Config, TaskConfig
from .ddpo_math import PerPromptStatTracker
from .prompts import check_eval_overlap, load_prompts
from .reward_fns import RewardFn, resolve_reward


@dataclass
class Task:
    """One task of a run, resolved."""

    index: int  # its place in config.tasks
    config: TaskConfig
    reward: RewardFn  # (images, prompts, groups) -> (B,) scores on the training device
    whole_batch: bool  # the reward sees the whole batch at once (group rewards, callables), not micro-batches
    description: str  # the resolved reward (name and weights), part of the run's fingerprint
    prompts: list[str]  # the training prompts (held-out ones refused or left out)
    batch_size: int  # images per process per iteration
    images_per_prompt: int
    tracker: PerPromptStatTracker  # per-prompt reward statistics (train.per_prompt_stats)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def weight(self) -> float:
        return self.config.weight

    def draw(self, generator: torch.Generator, group_by: str) -> tuple[list[str], torch.Tensor]:
        """This iteration's prompts on this process, ``images_per_prompt`` images of each, and the group of each
        image ``(B,)``: its prompt's index (``group_by="prompt"``), or one group for the whole minibatch."""
        n, per_prompt = self.batch_size, self.images_per_prompt
        pick = torch.randint(len(self.prompts), (n // per_prompt,), generator=generator).tolist()
        prompts = [self.prompts[i] for i in pick for _ in range(per_prompt)]
        groups = torch.arange(len(pick)).repeat_interleave(per_prompt) if group_by == "prompt" \
            else torch.zeros(n, dtype=torch.long)
        return prompts, groups


def build_tasks(config: Config, rewards: Mapping[str, Any] | None, device: torch.device,
                accelerator: Any = None) -> list[Task]:
    """The run's tasks: ``rewards`` (task name -> a `RewardModel` or a callable) replaces a task's reward name.
    With ``accelerator``, the main process loads first (a prompt set's official file downloads once into the shared
    cache) and it prints what was left out or not checked."""
    say: Callable[[str], None] = accelerator.print if accelerator is not None else (lambda _: None)
    s, tr, run = config.sample, config.train, config.run
    tasks, unchecked = [], set()
    with accelerator.main_process_first() if accelerator is not None else contextlib.nullcontext():
        for tc in config.tasks:
            fn, whole_batch, desc = resolve_reward((rewards or {}).get(tc.name, tc.reward), device,
                                                   dict(tc.reward_kwargs))
            prompts = load_prompts(tc.prompts, run.prompt_paths)
            if not tc.allow_eval_overlap:  # never train on a benchmark's held-out prompts by accident
                prompts, dropped, missing = check_eval_overlap(tc.name, prompts, run.prompt_paths,
                                                               drop=tc.drop_eval_overlap, skip=unchecked)
                unchecked.update(missing)
                if dropped:
                    say(f"task {tc.name}: left out {sum(dropped.values())} training prompt(s) that are held-out "
                        f"evaluation prompts ({dropped})")
            n, per_prompt = tc.sizes(s)
            tasks.append(Task(len(tasks), tc, fn, whole_batch, desc, prompts, n, per_prompt,
                              PerPromptStatTracker(tr.stat_buffer_size, tr.stat_min_count)))
    if unchecked:
        names = sorted(unchecked)
        say(f"held-out overlap not checked against {len(names)} prompt set(s) that cannot be loaded here "
            f"({', '.join(names[:4])}{', ...' if len(names) > 4 else ''}); give local copies of their files in "
            "run.prompt_paths to check them")
    return tasks
