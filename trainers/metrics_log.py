"""The trainer's log: metrics.csv (one row per iteration and task, the L_pre step and each held-out judge),
TensorBoard scalars, sample grids and the reward curve.

A row's ``iteration`` is N for the N-th iteration, counted from 1: the number of iterations completed when it is
written, the N of ``checkpoints/step_N`` and ``eval/step_N``.

    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> log = Logger(out, tensorboard=False)
    >>> log.log({"iteration": 1, "task": "compress", "reward_mean": -1.5})
    >>> (out / "metrics.csv").read_text().splitlines()[1][:20]
    '1,compress,-1.5,,,,,'
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

HELDOUT = "heldout/"  # task prefix of the held-out judges' rows (evaluation while training): heldout/<judge>
LOG_FIELDS = ["iteration", "task", "reward_mean", "reward_std", "loss", "policy_loss", "pretrain_loss", "clipfrac",
              "approx_kl", "grad_norm", "lr", "sample_s", "reward_s", "reward_wait_s", "update_s",
              # rows of the HELDOUT tasks: reward_mean is the judge's mean
              "heldout_ci_low", "heldout_ci_high", "heldout_base", "heldout_win_rate"]


class Logger:
    """metrics.csv (one row per iteration and task, the L_pre step and each held-out judge), TensorBoard
    scalars, sample grids, reward curve."""

    def __init__(self, out: Path, tensorboard: bool, resume_step: int = 0):
        self.out = out
        self.csv = out / "metrics.csv"
        rows = []
        if self.csv.is_file():  # keep what the resumed run had logged up to its checkpoint (after step N: rows 1..N)
            with self.csv.open() as f:
                rows = [r for r in csv.DictReader(f) if int(r["iteration"]) <= resume_step]
        with self.csv.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=LOG_FIELDS)
            w.writeheader()
            w.writerows(rows)
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out / "tensorboard"), purge_step=resume_step + 1)
            except ImportError:
                self.tb = None

    def log(self, row: dict) -> None:
        with self.csv.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=LOG_FIELDS).writerow({k: row.get(k, "") for k in LOG_FIELDS})
        if self.tb is not None:
            for k, v in row.items():
                if k not in ("iteration", "task") and isinstance(v, (int, float)):
                    self.tb.add_scalar(f"{row['task']}/{k}", v, row["iteration"])

    def save_grid(self, images: torch.Tensor, prompts: Sequence[str], rewards: torch.Tensor, name: str) -> Path:
        from PIL import Image

        from rewardbench.images import pixels_to_uint8

        arrs = pixels_to_uint8(images[:16].float().cpu())
        n = len(arrs)
        cols = min(4, n)
        rows = (n + cols - 1) // cols
        h, w = arrs[0].shape[:2]
        grid = np.zeros((rows * h, cols * w, 3), np.uint8)
        for i, a in enumerate(arrs):
            grid[(i // cols) * h:(i // cols + 1) * h, (i % cols) * w:(i % cols + 1) * w] = a
        d = self.out / "samples"
        d.mkdir(exist_ok=True)
        path = d / f"{name}.png"
        Image.fromarray(grid).save(path)
        (d / f"{name}.json").write_text(json.dumps([{"prompt": p, "reward": float(r)}
                                                    for p, r in zip(prompts[:n], rewards[:n].tolist())]))
        return path

    def plot(self) -> Path | None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import pandas as pd

        df = pd.read_csv(self.csv).dropna(subset=["reward_mean"])  # the pretraining-loss step has no reward
        df = df[~df["task"].astype(str).str.startswith(HELDOUT)]  # held-out judges: training_vs_heldout.png
        if df.empty:
            return None
        fig, ax = plt.subplots(figsize=(6, 4))
        for task, g in df.groupby("task"):
            ax.plot(g["iteration"], g["reward_mean"], label=str(task))
            ax.fill_between(g["iteration"], g["reward_mean"] - g["reward_std"], g["reward_mean"] + g["reward_std"],
                            alpha=0.2)
        ax.set_xlabel("iteration")
        ax.set_ylabel("reward (mean ± std)")
        ax.legend()
        fig.tight_layout()
        path = self.out / "reward_curve.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
