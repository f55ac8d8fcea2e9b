"""The agreement benchmark end to end: a constructed set with outcomes known by construction, a real-photo set,
reward against reward with its heat map, the CLI and its board."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import rewardbench
from rewardbench import RewardModel, RewardOutput, RewardSpec, WeightSource
from rewardbench.benchmarks.agreement import agreement_between, image_rows, reward_agreement, run_agreement
from rewardbench.benchmarks.agreement_data import load_preference_file
from rewardbench.benchmarks.agreement_sets import photo_distortion_set
from rewardbench.cli.agreement import agreement
from rewardbench.leaderboards.board import read_board
from rewardbench.leaderboards.plots import cluster_order, matrix_from_rows
from rewardbench.provenance import NO_WEIGHTS
from rewardbench.registry import REGISTRY

RIGHT, NEGATION, CONSTANT = "jpeg-incompressibility", "jpeg-compressibility", "test-constant-reward"


class _Constant(RewardModel):
    spec = RewardSpec(name=CONSTANT, category="baseline", license="MIT", paper="test: the same score for every image")

    def score(self, pixels, prompts, groups):
        return RewardOutput(torch.zeros(pixels.shape[0]))


class _NeedsWeights(_Constant):
    spec = RewardSpec(name="test-needs-weights", category="baseline", license="MIT", paper="test",
                      weights=(WeightSource("hub", "nobody/none"),))


@pytest.fixture(scope="module", autouse=True)
def test_rewards():
    for cls in (_Constant, _NeedsWeights):
        rewardbench.register_reward()(cls)
    yield
    for cls in (_Constant, _NeedsWeights):
        REGISTRY.remove(cls.spec.name)


def _detail(level: float, seed: int, size: int = 48) -> Image.Image:
    """Flat grey plus noise of amplitude ``level``: more detail -> a bigger JPEG, by construction."""
    rng = np.random.default_rng(seed)
    arr = np.clip(128 + level * rng.normal(size=(size, size, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(arr)


@pytest.fixture(scope="module")
def constructed(tmp_path_factory):
    """The documented schema on disk: 8 pairs (the more detailed image preferred, at either position), 2 human
    ties (the same image twice), 3 rankings of 3 images. JPEG incompressibility is right by design."""
    d = tmp_path_factory.mktemp("prefs")
    rows = []
    for i in range(8):
        lo, hi = f"p{i}_lo.png", f"p{i}_hi.png"
        _detail(2, i).save(d / lo)
        _detail(40, 100 + i).save(d / hi)
        images, choice = ([hi, lo], 0) if i % 2 == 0 else ([lo, hi], 1)
        rows.append({"id": f"pair{i}", "prompt": f"texture {i}", "images": images, "choice": choice,
                     "category": "pairs"})
    for i in range(2):
        _detail(20, 200 + i).save(d / f"t{i}.png")
        rows.append({"id": f"tie{i}", "prompt": f"tie {i}", "images": [f"t{i}.png", f"t{i}.png"], "choice": None,
                     "tie": True, "category": "ties"})
    for i in range(3):
        names = [f"r{i}_{k}.png" for k in range(3)]
        for k, n in enumerate(names):
            _detail([1, 15, 60][k], 300 + 3 * i + k).save(d / n)
        rows.append({"id": f"rank{i}", "prompt": f"ranked {i}", "images": names, "ranking": [3, 2, 1],
                     "category": "rankings"})
    path = d / "constructed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _value(rows, subject, metric="accuracy", category="all", protocol_prefix=None):
    sel = rows[(rows.subject == subject) & (rows.metric == metric) & (rows.category == category)]
    if protocol_prefix:
        sel = sel[sel.protocol.str.startswith(protocol_prefix)]
    assert len(sel) == 1, sel
    return sel.iloc[0]


def test_known_outcomes_by_construction(constructed):
    pset = load_preference_file(constructed)
    assert len(pset) == 13 and pset.kind == "mixed"
    res = run_agreement(pset, [RIGHT, NEGATION, CONSTANT], n_boot=300, progress=False)
    rows = res.rows
    assert _value(rows, RIGHT).value == 1.0
    assert _value(rows, NEGATION).value == 0.0
    constant = _value(rows, CONSTANT)
    assert constant.value == 0.5  # every untied human pair is a reward tie: half credit each
    assert constant.n == 8 + 3 * 3 and constant.protocol == "drop-ties (tie threshold 0)"
    for cat in ("pairs", "rankings"):
        assert _value(rows, RIGHT, category=cat).value == 1.0 and _value(rows, NEGATION, category=cat).value == 0.0
    assert _value(rows, RIGHT, "kendall_tau", "rankings").value == pytest.approx(1.0)
    assert _value(rows, NEGATION, "spearman", "rankings").value == pytest.approx(-1.0)
    assert set(rows.judge) == {"human"} and set(rows.suite) == {"constructed"}
    assert rows.loc[rows.subject == CONSTANT, "weights"].iloc[0] == "none (no weights needed)"


def test_pickapic_protocol_counts_human_ties(constructed):
    pairs = load_preference_file(constructed)
    pairs.items = [it for it in pairs.items if len(it.images) == 2]  # 8 pairs + 2 ties
    rows = run_agreement(pairs, [RIGHT, NEGATION, CONSTANT], protocol="pickapic", n_boot=200,
                         progress=False).rows
    # identical images tie under the reward too: right on ties; a constant predicts a tie everywhere
    assert _value(rows, RIGHT, protocol_prefix="pickapic").value == 1.0
    assert _value(rows, NEGATION, protocol_prefix="pickapic").value == pytest.approx(2 / 10)
    assert _value(rows, CONSTANT, protocol_prefix="pickapic").value == pytest.approx((8 * 0.5 + 2) / 10)
    # the same run also reports ties dropped: protocols are part of the number
    assert _value(rows, CONSTANT, protocol_prefix="drop-ties").value == 0.5


def _pick_layout(path, n_ties: int, n_pairs: int, seed: int):
    """Pick-a-Pic's hub layout: human ties between two images of the same detail (JPEG sizes a little apart),
    clear pairs between very different detail (sizes far apart)."""
    import io

    def png(level, s):
        buf = io.BytesIO()
        _detail(level, s).save(buf, format="PNG")
        return buf.getvalue()

    rows = [{"caption": f"tie {i}", "jpg_0": png(20, seed + 2 * i), "jpg_1": png(20, seed + 2 * i + 1),
             "label_0": 0.5, "label_1": 0.5, "has_label": True} for i in range(n_ties)]
    rows += [{"caption": f"pair {i}", "jpg_0": png(40, seed + 50 + i), "jpg_1": png(1, seed + 80 + i),
              "label_0": 1.0, "label_1": 0.0, "has_label": True} for i in range(n_pairs)]
    pd.DataFrame(rows).to_parquet(path)
    return path


def test_pickapic_tie_threshold_tuned_on_a_calibration_split(tmp_path):
    test = _pick_layout(tmp_path / "test.parquet", 4, 4, 0)
    calib = _pick_layout(tmp_path / "validation.parquet", 4, 4, 1000)
    untuned = run_agreement("pickapic-v2", [RIGHT], path=test, n_boot=100, progress=False).rows
    assert _value(untuned, RIGHT, protocol_prefix="pickapic").value == pytest.approx((4 * 0.5 + 4) / 8)
    res = run_agreement("pickapic-v2", [RIGHT], path=test, tune_split="validation_unique", tune_path=calib,
                        n_boot=100, progress=False)
    assert 0 < res.tie_thresholds[RIGHT] < 0.9
    row = _value(res.rows, RIGHT, protocol_prefix="pickapic")
    assert row.value == 1.0 and row.protocol.endswith("tuned on validation_unique)")
    with pytest.raises(ValueError, match="--tune-data"):
        run_agreement("pickapic-v2", [RIGHT], path=test, tune_split="validation_unique", progress=False)


def test_real_photos_against_their_damaged_copies():
    pset = photo_distortion_set(photos=("astronaut", "coffee", "rocket", "camera"), size=128)
    rows = run_agreement(pset, [RIGHT, NEGATION], n_boot=300, progress=False).rows
    # more JPEG bytes for the original than for its blurred, JPEG-q5 or pixelated copy; fewer than with noise
    for cat, expected in (("blur", 1.0), ("jpeg-q5", 1.0), ("pixelate", 1.0), ("noise", 0.0)):
        assert _value(rows, RIGHT, category=cat).value == expected, cat
        assert _value(rows, NEGATION, category=cat).value == 1.0 - expected, cat
    assert _value(rows, RIGHT).value == 0.75 and set(rows.judge) == {"construction"}


def test_reward_against_reward_and_heat_map(tmp_path):
    pset = photo_distortion_set(photos=("astronaut", "coffee", "rocket"), size=96)
    table = rewardbench.Scorer([RIGHT, NEGATION, CONSTANT], num_workers=0, progress=False).run(image_rows(pset)).table
    assert len(table) == 3 * 5  # each original once, plus its four copies
    hib = {RIGHT: True, NEGATION: True, CONSTANT: True}
    rows = reward_agreement(table, [RIGHT, NEGATION, CONSTANT], higher_is_better=hib,
                            weights={n: [NO_WEIGHTS] for n in hib}, suite="photos", n_boot=200)
    m = matrix_from_rows(rows)
    assert m.loc[RIGHT, NEGATION] == 0.0 and m.loc[NEGATION, RIGHT] == 0.0  # exact opposites
    assert m.loc[RIGHT, CONSTANT] == 0.5  # a constant ties every pair
    assert np.allclose(m.to_numpy(), m.to_numpy().T)
    spearman = rows[(rows.metric == "spearman") & (rows.subject == RIGHT) & (rows.judge == NEGATION)]
    assert spearman.value.iloc[0] == pytest.approx(-1.0)
    assert sorted(cluster_order(m)) == sorted(m.index)
    # redundant rewards end up next to each other in the heat map's order
    m2 = m.copy()
    m2.loc["copy-of-right"] = m2.loc[RIGHT]
    m2["copy-of-right"] = list(m2.loc[RIGHT]) + [1.0]
    order = cluster_order(m2)
    assert abs(order.index("copy-of-right") - order.index(RIGHT)) == 1


def test_a_pre_scored_table_lends_its_recorded_weights(tmp_path):
    pset = photo_distortion_set(photos=("astronaut",), size=64)
    names = [RIGHT, CONSTANT]
    for ext in ("parquet", "csv"):
        out = tmp_path / f"s.{ext}"
        rewardbench.Scorer(names, num_workers=0, progress=False).run(image_rows(pset), out=out)
        rows = agreement_between(names, str(out), n_boot=50)  # nothing scored again: read from the table
        weights_kind = set(rows["weights_kind"])
        # parquet records each reward's weights once in its metadata; CSV has nowhere to keep them
        assert weights_kind == ({"none"} if ext == "parquet" else {"unknown"}), ext


def test_group_rewards_are_refused():
    with pytest.raises(ValueError, match="granularity 'group'"):
        run_agreement(photo_distortion_set(photos=("coffee",), size=32), ["vendi"], progress=False)


def test_cli_prints_rows_writes_files_and_a_board(constructed, tmp_path):
    boards = tmp_path / "boards"
    out = CliRunner().invoke(agreement, ["--dataset", str(constructed), "--rewards", f"{RIGHT},{NEGATION}",
                                         "--out", str(tmp_path / "rows.csv"), "--to-leaderboard", "agreement",
                                         "--boards-dir", str(boards), "--n-boot", "100"])
    assert out.exit_code == 0, out.output
    assert "| jpeg-incompressibility | human | constructed |" in out.output
    board = read_board("agreement", root=boards)
    assert set(board.subject) == {RIGHT, NEGATION}
    assert len(pd.read_csv(tmp_path / "rows.csv")) == len(board)
    again = CliRunner().invoke(agreement, ["--dataset", str(constructed), "--rewards", RIGHT, "--to-leaderboard",
                                           "agreement", "--boards-dir", str(boards), "--n-boot", "100"])
    assert again.exit_code == 0 and len(read_board("agreement", root=boards)) == len(board)  # replaced, not added


def test_cli_random_weights_never_reach_a_board(constructed, tmp_path):
    boards = tmp_path / "boards"
    out = CliRunner().invoke(agreement, ["--dataset", str(constructed), "--rewards", "test-needs-weights",
                                         "--random-weights", "--to-leaderboard", "agreement", "--boards-dir",
                                         str(boards), "--n-boot", "50"])
    assert out.exit_code == 2  # refused before anything is scored: a usage error
    assert "random-weights" in out.output and "real weights" in out.output
    assert not (boards / "agreement.csv").exists()


def test_cli_between_rewards_heat_map(tmp_path):
    png = tmp_path / "agree.png"
    out = CliRunner().invoke(agreement, ["--between-rewards", "--images", "photo-distortions", "--rewards",
                                         f"{RIGHT},{NEGATION}", "--heatmap", str(png), "--json", "--n-boot", "50"])
    assert out.exit_code == 0, out.output
    assert png.read_bytes()[:4] == b"\x89PNG"
    rows = json.loads(out.output[out.output.index("["):out.output.rindex("]") + 1])
    assert {r["metric"] for r in rows} == {"pair_agreement", "spearman", "kendall_tau"}


def test_cli_usage_errors():
    runner = CliRunner()
    assert runner.invoke(agreement, ["--dataset", "photo-distortions"]).exit_code == 2  # no --rewards
    assert runner.invoke(agreement, ["--dataset", "photo-distortions", "--rewards", "jpeg-incompressibilty"]
                         ).exit_code == 2  # unknown reward, with a suggestion
    assert runner.invoke(agreement, ["--rewards", RIGHT, "--heatmap", "x.png", "--dataset", "x"]).exit_code == 2
    listed = runner.invoke(agreement, ["--list-datasets", "--json"])
    assert listed.exit_code == 0
    names = {d["name"] for d in json.loads(listed.output)}
    assert {"pickapic-v2", "hpdv2", "imagerewarddb", "hpdv3", "mmrb2-t2i", "genai-bench",
            "photo-distortions"} <= names
