"""``score --engine ray`` (`rewardbench.ray_scoring.RayScorer`) on a local Ray cluster (2 CPUs): decoding in Ray Data
tasks, rewards on actor pools, the same table as the local Scorer on the same manifest (a broken image and an empty
prompt included), resumable after an interruption (rows already in the shards are not scored again)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import rewardbench
from rewardbench.results import read_table

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'rewardbench[ray]'")

REWARDS = ["jpeg-compressibility", "clipscore-b32"]
CONFIG = {"clipscore-b32": {"tiny": True}}


SERVICE = "score-tests"


@pytest.fixture(scope="module")
def cluster():
    """A local cluster and one reward service that every run of this module scores with (``service=``): a run
    that serves its rewards itself is the same code less the start (tests/test_remote.py starts services)."""
    from rewardbench.service import RewardService, ServedReward

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, namespace="rewardbench")
    ray.data.DataContext.get_current().enable_progress_bars = False
    service = RewardService([ServedReward("jpeg-compressibility", num_cpus=0.25, also=("jpeg-incompressibility",)),
                             ServedReward("clipscore-b32", num_cpus=0.25, pretrained=False, config={"tiny": True},
                                          seed=0)], name=SERVICE).start()
    yield service
    service.shutdown()
    ray.shutdown()


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    lines = []
    for i in range(14):
        size = 24 if i % 3 else 32  # two sizes: batches of mixed sizes
        Image.fromarray((rng.random((size, size, 3)) * 255).astype(np.uint8)).save(root / f"{i}.png")
        lines.append({"image": f"{i}.png", "prompt": "" if i == 5 else f"prompt {i}", "model": f"m{i % 2}"})
    (root / "broken.png").write_bytes(b"not a png")
    lines.insert(7, {"image": "broken.png", "prompt": "x", "model": "m0"})
    path = root / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path


@pytest.fixture(scope="module")
def local_run(manifest):
    torch.manual_seed(0)
    out = manifest.parent / "local.parquet"
    res = rewardbench.Scorer(REWARDS, batch_size=4, num_workers=0, pretrained=False, reward_config=CONFIG,
                             progress=False).run(manifest, out=out)
    assert res.n_failed == 2  # the broken image; clipscore on the empty prompt
    return res.table, out


class _Interrupted(RuntimeError):
    pass


def test_ray_engine_gives_the_local_table_and_resumes(cluster, manifest, local_run, tmp_path):
    from rewardbench.ray_scoring import RayScorer

    local_table, local_out = local_run
    out = tmp_path / "scores.parquet"

    class StopsMidway(RayScorer):
        def _score_all(self, src, engine, writer, *args):
            add = writer.add
            seen = []

            def add_then_stop(rows):  # the driver dies after two batches are written
                add(rows)
                seen.append(len(rows))
                if len(seen) == 2:
                    raise _Interrupted("killed")
            writer.add = add_then_stop
            return super()._score_all(src, engine, writer, *args)

    first = StopsMidway(REWARDS, batch_size=4, pretrained=False, reward_config=CONFIG, service=SERVICE,
                        window_batches=2, progress=False, flush_rows=1)
    try:
        with pytest.raises(_Interrupted):
            first.run(manifest, out=out)
    finally:
        first.close()
    assert not out.exists() and (tmp_path / "scores.parquet.parts").is_dir()

    again = RayScorer(REWARDS, batch_size=4, pretrained=False, reward_config=CONFIG, service=SERVICE,
                      window_batches=2, progress=False)
    try:
        res = again.run(manifest, out=out)
    finally:
        again.close()
    # the first two batches' 8 rows were kept, less their 2 failed rows (the broken image, the empty prompt for
    # clipscore), which a re-run retries
    assert res.summary["resumed"] == 6 and res.summary["processed_now"] == len(local_table) - 6
    pd.testing.assert_frame_equal(res.table, local_table)
    pd.testing.assert_frame_equal(read_table(out), read_table(local_out))  # the files too
    assert res.summary["provenance"]["clipscore-b32"][0]["kind"] == "random"


def test_score_engine_ray_on_the_command_line(cluster, manifest, tmp_path):
    from click.testing import CliRunner

    from rewardbench.cli.score import score

    out = tmp_path / "cli.parquet"
    both = "jpeg-compressibility,jpeg-incompressibility"  # served together, by one replica sharing the JPEG encoder
    assert ray.get(cluster.replicas["jpeg-compressibility"][0].shares_backbone.remote())
    r = CliRunner().invoke(score, ["--model", both, "--images", str(manifest), "--out", str(out),
                                   "--engine", "ray", "--service", SERVICE, "--batch-size", "3", "--no-progress",
                                   "--json"])
    assert r.exit_code == 1, r.output  # the broken image fails: exit 1, listed
    local = rewardbench.Scorer(both, batch_size=3, num_workers=0, progress=False)
    local.run(manifest, out=tmp_path / "local.parquet")
    pd.testing.assert_frame_equal(read_table(out), read_table(tmp_path / "local.parquet"))
    assert json.loads(r.output[r.output.index("{"):])["summary"]["failed"] == 1
    # the ray options mean nothing to the local engine: refused before anything loads
    r = CliRunner().invoke(score, ["--model", "jpeg-compressibility", "--images", str(manifest), "--service", "x"])
    assert r.exit_code == 2 and "only with --engine ray" in r.output


def test_a_run_refuses_a_service_built_otherwise(cluster, manifest):
    from rewardbench.errors import UsageError
    from rewardbench.ray_scoring import RayScorer

    with pytest.raises(UsageError, match="tiny"):  # the service's clipscore is the tiny one
        RayScorer(["clipscore-b32"], pretrained=False, reward_config={"clipscore-b32": {"tiny": False}},
                  service=SERVICE)


def test_a_cluster_that_cannot_be_reached_is_an_error_not_a_local_ray(monkeypatch):
    """--address HOST:PORT that does not answer fails; only no address (or auto) starts a local Ray (no Ray is
    started here: its calls are stand-ins)."""
    import rewardbench.ray_scoring as rs

    started = []

    class _LocalStarted(Exception):
        pass

    def unreachable(address):
        raise ConnectionError(f"could not connect to {address}")

    def local_init(**kwargs):
        started.append(kwargs)
        raise _LocalStarted

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", local_init)
    monkeypatch.setattr(rs, "connect_ray", unreachable)
    with pytest.raises(ConnectionError, match="10.9.8.7:6379"):
        rs.RayScorer("jpeg-compressibility", address="10.9.8.7:6379")
    assert started == []
    for address in (None, "auto"):
        with pytest.raises(_LocalStarted):
            rs.RayScorer("jpeg-compressibility", address=address)
    assert len(started) == 2


def test_more_rewards_than_cpus_fit_the_cluster_and_give_the_local_table(cluster, manifest, tmp_path):
    """Three rewards on a 2-CPU cluster (a quarter of it held by the module's service): with no CPUs asked for,
    the replicas share what is free less a decoding task's, so the run finishes (one CPU per replica left the third
    waiting forever) and gives the local table; asked for one CPU each, the run is refused before any replica
    starts, saying what it asked for."""
    from rewardbench.ray_scoring import RayScorer

    three = ["jpeg-compressibility", "jpeg-incompressibility", "clipscore-b32"]
    before = {a["name"] for a in ray.util.list_named_actors(all_namespaces=True)}
    with pytest.raises(ValueError, match=r"asks for 3 CPUs .* and 1 for decoding but the cluster has 2"):
        RayScorer(three, num_cpus=1, pretrained=False, reward_config=CONFIG, progress=False)
    assert {a["name"] for a in ray.util.list_named_actors(all_namespaces=True)} == before  # nothing started

    scorer = RayScorer(three, batch_size=4, pretrained=False, reward_config=CONFIG, seed=0, decode_tasks=1,
                       progress=False)
    try:
        assert [r.num_cpus for r in scorer.service.rewards] == [0.166] * 3  # (2 - 0.5 held - 1 decoding) / 3
        res = scorer.run(manifest, out=tmp_path / "three.parquet")
    finally:
        scorer.close()
    assert ray.is_initialized()  # a Ray the caller started is left running
    torch.manual_seed(0)
    local = rewardbench.Scorer(three, batch_size=4, num_workers=0, pretrained=False, reward_config=CONFIG,
                               progress=False).run(manifest, out=tmp_path / "local.parquet")
    pd.testing.assert_frame_equal(res.table, local.table)


def test_score_engine_ray_refuses_a_plan_the_cluster_cannot_hold_with_exit_2(cluster, manifest, tmp_path):
    from click.testing import CliRunner

    from rewardbench.cli.score import score

    base = ["--model", "jpeg-compressibility,jpeg-incompressibility", "--images", str(manifest), "--out",
            str(tmp_path / "s.parquet"), "--engine", "ray", "--no-progress"]
    r = CliRunner().invoke(score, [*base, "--replicas", "2", "--cpus-per-replica", "1"])
    assert r.exit_code == 2 and "asks for 4 CPUs" in r.output and "cluster has 2" in r.output, r.output
    r = CliRunner().invoke(score, [*base, "--num-workers", "0"])
    assert r.exit_code == 2 and "--num-workers 0 with --engine ray" in r.output, r.output
    assert not (tmp_path / "s.parquet.parts").exists()


_TWO_SCORERS = """
import ray, sys
import rewardbench.ray_scoring as rs
from rewardbench.ray_scoring import RayScorer

def no_cluster(address):  # as on a machine where no Ray runs (this test's own cluster would be found)
    raise ConnectionError(address)
rs.connect_ray = no_cluster
a = RayScorer("jpeg-compressibility", progress=False, address=None)   # no Ray running here: starts a local one
b = RayScorer("jpeg-compressibility", progress=False, address=None)   # uses the same
a.close()
assert ray.is_initialized(), "closed under another scorer"
res = b.run(sys.argv[1], out=sys.argv[2])
b.close()
assert not ray.is_initialized(), "the last scorer left its local Ray running"
print("rows", len(res.table))
"""


def test_the_last_scorer_to_close_stops_the_local_ray_they_share(manifest, tmp_path):
    """In a process of its own (no Ray running there): two scorers on the local Ray the first one started; closing
    the first leaves it to the second, closing the second stops it."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", _TWO_SCORERS, str(manifest), str(tmp_path / "s.parquet")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "rows 15" in r.stdout, r.stderr[-3000:]
