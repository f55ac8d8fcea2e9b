"""Parity of the trainer's flow-matching step and log-probability (trainers/flow_math.py) with Flow-GRPO's
``sde_step_with_logprob`` (``flow_grpo/diffusers_patch/sd3_sde_with_logprob.py``), on identical inputs.

Both sides get SD3.5-M's scheduler (``FlowMatchEulerDiscreteScheduler`` with its scheduler_config.json shift 3.0)
at the 10 training steps of Flow-GRPO's SD3.5-M configurations, the same latents, velocities and next latents
(2 latents of 16x64x64, SD3.5 at 512 px) at every step, and compare each step's log-probability: of the given next
latent (the training pass) and of one each side draws itself from the same seeded generator (sampling; equal
log-probabilities there mean equal draws too). The "sde" step is read at commit ac4c86e from the mirror; the "cps"
step exists from commit 54809b5, read from the mirror when it holds that commit, else from
``WORK/sd3_sde_with_logprob@54809b5.py`` whose git blob id must be `CPS_BLOB` (``git rev-parse
54809b5:flow_grpo/diffusers_patch/sd3_sde_with_logprob.py`` in a clone).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from _common import SEED, git_show, main

REPO, FILE = "yifan123/flow_grpo", "flow_grpo/diffusers_patch/sd3_sde_with_logprob.py"
CPS_COMMIT = "54809b5fcf4d3930d2a17fa553928704bd0b719e"
CPS_BLOB = "409eeada076ee107b4328c204263e7451bb2bc7e"
STEPS = 10  # Flow-GRPO config/grpo.py (SD3.5-M): sample.num_steps = 10
SHIFT = 3.0  # stabilityai/stable-diffusion-3.5-medium scheduler/scheduler_config.json
# case: (sde_type, noise level a, which commit): a = 0.7, Flow-GRPO's default; 0.8 with "cps", its fast configs
CASES = {"sde a=0.7": ("sde", 0.7, "pinned"), "sde a=0.7 @54809b5": ("sde", 0.7, CPS_COMMIT),
         "cps a=0.8 @54809b5": ("cps", 0.8, CPS_COMMIT)}


def _inputs():
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler

    sched = FlowMatchEulerDiscreteScheduler(shift=SHIFT)
    sched.set_timesteps(STEPS)
    g = torch.Generator().manual_seed(SEED)
    shape = (STEPS, 2, 16, 64, 64)  # (steps, batch, SD3 latent at 512 px)
    return sched, torch.randn(shape, generator=g), torch.randn(shape, generator=g), torch.randn(shape, generator=g)


def ours(work, args):
    import torch

    from rewardbench.trainers.flow_math import sde_step_with_logprob

    rows = []
    for case, (kind, a, _) in CASES.items():
        sched, x, v, prev = _inputs()
        given, drawn = [], []
        for k in range(STEPS):
            kw = dict(noise_level=a, sigma_max=sched.sigmas[1].item(), sde_type=kind)
            s, s_next = sched.sigmas[k].repeat(2), sched.sigmas[k + 1].repeat(2)
            given += sde_step_with_logprob(v[k], x[k], s, s_next, prev_sample=prev[k], **kw).log_prob.tolist()
            g = torch.Generator().manual_seed(SEED + k)
            drawn += sde_step_with_logprob(v[k], x[k], s, s_next, generator=g, **kw).log_prob.tolist()
        note = f"SD3.5-M scheduler (shift {SHIFT}), {STEPS} steps x 2 latents of 16x64x64, noise level {a}"
        for mode, values in (("given", given), ("drawn", drawn)):
            rows.append({"case": f"{case}, {mode}", "reward": f"flow {kind} log-prob",
                         "paths": {f"{mode} x_next, {case}": values},
                         "note": note + (", x_next drawn by each side from the same seed" if mode == "drawn" else
                                         ", the same x_next")})
    return rows


def _official_source(args, commit: str) -> str:
    git_dir, pinned = args.sources[REPO]
    commit = pinned if commit == "pinned" else commit
    try:
        return git_show(git_dir, commit, FILE)
    except Exception:  # the mirror's snapshot predates the commit: the copy beside the work files, checked
        path = Path(args.work) / f"sd3_sde_with_logprob@{commit[:7]}.py"
        data = path.read_bytes()
        blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        if blob != CPS_BLOB:
            raise SystemExit(f"{path}: git blob {blob}, not {REPO}@{commit[:7]}'s {CPS_BLOB}") from None
        return data.decode()


def official(work, args):
    import torch

    out = {}
    for case, (kind, a, commit) in CASES.items():
        ns: dict = {"__name__": "sd3_sde_with_logprob"}
        exec(compile(_official_source(args, commit), FILE, "exec"), ns)
        step = ns["sde_step_with_logprob"]
        extra = {"sde_type": kind} if commit != "pinned" else {}  # ac4c86e's function has the "sde" step only
        sched, x, v, prev = _inputs()
        given, drawn = [], []
        for k, t in enumerate(sched.timesteps):
            tt = t.repeat(2)
            given += step(sched, v[k], tt, x[k], noise_level=a, prev_sample=prev[k], **extra)[1].tolist()
            g = torch.Generator().manual_seed(SEED + k)
            drawn += step(sched, v[k], tt, x[k], noise_level=a, generator=g, **extra)[1].tolist()
        sha = args.sources[REPO][1] if commit == "pinned" else commit
        for mode, values in (("given", given), ("drawn", drawn)):
            out[f"{case}, {mode}"] = {"scores": values, "official": f"{REPO}@{sha[:7]} sd3_sde_with_logprob.py"}
    return out


if __name__ == "__main__":
    main(ours, official)
