"""Issue 24's "done when", through the real ``rewardbench run-benchmark`` command: three models on 8 prompts, one of
which wins every prompt by construction (flat images, which JPEG compresses best, against noise). Its win rate is
100%, but 8 prompts cannot make that certain: the interval reaches below 70% (it is the exact Clopper–Pearson
interval of 8 of 8 prompts), the report names the interval method, and the Bradley–Terry table says the
strengths are not identified instead of printing a point."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image
from scipy.stats import binomtest

from rewardbench.cli.run_benchmark import run_benchmark as cli

N_PROMPTS = 8


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("certainty")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(N_PROMPTS):
        prompt = f"prompt {i}"
        # noisy_a is the noisier of the two noise models on half the prompts, noisy_b on the other half: they split
        amplitude = {"noisy_a": 90 if i < 4 else 30, "noisy_b": 30 if i < 4 else 90}
        images = {"flat": np.full((64, 64, 3), 60 + 10 * i, dtype=np.uint8)}
        for model, amp in amplitude.items():
            noise = rng.normal(128, amp, size=(64, 64, 3))
            images[model] = np.clip(noise, 0, 255).astype(np.uint8)
        for model, pixels in images.items():
            (d / model).mkdir(exist_ok=True)
            Image.fromarray(pixels).save(d / model / f"{i}.png")
            rows.append({"image": f"{model}/{i}.png", "prompt": prompt, "model": model})
    (d / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = d / "out"
    res = CliRunner().invoke(cli, ["--images", str(d / "manifest.jsonl"), "--baseline", "noisy_a", "--judges",
                                   "jpeg-compressibility", "--out", str(out), "--no-plots", "--n-boot", "200",
                                   "--num-workers", "0", "--no-progress"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return out


def test_a_model_that_wins_every_prompt_gets_an_interval_that_reflects_8_prompts(run):
    rows = pd.read_csv(run / "results.csv")
    wr = rows[(rows["metric"] == "win_rate") & (rows["category"] == "all")].set_index("model").loc["flat"]
    assert (wr["value"], wr["wins"], wr["losses"], wr["n_prompts"]) == (1.0, N_PROMPTS, 0, N_PROMPTS)
    exact = binomtest(N_PROMPTS, N_PROMPTS).proportion_ci(confidence_level=0.95, method="exact")
    assert wr["ci_high"] == 1.0 and wr["ci_low"] < 0.7 and wr["ci_low"] <= exact.low
    report = (run / "report.md").read_text()
    assert f"| flat | jpeg-compressibility | 100.0% [{100 * exact.low:.1f}%, 100.0%] |" in report  # 63.1%
    assert "[100.0%, 100.0%]" not in report


def test_the_report_names_the_interval_method_and_the_bradley_terry_prior(run):
    report = (run / "report.md").read_text()
    assert "Clopper–Pearson" in report and "Korn & Graubard" in report and "bootstrap" in report
    assert "prior of 1 virtual tie per compared pair" in report
    meta = json.loads((run / "results.json").read_text())["statistics"]
    assert "Clopper–Pearson" in meta["intervals"]["win_rate"] and "Student-t" in meta["intervals"]["mean"]
    assert meta["bradley_terry"]["prior_ties_per_pair"] == 1.0


def test_a_separated_ranking_is_not_printed_as_a_point(run):
    rows = pd.read_csv(run / "results.csv")
    bt = rows[(rows["metric"] == "bt_log_strength") & (rows["category"] == "all")].set_index("model")
    assert (bt["note"] == "not identified: flat won every comparison").all()
    assert bt["ci_low"].isna().all() and bt["ci_high"].isna().all()
    report = (run / "report.md").read_text()
    assert "| jpeg-compressibility | 1 | flat | not identified: flat won every comparison | 16 |" in report
