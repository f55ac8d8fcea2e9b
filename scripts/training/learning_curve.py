"""A longer CPU learning curve of the RL trainer, with controls: does it learn, and only what it is rewarded for?

For each seed, three runs of the real loop on the tiny offline pipeline share their prompts and noise: one
rewarded for brightness, one for its negation, one with a constant reward (zero advantages: no gradient). Each
iteration's images are compared image by image with the constant run's (common random numbers), so the curve
is the effect of what each model has learnt with a standard error far below the images' own spread; at the
end, held-out prompts (never trained on) are sampled with fixed noise from each model. Writes
``learning_curve.csv`` (one row per seed, iteration and arm), ``learning_curve.json`` (settings, final
numbers) and ``learning_curve.png`` into ``--out``.

    .venv/bin/python scripts/training/learning_curve.py                      # 3 seeds x 40 iterations (~5 min)
    .venv/bin/python scripts/training/learning_curve.py --seeds 0 --iterations 10 --out /tmp/curve
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


def brightness(images, prompts):
    return images.mean(dim=(1, 2, 3))


def config(args, seed: int, out: Path):
    from rewardbench.trainers.config import load_config

    return load_config(None, [
        "model.pretrained=tiny", f"model.resolution={args.resolution}", "model.lora=false", "run.device=cpu",
        "run.tensorboard=false", f"sample.num_steps={args.steps}", f"train.timesteps_per_iter={args.k}",
        f"run.iterations={args.iterations}", f"sample.batch_size={args.batch}", f"sample.micro_batch_size={args.batch}",
        f"train.micro_batch_size={args.batch}", f"train.lr={args.lr}", f"train.step_mode={args.step_mode}",
        "run.checkpoint_every=0", "run.sample_every=0", f"run.seed={seed}", "tasks.0.name=bright",
        f"tasks.0.prompts={json.dumps(TRAIN_PROMPTS)}", f"run.output_dir={out / f'seed{seed}'}"])


def run_seed(args, seed: int, out: Path) -> tuple[list[dict], dict]:
    from rewardbench.trainers.controls import controlled_runs, heldout_scores, versus_constant

    cfg = config(args, seed, out)
    runs = controlled_runs(cfg, brightness)
    held = {arm: heldout_scores(cfg, runs[arm]["result"]["unet"], HELDOUT, brightness, args.heldout_images)
            for arm in ARMS_ORDER}
    rows, summary = versus_constant(runs, held)
    return [{"seed": seed, **r} for r in rows], {"seed": seed, **summary}


def plot(rows: list[dict], summaries: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    df = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=(8, 4.6))
    colors = {"up": "tab:orange", "down": "tab:blue"}
    names = {"up": "rewarded for brightness", "down": "rewarded for darkness"}
    for (seed, arm), g in df[df.arm != "flat"].groupby(["seed", "arm"]):
        label = names[arm] if seed == df.seed.min() else None
        ax.plot(g.iteration, g.vs_constant, color=colors[arm], alpha=0.85, label=label)
        ax.fill_between(g.iteration, g.vs_constant - 2 * g.se, g.vs_constant + 2 * g.se, color=colors[arm], alpha=0.15)
    ax.axhline(0, color="black", lw=0.8, label="constant reward (control)")
    held = "; ".join(f"seed {s['seed']} {s['heldout_vs_constant']['up']['diff']:+.1e} / "
                     f"{s['heldout_vs_constant']['down']['diff']:+.1e}" for s in summaries)
    ax.set_title(f"Brightness vs the constant-reward run, image by image (±2 SE)\nheld-out prompts at the end, "
                 f"bright / dark model: {held}", fontsize=7)
    ax.set_xlabel("iteration")
    ax.set_ylabel("mean brightness difference")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--iterations", type=int, default=40)
    p.add_argument("--batch", type=int, default=128, help="images per iteration")
    p.add_argument("--resolution", type=int, default=8)
    p.add_argument("--steps", type=int, default=10, help="DDIM steps")
    p.add_argument("--k", type=int, default=5, help="timesteps trained per iteration")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--step-mode", default="paper", choices=["paper", "ddpo"])
    p.add_argument("--heldout-images", type=int, default=64, help="images per held-out prompt")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    p.add_argument("--plot-only", action="store_true", help="redraw the plot from --out's CSV and JSON")
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.plot_only:
        import pandas as pd

        result = json.loads((out / "learning_curve.json").read_text())
        plot(pd.read_csv(out / "learning_curve.csv").to_dict("records"), result["seeds"], out / "learning_curve.png")
        return result
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows, summaries = [], []
    with tempfile.TemporaryDirectory(prefix="rb_curve_") as tmp:
        for seed in (int(s) for s in args.seeds.split(",")):
            r, s = run_seed(args, seed, Path(tmp))
            rows += r
            summaries.append(s)
            print(json.dumps(s), flush=True)
    import pandas as pd

    pd.DataFrame(rows).to_csv(out / "learning_curve.csv", index=False)
    result = {"settings": vars(args), "train_prompts": TRAIN_PROMPTS, "heldout_prompts": HELDOUT,
              "seeds": summaries, "seconds": round(time.perf_counter() - t0, 1), "machine": platform.platform()}
    (out / "learning_curve.json").write_text(json.dumps(result, indent=2))
    plot(rows, summaries, out / "learning_curve.png")
    return result


if __name__ == "__main__":
    main()
