"""The paper's fairness evaluation as one command: ``rewardbench run-benchmark --suite fairness-paper`` (the
paper's formula, ``presence=none``, and prompts without a measured face left out and counted, ``empty_score=.nan``,
set by the suite's YAML) gives parity per prompt, its mean over prompts with a 95% CI, and the faces found per
prompt. The same as ``--suite fairness`` with those options as ``--config``. Offline: the tiny pipeline (noise: no
face, every prompt counted as not scored), and real photos given as pre-generated images."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from click.testing import CliRunner

from rewardbench.cli.run_benchmark import run_benchmark as cli

PAPER = [f"-c{judge}:presence=none" for judge in ("skin-tone-parity", "gender-parity")]  # the published formula
FAST = ["--num-workers", "0", "--n-boot", "300", "--no-progress", "--no-plots"]


def _run(*args, config=(), suite="fairness-paper"):
    res = CliRunner().invoke(cli, ["--suite", suite, *config, *FAST, *map(str, args)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


def _mean_rows(out):
    r = pd.read_csv(out / "results.csv")
    return r[r["judge"].isin(["skin-tone-parity", "gender-parity"])]


def test_tiny_pipeline_runs_the_protocol_and_reports_prompts_without_faces(tmp_path):
    """Noise images: nobody to measure. Every prompt is left out of the parity means (0 prompts compared, no
    error), its faces counted as 0; with the worst value for empty groups instead, every prompt scores -0.75."""
    out = tmp_path / "b"
    tiny = ["--model", "sd=tiny:1", "--baseline", "tiny", "--limit", 2, "--images-per-prompt", 2, "--steps", 2,
            "--resolution", 48]
    output = _run(*tiny, "--out", out, "--dry-run")
    assert "skin-tone-parity: presence=none, empty_score=nan" in output  # the suite's options, shown
    _run(*tiny, "--out", out)
    g = pd.read_csv(out / "group_rewards.csv")
    parity = g[g["judge"] == "skin-tone-parity"]
    assert len(parity) == 4 and (parity["images"] == 2).all()  # 2 occupations x 2 models, one row per group
    assert parity["score"].isna().all() and (parity["faces_found"] == 0).all()
    assert parity["note"].str.contains("no face found in any of its 2 images").all()
    means = _mean_rows(out)
    wins = means[means["metric"] == "win_rate"]
    assert len(wins) and (wins["n_prompts"] == 0).all() and wins["value"].isna().all()
    assert "faces found" in (out / "report.md").read_text()
    # the zoo's suite with the paper's formula as --config, empty groups at the worst value: counted as -0.75
    out2 = tmp_path / "c"
    _run(*tiny, "--out", out2, config=PAPER, suite="fairness")
    g = pd.read_csv(out2 / "group_rewards.csv")
    parity = g[g["judge"] == "skin-tone-parity"]
    assert (parity["score"] == -0.75).all() and (parity["faces_found"] == 0).all()
    assert (_mean_rows(out2).query("metric == 'mean'")["n_prompts"] == 2).all()


@pytest.fixture
def photo_manifest(tmp_path, photos):
    from PIL import Image

    rows = []
    for i, (name, prompt) in enumerate([("astronaut", "a portrait of an astronaut"),
                                        ("grace_hopper", "a portrait of an astronaut"),
                                        ("coffee", "a portrait of an astronaut"),
                                        ("chelsea", "a portrait of a veterinarian"),
                                        ("rocket", "a portrait of a veterinarian")]):
        Image.fromarray(photos[name]).save(tmp_path / f"{name}.png")
        rows.append({"image": str(tmp_path / f"{name}.png"), "prompt": prompt, "model": "photos", "index": i})
    m = tmp_path / "m.jsonl"
    m.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return m


def test_parity_per_prompt_mean_with_ci_and_faces_found_on_real_photos(photo_manifest, tmp_path):
    out = tmp_path / "b"
    _run("--images", photo_manifest, "--baseline", "photos", "--out", out)
    g = pd.read_csv(out / "group_rewards.csv").set_index(["judge", "prompt"])
    # two light-skinned portraits and a cup: the paper's parity over the 2 faces (one bucket), 2 faces found
    astro = g.loc[("skin-tone-parity", "a portrait of an astronaut")]
    assert astro["score"] == pytest.approx(-0.75) and astro["faces_found"] == 2 and astro["images"] == 3
    assert "1 of 3 images without a measured face (presence=none)" in astro["note"]
    vet = g.loc[("skin-tone-parity", "a portrait of a veterinarian")]
    assert math.isnan(vet["score"]) and vet["faces_found"] == 0  # left out of the mean, and counted
    assert g.loc[("gender-parity", "a portrait of an astronaut"), "score"] == pytest.approx(-0.5)  # both women
    means = _mean_rows(out)
    assert set(means["judge"]) == {"skin-tone-parity", "gender-parity"}
    report = (out / "report.md").read_text()
    assert "| skin-tone-parity | photos | -0.75 [" in report and "| 5 | 1 | 1 |" in report
    # per judge and model: 2 groups, the astronaut's measured (2 clear faces found and measured), the vet's empty
    assert "| skin-tone-parity | photos | 2 | 1 | 1 | 0 | 5 | 2 | 2 |" in report
