"""The algorithm seam (trainers/algorithms/): a name the registry does not know is refused with the known ones; an
algorithm's defaults lie under a recipe's values; a run of the default algorithm keeps the fingerprint that
checkpoints written before ``train.algorithm`` existed have; and a new algorithm runs in the loop as it is."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from rewardbench.trainers.algorithms import ALGORITHMS, AlgorithmEntry, algorithm_entry
from rewardbench.trainers.algorithms.ddpo import DDPO
from rewardbench.trainers.checkpoints import run_fingerprint
from rewardbench.trainers.config import load_config


def test_an_unknown_algorithm_names_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown train.algorithm 'ppo'; known: ddpo, diffusion_nft, flow_grpo, "
                                         r"flow_grpo_fast$"):
        algorithm_entry("ppo")
    with pytest.raises(ValueError, match=r"'grpo' \(did you mean 'flow_grpo'\?\)"):
        algorithm_entry("grpo")
    with pytest.raises(ValueError, match=r"'DDPO' \(did you mean 'ddpo'\?\); known: ddpo"):
        load_config(None, ["train.algorithm=DDPO"])


def test_an_algorithms_defaults_lie_under_the_recipe(monkeypatch, tmp_path):
    defaults = {"train.clip_range": 0.2, "train.lr": 1e-4, "sample.eta": 0.7}
    monkeypatch.setitem(ALGORITHMS, "other", AlgorithmEntry("other", "x:Y", defaults=defaults))
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train: {algorithm: other, lr: 3.0e-4}\n")
    cfg = load_config(recipe, ["sample.eta=0.9"])
    assert (cfg.train.clip_range, cfg.train.lr, cfg.sample.eta) == (0.2, 3e-4, 0.9)
    assert load_config(None, ["train.algorithm=other"]).train.clip_range == 0.2
    assert load_config(None).train.clip_range == 1e-4  # ddpo's defaults: the config's own


def test_the_default_algorithm_keeps_old_checkpoints_fingerprint(monkeypatch):
    tasks = [SimpleNamespace(description="jpeg-compressibility", prompts=["a cat"])]
    fp = run_fingerprint(load_config(None), tasks)
    assert "train.algorithm" not in fp and fp["train.lr"] == 2e-6  # as checkpoints written before the field have
    # nor the fields added with the flow algorithms, at their defaults
    assert not any(k.startswith("flow.") or k in ("train.group_advantages", "train.global_std") for k in fp)
    monkeypatch.setitem(ALGORITHMS, "other", AlgorithmEntry("other", "x:Y"))
    assert run_fingerprint(load_config(None, ["train.algorithm=other"]), tasks)["train.algorithm"] == "other"


class Recording(DDPO):
    """A new algorithm in a module of its own (here, DDPO that notes what the loop asks of it)."""

    calls: list = []

    def sample(self, prompts, generator):
        self.calls.append(("sample", len(prompts)))
        yield from super().sample(prompts, generator)

    def update(self, samples, advantages, opt, **kw):
        self.calls.append(("update", tuple(advantages.shape), kw["weight"]))
        return super().update(samples, advantages, opt, **kw)


def test_a_new_algorithm_runs_in_the_loop_unchanged(monkeypatch, tmp_path):
    from rewardbench.trainers.train import train

    monkeypatch.setitem(ALGORITHMS, "recording", AlgorithmEntry("recording", f"{__name__}:Recording",
                                                                defaults={"train.timesteps_per_iter": 1}))
    monkeypatch.setattr(Recording, "calls", [])
    cfg = load_config(None, ["train.algorithm=recording", "model.pretrained=tiny", "model.resolution=32",
                             "model.lora=false", "run.device=cpu", "run.tensorboard=false", "sample.num_steps=2",
                             "sample.batch_size=2", "sample.micro_batch_size=1", "run.iterations=1",
                             "run.sample_every=0", "tasks.0.weight=0.5", "tasks.0.allow_eval_overlap=true",
                             f"run.output_dir={tmp_path}"])
    hist = train(cfg)["history"]
    assert Recording.calls == [("sample", 2), ("update", (2,), 0.5)]
    assert [h["task"] for h in hist] == ["task"] and hist[0]["grad_norm"] >= 0
