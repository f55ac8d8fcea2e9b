"""Parity of the trainer's DDIM step and log-probability with ddpo-pytorch's ``ddim_with_logprob.py``."""

from __future__ import annotations

from _common import SEED, git_show, main, stub_module

REPO, FILE = "kvablack/ddpo-pytorch", "ddpo_pytorch/diffusers_patch/ddim_with_logprob.py"
STEPS = 50  # SD's 50 DDIM steps (ddpo-pytorch config/base.py sample.num_steps)


def _inputs(set_alpha_to_one: bool):
    import torch
    from diffusers import DDIMScheduler

    from rewardbench.trainers.pipeline import SD_SCHEDULER

    sched = DDIMScheduler(**{**SD_SCHEDULER, "set_alpha_to_one": set_alpha_to_one})
    sched.set_timesteps(STEPS)
    g = torch.Generator().manual_seed(SEED)
    shape = (len(sched.timesteps), 2, 4, 64, 64)  # (steps, batch, SD latent)
    return sched, torch.randn(shape, generator=g), torch.randn(shape, generator=g), torch.randn(shape, generator=g)


def _cases():
    return [(f"set_alpha_to_one={flag}", flag) for flag in (False, True)]


def ours(work, args):
    from rewardbench.trainers.ddpo_math import ddim_step_with_logprob

    rows = []
    for case, flag in _cases():
        sched, x, eps, prev = _inputs(flag)
        ratio = sched.config.num_train_timesteps // sched.num_inference_steps
        logps = []
        for k, t in enumerate(sched.timesteps):
            _, lp = ddim_step_with_logprob(eps[k], t.repeat(2), x[k], sched.alphas_cumprod, ratio, eta=1.0,
                                           final_alpha_cumprod=sched.final_alpha_cumprod, prev_sample=prev[k])
            logps += lp.tolist()
        rows.append({"case": case, "reward": "ddim log-prob", "paths": {f"exact, {case}": logps},
                     "note": f"{STEPS} steps x 2 latents of 4x64x64, eta 1, {case}"})
    return rows


def official(work, args):
    import diffusers.utils
    from diffusers.utils.torch_utils import randn_tensor

    # ddpo-pytorch imports randn_tensor from diffusers.utils, where diffusers < 0.20 kept it
    stub_module("diffusers.utils", randn_tensor=randn_tensor)
    assert diffusers.utils.randn_tensor is randn_tensor
    git_dir, commit = args.sources[REPO]
    ns: dict = {"__name__": "ddim_with_logprob"}
    exec(compile(git_show(git_dir, commit, FILE), FILE, "exec"), ns)
    out = {}
    for case, flag in _cases():
        sched, x, eps, prev = _inputs(flag)
        logps = []
        for k, t in enumerate(sched.timesteps):
            _, lp = ns["ddim_step_with_logprob"](sched, eps[k], t.repeat(2), x[k], eta=1.0, prev_sample=prev[k])
            logps += lp.tolist()
        out[case] = {"scores": logps, "official": f"{REPO}@{commit[:7]} {FILE.rsplit('/', 1)[1]}"}
    return out


if __name__ == "__main__":
    main(ours, official)
