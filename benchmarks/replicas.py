"""Generation on several GPUs for run-benchmark: one replica of the generator per GPU, as Ray actors
(``rewardbench run-benchmark --generate-replicas N``; ``pip install 'rewardbench[ray]'``).

`ReplicatedGenerator` has a generator's interface (``name``, ``settings``, ``generate(prompts, seeds)``), so the
run saves images, writes the manifest and resumes with the same code as on one device
(`rewardbench.benchmarks.generators.generate_images`). Each call carries ``replicas`` batches of
``settings.batch_size`` images, the batches a one-replica run makes, one per replica; results come back in
order. Seeds are per image (`rewardbench.benchmarks.generators.seed_for`) and drawn on the CPU, so the images
equal those of a one-replica run (tested on CPU processes, with one CPU thread each, as Ray gives an actor).

Example (needs Ray)::

    from rewardbench.benchmarks.generators import DiffusersGenerator, GenerationSettings, generate_images
    from rewardbench.benchmarks.replicas import ReplicatedGenerator

    g = ReplicatedGenerator(DiffusersGenerator("sd", "stabilityai/stable-diffusion-2-1", GenerationSettings()), 4)
    rows, n_new = generate_images(g, items, folder)   # 4 GPUs, the same images as one
    g.close()

"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from rewardbench.wire import NAMESPACE, require_ray

from .generators import DiffusersGenerator, GenerationSettings


class GeneratorReplica:
    """One replica (a Ray actor): the generator built from its source, on the device Ray gave this actor."""

    def __init__(self, name: str, source: Any, settings: GenerationSettings):
        self.generator = DiffusersGenerator(name, source, settings)

    def generate(self, batches: list[tuple[list[str], list[int]]]) -> list[np.ndarray]:
        """Each ``(prompts, seeds)`` batch in one pipeline call, as a one-replica run makes it."""
        return [self.generator.generate(prompts, seeds).numpy() for prompts, seeds in batches]


class ReplicatedGenerator:
    """``generator`` on ``replicas`` Ray actors (see the module docstring). ``gpus_per_replica``: default one GPU
    each (a cluster with fewer GPUs than replicas is refused), CPU replicas on a cluster without GPUs. The
    replicas start on the first `generate`."""

    kind = "diffusers"

    def __init__(self, generator: DiffusersGenerator, replicas: int, gpus_per_replica: float | None = None):
        require_ray()
        if replicas < 1:
            raise ValueError(f"replicas must be >= 1, got {replicas}")
        self.inner, self.replicas, self.gpus = generator, int(replicas), gpus_per_replica
        self.name, self.spec, self.source = generator.name, generator.spec, generator.source
        # each call carries a batch per replica; the images do not depend on the batch (seeds are per image)
        self.settings = dataclasses.replace(generator.settings,
                                            batch_size=generator.settings.batch_size * self.replicas)
        self._actors: list[Any] | None = None

    @property
    def random_weights(self) -> bool:
        return self.inner.random_weights

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    def _start(self) -> list[Any]:
        if self._actors is None:
            ray = require_ray()
            if not ray.is_initialized():
                ray.init(namespace=NAMESPACE, log_to_driver=False)
            gpus = self.gpus
            if gpus is None:  # one GPU each; CPU replicas only on a cluster without GPUs
                have = ray.cluster_resources().get("GPU", 0)
                if 0 < have < self.replicas:
                    raise ValueError(f"--generate-replicas {self.replicas}: one GPU per replica, and the Ray cluster "
                                     f"has {have:g}; ask for at most {int(have)} replicas")
                gpus = 1.0 if have else 0.0
            settings = self.inner.settings
            if gpus:  # each actor sees its own GPU as "cuda"
                settings = dataclasses.replace(settings, device=None)
            cls = ray.remote(GeneratorReplica).options(num_gpus=gpus, num_cpus=1)
            self._actors = [cls.remote(self.name, self.source, settings) for _ in range(self.replicas)]
        return self._actors

    @torch.no_grad()
    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> torch.Tensor:
        """Images ``[B, 3, H, W]`` in [0, 1], image i from seed ``seeds[i]``: cut into the batches a one-replica run
        makes (``batch_size`` images each, in order; the pipeline's numbers can depend on a batch's other images),
        batch j on replica ``j % replicas``, put back in order."""
        ray = require_ray()
        actors = self._start()
        bs = max(1, self.inner.settings.batch_size)
        batches = [(list(prompts[i:i + bs]), [int(x) for x in seeds[i:i + bs]]) for i in range(0, len(prompts), bs)]
        mine = [list(range(r, len(batches), len(actors))) for r in range(len(actors))]
        refs = [a.generate.remote([batches[j] for j in js]) for a, js in zip(actors, mine) if js]
        images: list[Any] = [None] * len(batches)
        for js, result in zip([js for js in mine if js], ray.get(refs)):
            for j, arr in zip(js, result):
                images[j] = torch.from_numpy(np.array(arr))
        return torch.cat(images)

    def close(self) -> None:
        """Stop the replicas."""
        if self._actors:
            ray = require_ray()
            for a in self._actors:
                ray.kill(a)
        self._actors = None
