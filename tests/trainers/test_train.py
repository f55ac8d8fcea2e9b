"""The training loop end to end on the tiny offline pipeline (CPU): it learns (beside controls that must not),
it resumes exactly after a kill and refuses a changed run, it runs in two processes (gloo) whose replicas stay
equal, and its options (task order, step mode, groups, per-task sizes, pretraining loss) reach the loop."""

from __future__ import annotations

import csv

import pytest
import torch
from safetensors.torch import load_file

from rewardbench.trainers.checkpoints import ResumeRefusedError
from rewardbench.trainers.config import load_config
from rewardbench.trainers.train import train

TINY = ["model.pretrained=tiny", "model.resolution=32", "model.lora=false", "run.device=cpu",
        "run.tensorboard=false", "sample.num_steps=3", "train.timesteps_per_iter=3"]


def brightness(images, prompts):
    """Mean pixel value of each image."""
    return images.mean(dim=(1, 2, 3))


def _cfg(tmp_path, *extra):
    return load_config(None, TINY + [f"run.output_dir={tmp_path}", *extra])


# 8 px images, 10 DDIM steps: with as many steps most of an image's variation comes from the sampling noise the
# policy controls, so 8 x 128 images give a decisive gradient (at 3 steps, even 10,000 images did not)
LEARN = ["model.resolution=8", "sample.num_steps=10", "train.timesteps_per_iter=5", "run.iterations=8",
         "sample.batch_size=128", "sample.micro_batch_size=128", "train.micro_batch_size=128", "train.lr=3e-4",
         "run.checkpoint_every=0", "run.sample_every=0", "tasks.0.name=bright",
         "tasks.0.prompts=[a cat on a sofa, a dog on a lawn]"]


def test_learning_moves_the_reward_and_its_controls_do_not(tmp_path):
    """Brightness, its negation and a constant reward, trained on the same prompts and noise (seed 0).

    Measured (CPU, seed 0, last 3 of 8 iterations, image by image against the constant run): brightness
    +4.2e-4 (standard error 2.9e-5), negated -6.3e-4 (3.2e-5), while one image's brightness spreads by 1.2e-2;
    128 x 64 images of two held-out prompts: +6.7e-4 (4.2e-5). Seeds 1-3 and the ddpo step mode give the same
    signs at 6-20 standard errors; scripts/training/learning_curve.py runs 40 iterations on 3 seeds."""
    from rewardbench.trainers.controls import controlled_runs, heldout_scores, paired_difference
    from rewardbench.trainers.pipeline import load_pipeline

    cfg = _cfg(tmp_path, *LEARN)
    runs = controlled_runs(cfg, brightness)
    up, down, flat = (runs[a]["scores"][-3:] for a in ("up", "down", "flat"))
    gain, se = paired_difference(up, flat)
    loss, se_down = paired_difference(down, flat)
    print(f"brightness vs constant: {gain:+.2e} ± {se:.1e}; negated: {loss:+.2e} ± {se_down:.1e}")
    assert gain > 5 * se and loss < -5 * se_down
    # the constant reward has zero advantages: no gradient, its weights move by weight decay alone
    hist = runs["flat"]["result"]["history"]
    assert all(h["policy_loss"] == 0 and h["grad_norm"] == 0 for h in hist)
    steps = cfg.run.iterations * cfg.train.timesteps_per_iter
    decay = (1 - cfg.train.lr * cfg.train.weight_decay) ** steps
    initial = dict(load_pipeline("tiny").unet.named_parameters())
    for n, p in runs["flat"]["result"]["unet"].named_parameters():
        torch.testing.assert_close(p.detach(), initial[n].detach() * decay, rtol=1e-5, atol=1e-6)
    # the training pass reproduces the sampling policy
    assert all(h["approx_kl"] < 1e-3 for h in runs["up"]["result"]["history"])
    # held-out prompts (never sampled in training), fixed noise: brighter from the brightness model
    heldout = ["a bowl of fruit on a table", "a lighthouse by the sea"]
    ups, flats = (heldout_scores(cfg, runs[a]["result"]["unet"], heldout, brightness, images_per_prompt=64)
                  for a in ("up", "flat"))
    held, held_se = paired_difference([ups], [flats])
    print(f"held-out prompts, brightness model vs constant: {held:+.2e} ± {held_se:.1e}")
    assert held > 5 * held_se


class _Killer:
    """jpeg-compressibility-like reward callable that "kills" the run on its n-th call."""

    def __init__(self, die_at=None):
        import rewardbench

        self.fn = rewardbench.load_reward("jpeg-compressibility").as_ddpo_fn()
        self.calls, self.die_at = 0, die_at

    def __call__(self, images, prompts, metadata):
        self.calls += 1
        if self.die_at is not None and self.calls == self.die_at:
            raise KeyboardInterrupt("simulated kill")
        return self.fn(images, prompts, metadata)


def _rows(path):
    with open(path) as f:
        return [{k: r[k] for k in ("iteration", "task", "reward_mean", "loss")} for r in csv.DictReader(f)]


def test_resume_after_kill_matches_uninterrupted_run(tmp_path):
    common = ["run.iterations=4", "run.checkpoint_every=2", "sample.batch_size=4", "sample.micro_batch_size=4",
              "train.micro_batch_size=2", "train.lr=1e-3", "train.per_prompt_stats=true", "train.stat_min_count=2",
              "sample.images_per_prompt=2", "run.sample_every=0", "tasks.0.name=jpeg"]
    full = train(_cfg(tmp_path / "full", *common), rewards={"jpeg": _Killer()})
    with pytest.raises(KeyboardInterrupt):  # dies inside iteration 3, after the step-2 checkpoint
        train(_cfg(tmp_path / "killed", *common), rewards={"jpeg": _Killer(die_at=4)})
    # a different run is refused, saying what changed (before anything is loaded or overwritten)
    config_before = (tmp_path / "killed/config.json").read_text()
    with pytest.raises(ResumeRefusedError, match=r"changed: train\.lr: 0\.001 -> 0\.002.*run\.resume_force=true"):
        train(_cfg(tmp_path / "killed", *common, "run.resume=latest", "train.lr=2e-3"), rewards={"jpeg": _Killer()})
    with pytest.raises(ResumeRefusedError, match=r"tasks\.0\.name: 'jpeg' -> 'jpg'"):
        train(_cfg(tmp_path / "killed", *common, "run.resume=latest", "tasks.0.name=jpg"), rewards={"jpg": _Killer()})
    with pytest.raises(ResumeRefusedError, match=r"tasks\.0\.prompts_sha256"):
        train(_cfg(tmp_path / "killed", *common, "run.resume=latest", "tasks.0.prompts=[a red apple]"),
              rewards={"jpeg": _Killer()})
    assert (tmp_path / "killed/config.json").read_text() == config_before
    resumed = train(_cfg(tmp_path / "killed", *common, "run.resume=latest"), rewards={"jpeg": _Killer()})
    assert [h["iteration"] for h in resumed["history"]] == [3, 4]  # the 3rd and 4th iterations, after step 2
    a = load_file(str(tmp_path / "full/checkpoints/step_000004/trainable.safetensors"))
    b = load_file(str(tmp_path / "killed/checkpoints/step_000004/trainable.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    start = load_file(str(tmp_path / "full/checkpoints/step_000002/trainable.safetensors")) \
        if (tmp_path / "full/checkpoints/step_000002").exists() else None
    assert start is None or any(not torch.equal(start[k], a[k]) for k in a)
    oa = torch.load(tmp_path / "full/checkpoints/step_000004/optim.pt", weights_only=True)
    ob = torch.load(tmp_path / "killed/checkpoints/step_000004/optim.pt", weights_only=True)
    for sa, sb in zip(oa["optimizer"]["state"].values(), ob["optimizer"]["state"].values()):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"])
    assert _rows(tmp_path / "full/metrics.csv") == _rows(tmp_path / "killed/metrics.csv")
    assert full["history"][-1]["reward_mean"] == resumed["history"][-1]["reward_mean"]
    # more iterations and memory-only settings (micro-batch sizes) are the same run
    longer = train(_cfg(tmp_path / "killed", *common, "run.iterations=5", "run.resume=latest",
                        "train.micro_batch_size=4"), rewards={"jpeg": _Killer()})
    assert [h["iteration"] for h in longer["history"]] == [5]
    # run.resume_force takes a changed run on anyway (a renamed task starts with empty statistics)
    forced = train(_cfg(tmp_path / "killed", *common, "run.iterations=6", "run.resume=latest", "tasks.0.name=jpg",
                        "run.resume_force=true"), rewards={"jpg": _Killer()})
    assert [h["iteration"] for h in forced["history"]] == [6]


def test_a_folder_holding_a_run_is_refused_and_a_truncated_checkpoint_skipped(tmp_path, capsys):
    """Without run.resume or run.overwrite, an output folder that holds a run is refused before anything is built
    (CLI: exit 2) and left as it was; run.resume=latest skips a truncated checkpoint, saying so, and resumes from the
    last intact one; run.overwrite starts over. Checkpoints, metrics rows and sample grids count steps alike."""
    from click.testing import CliRunner

    from rewardbench.cli.train import train as train_command
    from rewardbench.trainers.checkpoints import RunExistsError

    out = tmp_path / "run"
    common = ["run.iterations=2", "run.checkpoint_every=1", "sample.batch_size=2", "sample.micro_batch_size=2",
              "train.micro_batch_size=2", "run.sample_every=1", "tasks.0.name=jpeg"]
    first = train(_cfg(out, *common), rewards={"jpeg": _Killer()})
    assert [h["iteration"] for h in first["history"]] == [1, 2]
    assert [r["iteration"] for r in _rows(out / "metrics.csv")] == ["1", "2"]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_000001", "step_000002"]
    assert sorted(p.name for p in (out / "samples").glob("*.png")) == ["it00001_jpeg.png", "it00002_jpeg.png"]
    files = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    r = CliRunner().invoke(train_command, [*TINY, f"run.output_dir={out}", "tasks.0.reward=jpeg-compressibility"])
    assert r.exit_code == 2 and r.output.startswith(f"error: run.output_dir {out} already holds a run "
                                                    "(checkpoints/step_000002 and 1 older, metrics.csv, config.json)")
    with pytest.raises(RunExistsError):
        train(_cfg(out, *common, "run.iterations=4"), rewards={"jpeg": _Killer()})
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == files  # nothing rotated or rewritten
    weights = out / "checkpoints" / "step_000002" / "trainable.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    capsys.readouterr()
    resumed = train(_cfg(out, *common, "run.iterations=3", "run.resume=latest"), rewards={"jpeg": _Killer()})
    told = capsys.readouterr().err
    assert f"skipping checkpoint step_000002: {weights}: cannot be read, truncated or corrupt" in told
    assert [h["iteration"] for h in resumed["history"]] == [2, 3]  # from step 1, the last intact checkpoint
    assert [r["iteration"] for r in _rows(out / "metrics.csv")] == ["1", "2", "3"]
    again = train(_cfg(out, *common, "run.iterations=1", "run.overwrite=true"), rewards={"jpeg": _Killer()})
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_000001"]
    assert [r["iteration"] for r in _rows(out / "metrics.csv")] == ["1"]
    assert sorted(p.name for p in (out / "samples").glob("*.png")) == ["it00001_jpeg.png"]
    assert again["history"][0]["reward_mean"] == first["history"][0]["reward_mean"]  # the same seed, from scratch


def test_two_process_gloo_run(tmp_path):
    from .two_process import two_process_run

    out = tmp_path / "run"
    r0, r1 = two_process_run(tmp_path / "res", None, TINY + [
        f"run.output_dir={out}", "run.iterations=2", "sample.batch_size=2", "sample.micro_batch_size=2",
        "train.micro_batch_size=2", "train.lr=1e-3", "run.checkpoint_every=0", "run.sample_every=0",
        "tasks.0.name=jpeg", "tasks.0.reward=jpeg-compressibility",
        # judged once, on the main process, in a process of its own
        "run.eval_every=2", "eval.suite=fairness", "eval.prompts=1", "eval.images_per_prompt=2", "eval.judges=[]",
        "eval.n_boot=50"])
    assert r0["world"] == 2 == r1["world"]
    # reward statistics are gathered: both ranks log the same mean/std over all 4 images
    assert [h["task"] for h in r0["history"]] == ["jpeg", "jpeg", "heldout/jpeg-compressibility"]
    r0["history"] = r0["history"][:2]  # the held-out row is the main process's
    assert [h["reward_mean"] for h in r0["history"]] == [h["reward_mean"] for h in r1["history"]]
    assert [h["reward_std"] for h in r0["history"]] == [h["reward_std"] for h in r1["history"]]
    # each rank drew different samples (per-process seeds) -> the std of 4 gathered rewards is not 0
    assert r0["history"][0]["reward_std"] > 0
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [r["task"] for r in rows] == ["jpeg", "jpeg", "heldout/jpeg-compressibility"]  # written once (main)
    assert (out / "eval" / "step_000002" / "report.md").is_file()
    # the two replicas end with the same weights, which are the checkpoint's, and training moved them
    saved = load_file(str(out / "checkpoints/step_000002/trainable.safetensors"))
    assert r0["params"].keys() == r1["params"].keys() == saved.keys()
    for k in saved:
        assert torch.equal(r0["params"][k], r1["params"][k]) and torch.equal(r0["params"][k], saved[k]), k
    from rewardbench.trainers.pipeline import load_pipeline

    initial = dict(load_pipeline("tiny").unet.named_parameters())
    assert any(not torch.equal(initial[k].detach(), saved[k]) for k in saved)


def _captions(tmp_path):
    from PIL import Image

    from tests.conftest import real_photo

    data = tmp_path / "captions"
    data.mkdir()
    for name, cap in [("astronaut", "an astronaut"), ("coffee", "a cup of coffee")]:
        Image.fromarray(real_photo(name)).save(data / f"{name}.jpg")
        (data / f"{name}.txt").write_text(cap)
    return data


def _recorder(monkeypatch):
    """Events in call order: ("reward", task, prompts, groups) for each reward call, "step" for each optimizer step."""
    events = []
    step = torch.optim.AdamW.step

    def recorded_step(self, *a, **kw):
        events.append("step")
        return step(self, *a, **kw)

    monkeypatch.setattr(torch.optim.AdamW, "step", recorded_step)

    def reward(name):
        def fn(images, prompts, metadata):  # a distribution-level reward: each image gets its group's mean
            g = torch.tensor([m["group"] for m in metadata])
            events.append(("reward", name, list(prompts), g.tolist()))
            per = images.mean(dim=(1, 2, 3))
            return torch.stack([per[g == gi].mean() for gi in g]), {}
        return fn
    return events, {"grp": reward("grp"), "solo": reward("solo")}


TWO_TASKS = ("tasks=[{name: grp, prompts: [a cat, a dog, a fox], batch_size: 4, images_per_prompt: 2}, "
             "{name: solo, prompts: [a red apple, a green pear], batch_size: 2, weight: 0.5}]")


def test_algorithm1_order_per_task_sizes_groups_and_pretraining_loss(tmp_path, monkeypatch):
    """The paper's Algorithm 1: every task samples (and is scored) before any update, K optimizer steps per
    task (one per timestep), then one L_pre step; each task has its own batch size and images per prompt;
    a group reward scores the whole minibatch (default) or each prompt's images."""
    events, rewards = _recorder(monkeypatch)
    cfg = _cfg(tmp_path / "run", "run.iterations=1", "sample.micro_batch_size=2", "train.micro_batch_size=4",
               "pretrain.beta=0.5", f"pretrain.dataset={_captions(tmp_path)}", "pretrain.batch_size=2",
               "run.sample_every=1", "model.lora=true", "model.lora_rank=2", TWO_TASKS)
    hist = train(cfg, rewards=rewards)["history"]
    k = cfg.train.timesteps_per_iter
    assert [e if e == "step" else e[1] for e in events] == ["grp", "solo"] + ["step"] * (2 * k + 1)
    (_, _, p_grp, g_grp), (_, _, p_solo, g_solo) = events[:2]
    assert len(p_grp) == 4 and p_grp[0] == p_grp[1] and p_grp[2] == p_grp[3] and len(p_solo) == 2
    assert g_grp == [0, 0, 0, 0] and g_solo == [0, 0]  # the minibatch is the group
    assert [h["task"] for h in hist] == ["grp", "solo", "pretrain"]
    assert hist[-1]["pretrain_loss"] > 0 and all(h["pretrain_loss"] == 0 for h in hist[:2])
    assert (tmp_path / "run/samples/it00001_grp.png").is_file()
    assert (tmp_path / "run/reward_curve.png").is_file()
    # LoRA weights are exported in diffusers' format and load into a fresh pipeline
    from rewardbench.trainers.pipeline import load_pipeline

    lora_file = tmp_path / "run/final/pytorch_lora_weights.safetensors"
    assert lora_file.is_file()
    pipe = load_pipeline("tiny")
    before = {n: p.clone() for n, p in pipe.unet.named_parameters()}
    pipe.load_lora_weights(str(tmp_path / "run/final"))
    assert any("lora" in n for n, _ in pipe.unet.named_parameters())
    assert all(torch.equal(before[n], p) for n, p in pipe.unet.named_parameters() if n in before)


def test_interleaved_order_ddpo_steps_and_per_prompt_groups(tmp_path, monkeypatch):
    """The options: each task sampled and updated in turn with L_pre in its update, one optimizer step per
    task (ddpo-pytorch), group rewards over each prompt's images."""
    events, rewards = _recorder(monkeypatch)
    cfg = _cfg(tmp_path / "run", "run.iterations=1", "train.task_order=interleaved", "train.step_mode=ddpo",
               "sample.group_by=prompt", "pretrain.beta=0.5", f"pretrain.dataset={_captions(tmp_path)}",
               "pretrain.batch_size=1", "run.sample_every=0", TWO_TASKS)
    hist = train(cfg, rewards=rewards)["history"]
    assert [e if e == "step" else e[1] for e in events] == ["grp", "step", "solo", "step"]
    assert events[0][3] == [0, 0, 1, 1] and events[2][3] == [0, 1]
    assert [h["task"] for h in hist] == ["grp", "solo"] and all(h["pretrain_loss"] > 0 for h in hist)


def test_caption_data_from_a_datasets_id(monkeypatch):
    """The `datasets` path of the pretraining regulariser (a hub id; served here by an in-memory
    dataset, since the hub is unreachable): its own column names, real photos, resized and in [-1, 1]."""
    import datasets
    from PIL import Image

    from rewardbench.trainers.captions import CaptionData
    from tests.conftest import real_photo

    ds = datasets.Dataset.from_dict(
        {"jpg": [Image.fromarray(real_photo(n)) for n in ("astronaut", "coffee", "chelsea")],
         "caption": ["an astronaut", "a cup of coffee", "a cat"]},
        features=datasets.Features({"jpg": datasets.Image(), "caption": datasets.Value("string")}))
    asked = []
    monkeypatch.setattr(datasets, "load_dataset", lambda source, split: asked.append((source, split)) or ds)
    data = CaptionData("org/captioned-photos", split="validation", image_column="jpg", caption_column="caption",
                       resolution=32)
    assert asked == [("org/captioned-photos", "validation")] and len(data) == 3
    imgs, caps = data.batch(6, torch.Generator().manual_seed(0))
    assert imgs.shape == (6, 3, 32, 32) and imgs.min() >= -1 and imgs.max() <= 1
    photo = {"an astronaut": "astronaut", "a cup of coffee": "coffee", "a cat": "chelsea"}
    assert set(caps) <= set(photo) and len(set(caps)) > 1
    for img, cap in zip(imgs, caps):  # every image comes with its own caption
        want = data._prep(Image.fromarray(real_photo(photo[cap])))
        assert torch.allclose(img, want, atol=1e-6), cap
