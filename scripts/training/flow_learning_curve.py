"""Learning evidence with controls for the flow-matching algorithms (Flow-GRPO, Flow-GRPO-Fast, DiffusionNFT) on the
tiny random Stable Diffusion 3 (or FLUX.1: ``--pretrained tiny-flux``), on a CPU, and their reward gained per
wall-clock second.

For each algorithm and seed, three runs of the real loop (`rewardbench.trainers.train`) share their prompts and
noise (`rewardbench.trainers.controls.controlled_runs`): rewarded for brightness, for its negation, and with a
constant reward (every advantage 0: Flow-GRPO leaves every sample out and takes no step; DiffusionNFT's r = 1/2
pulls its two implicit policies equally). Each iteration's images are compared image by image with the constant
run's, so the curve is what each model has learnt. At the end, held-out prompts (never trained on) are sampled
from each model's trained weights with fixed noise by the deterministic flow ODE (Flow-GRPO's and DiffusionNFT's
evaluation sampler) and compared the same way. The wall-clock seconds of each run's iterations (sampling,
rewards, update) give the brightness gained per second. Writes ``flow_learning_curve.csv`` (seed, algorithm,
iteration, arm), ``flow_learning_curve.json`` (settings, final numbers, seconds) and ``flow_learning_curve.png``.

    .venv/bin/python scripts/training/flow_learning_curve.py                          # the committed results
    .venv/bin/python scripts/training/flow_learning_curve.py --algorithms flow_grpo --seeds 0 --iterations 4 \\
        --out /tmp/flow_curve
    .venv/bin/python scripts/training/flow_learning_curve.py --pretrained tiny-flux --guidance 3.5 \\
        --out scripts/training/results/flux                                             # the FLUX results
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

HELDOUT = ["a bowl of fruit on a table", "a lighthouse by the sea"]
TRAIN_PROMPTS = ["a cat on a sofa", "a dog on a lawn"]
ARMS_ORDER = ("up", "down", "flat")
NAMES = {"flow_grpo": "Flow-GRPO", "flow_grpo_fast": "Flow-GRPO-Fast", "diffusion_nft": "DiffusionNFT"}


def brightness(images, prompts):
    return images.mean(dim=(1, 2, 3))


def config(args, algorithm: str, seed: int, out: Path):
    from rewardbench.trainers.config import load_config

    # DiffusionNFT is CFG-free: guidance 1 on SD3; FLUX's guidance is an embedding, the same for every algorithm
    nft_guidance = args.guidance if args.pretrained.startswith("tiny-flux") else 1.0
    extra = {"flow_grpo_fast": [f"flow.window_size={args.window}", f"sample.guidance_scale={args.guidance}"],
             "diffusion_nft": [f"sample.guidance_scale={nft_guidance}"],
             "flow_grpo": [f"sample.guidance_scale={args.guidance}"]}[algorithm]
    return load_config(None, [
        f"train.algorithm={algorithm}", f"model.pretrained={args.pretrained}", f"model.resolution={args.resolution}",
        "model.lora=true", f"model.lora_rank={args.lora_rank}", f"model.lora_alpha={args.lora_rank * 2}",
        "run.device=cpu", "run.tensorboard=false", "run.progress=false", f"sample.num_steps={args.steps}",
        f"run.iterations={args.iterations}", f"sample.batch_size={args.batch}", f"sample.micro_batch_size={args.batch}",
        f"sample.images_per_prompt={args.batch // len(TRAIN_PROMPTS)}", f"train.micro_batch_size={args.batch}",
        f"train.lr={args.lr}", "run.checkpoint_every=0", "run.sample_every=0", f"run.seed={seed}",
        "tasks.0.name=bright", f"tasks.0.prompts={json.dumps(TRAIN_PROMPTS)}", "tasks.0.allow_eval_overlap=true",
        f"run.output_dir={out / f'{algorithm}_seed{seed}'}", *extra, *args.set])


def run_one(args, algorithm: str, seed: int, out: Path) -> tuple[list[dict], dict]:
    from rewardbench.trainers.controls import controlled_runs, heldout_scores, versus_constant

    cfg = config(args, algorithm, seed, out)
    runs = controlled_runs(cfg, brightness)
    held = {arm: heldout_scores(cfg, runs[arm]["result"]["unet"], HELDOUT, brightness, args.heldout_images)
            for arm in ARMS_ORDER}
    rows, summary = versus_constant(runs, held)
    seconds = {arm: sum(h["sample_s"] + h["reward_s"] + h["update_s"] for h in runs[arm]["result"]["history"]
                        if "sample_s" in h) for arm in ARMS_ORDER}
    # the least seconds of the arms that did the same work (Flow-GRPO's constant arm takes no step; DiffusionNFT's
    # does), so that a neighbour's load on a shared machine weighs as little as it can
    cost = min(seconds[a] for a in (ARMS_ORDER if algorithm == "diffusion_nft" else ("up", "down")))
    summary = {"seed": seed, "algorithm": algorithm, **summary, "seconds": {a: round(v, 2) for a, v in seconds.items()},
               # the rewarded run's brightness gained over the control (last 3 iterations) per second of the loop
               "gain_per_second": summary["last3_vs_constant"]["up"]["diff"] / cost}
    return [{"seed": seed, "algorithm": algorithm, **r} for r in rows], summary


def plot(rows: list[dict], summaries: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    df = pd.DataFrame(rows)
    algos = list(dict.fromkeys(df.algorithm))
    fig, axes = plt.subplots(1, len(algos), figsize=(5 * len(algos), 4.2), squeeze=False, sharey=True)
    colors = {"up": "tab:orange", "down": "tab:blue"}
    names = {"up": "rewarded for brightness", "down": "rewarded for darkness"}
    for ax, algo in zip(axes[0], algos):
        sub = df[(df.algorithm == algo) & (df.arm != "flat")]
        for (seed, arm), g in sub.groupby(["seed", "arm"]):
            ax.plot(g.iteration, g.vs_constant, color=colors[arm], alpha=0.85,
                    label=names[arm] if seed == sub.seed.min() else None)
            ax.fill_between(g.iteration, g.vs_constant - 2 * g.se, g.vs_constant + 2 * g.se, color=colors[arm],
                            alpha=0.15)
        ax.axhline(0, color="black", lw=0.8, label="constant reward (control)")
        mine = [s for s in summaries if s["algorithm"] == algo]
        held = "; ".join(f"s{s['seed']} {s['heldout_vs_constant']['up']['diff']:+.1e}/"
                         f"{s['heldout_vs_constant']['down']['diff']:+.1e}" for s in mine)
        ax.set_title(f"{NAMES[algo]}: vs the constant run (±2 SE)\nheld out, bright/dark: {held}", fontsize=7)
        ax.set_xlabel("iteration")
    axes[0][0].set_ylabel("mean brightness difference")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--algorithms", default="flow_grpo,flow_grpo_fast,diffusion_nft")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--iterations", type=int, default=8)
    p.add_argument("--batch", type=int, default=64, help="images per iteration (two prompts, half each)")
    p.add_argument("--resolution", type=int, default=8)
    p.add_argument("--steps", type=int, default=10, help="sampling steps")
    p.add_argument("--pretrained", default="tiny-sd3", help="the tiny random flow model: tiny-sd3 or tiny-flux")
    p.add_argument("--guidance", type=float, default=1.0,
                   help="CFG of the Flow-GRPO runs (DiffusionNFT: 1); tiny-flux: the guidance embedding of every run")
    p.add_argument("--window", type=int, default=3, help="Flow-GRPO-Fast's window")
    p.add_argument("--lora-rank", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-3, help="(1e-2 overshoots: Adam's first steps are lr-sized)")
    p.add_argument("--heldout-images", type=int, default=32, help="images per held-out prompt")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a config override for every run, e.g. flow.kl_beta=0 (repeatable)")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    p.add_argument("--plot-only", action="store_true", help="redraw the plot from --out's CSV and JSON")
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.plot_only:
        import pandas as pd

        result = json.loads((out / "flow_learning_curve.json").read_text())
        plot(pd.read_csv(out / "flow_learning_curve.csv").to_dict("records"), result["runs"],
             out / "flow_learning_curve.png")
        return result
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows, summaries = [], []
    with tempfile.TemporaryDirectory(prefix="rb_flow_curve_") as tmp:
        for algorithm in args.algorithms.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                r, s = run_one(args, algorithm, seed, Path(tmp))
                rows += r
                summaries.append(s)
                print(json.dumps(s), flush=True)
    import pandas as pd

    pd.DataFrame(rows).to_csv(out / "flow_learning_curve.csv", index=False)
    result = {"settings": vars(args), "train_prompts": TRAIN_PROMPTS, "heldout_prompts": HELDOUT,
              "weights": f"{args.pretrained}: random weights (seed 0), offline", "runs": summaries,
              "seconds": round(time.perf_counter() - t0, 1), "machine": platform.platform()}
    (out / "flow_learning_curve.json").write_text(json.dumps(result, indent=2))
    plot(rows, summaries, out / "flow_learning_curve.png")
    return result


if __name__ == "__main__":
    main()
