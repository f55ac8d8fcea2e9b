"""The reward service on a local Ray cluster (2 CPUs, one per module): a remote reward scores exactly as the local
one, through the `RewardModel` interface, the `Scorer` and the trainer; a replica killed mid-run loses and
duplicates nothing; callers share batches; timeouts and errors stay with their reward; the HTTP endpoint and
``rewardbench serve`` (a second Ray driver) answer with per-item errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import rewardbench
from rewardbench.service import merge, mergeable, split

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'rewardbench[ray]'")

ROOT = Path(__file__).resolve().parents[1]
SLOW = "jpeg-incompressibility"  # served with a 0.3 s batching wait: every call takes at least that long
GROUP = "pairwise-cosine-distance"  # a group reward (no weights), served with the same wait: callers' groups merge


@pytest.fixture(scope="module")
def cluster():
    from rewardbench.service import RewardService, ServedReward

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, namespace="rewardbench")
    service = RewardService([
        ServedReward("jpeg-compressibility", num_cpus=0.25),
        ServedReward("clipscore-b32", num_cpus=0.25, pretrained=False, config={"tiny": True}, seed=0),
        ServedReward(SLOW, num_cpus=0.25, batch_wait_s=0.3),
        ServedReward(GROUP, num_cpus=0.25, batch_wait_s=0.3),
    ]).start()
    yield service
    service.shutdown()
    ray.shutdown()


def _images(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g)


def test_merging_requests_keeps_each_callers_groups_apart():
    a = (np.zeros((3, 3, 4, 4), np.float32), ["x", "y", "z"], np.array([0, 1, 0]))
    b = (np.ones((2, 3, 4, 4), np.float32), ["u", "v"], None)  # no groups: one group, as a local call
    c = (np.ones((1, 3, 8, 8), np.float32), ["w"], None)  # another size: a pass of its own
    assert mergeable([a, b, c], group_reward=True) == [[0, 1], [2]]
    pixels, prompts, groups = merge([a, b], group_reward=True)
    assert pixels.shape == (5, 3, 4, 4) and prompts == ["x", "y", "z", "u", "v"]
    assert groups.tolist() == [0, 1, 0, 2, 2]
    reply = {"scores": np.arange(5, dtype=np.float32), "details": {"k": np.arange(5) * 10, "odd": [1]},
             "group_details": {0: {"n": 2}, 1: {"n": 1}, 2: {"n": 2}}}
    ra, rb = split(reply, [a, b], group_reward=True)
    assert ra["scores"].tolist() == [0, 1, 2] and rb["scores"].tolist() == [3, 4]
    assert rb["details"]["k"].tolist() == [30, 40] and "odd" not in rb["details"]
    assert ra["group_details"] == {0: {"n": 2}, 1: {"n": 1}} and rb["group_details"] == {0: {"n": 2}}


def test_remote_scores_equal_local_and_carry_the_served_provenance(cluster):
    x = _images(5)
    remote = rewardbench.load_reward("jpeg-compressibility", remote="ray")
    local = rewardbench.load_reward("jpeg-compressibility")
    out = remote(x, ["p"] * 5)
    assert torch.equal(out.scores, local(x, ["p"] * 5).scores)
    assert torch.equal(out.details["jpeg_kb"], local(x).details["jpeg_kb"])
    assert isinstance(remote, rewardbench.RewardModel) and remote.spec.name == "jpeg-compressibility"
    torch.manual_seed(0)
    local_clip = rewardbench.load_reward("clipscore-b32", pretrained=False, tiny=True)
    remote_clip = rewardbench.load_reward("clipscore-b32", remote="ray", pretrained=False, tiny=True)
    prompts = ["a red cube", "a cat", "a dog", "a tree", "a car"]
    assert torch.equal(remote_clip(x, prompts).scores, local_clip(x, prompts).scores)
    # a batch of mixed sizes goes in one request and comes back in order
    mixed = [x[0], _images(1, 48)[0], x[1]]
    assert torch.equal(remote_clip(mixed, prompts[:3]).scores, local_clip(mixed, prompts[:3]).scores)
    # the served model's random weights say so, and gradients do not cross the wire
    assert remote_clip.provenance() == local_clip.provenance() and remote_clip.provenance()[0].random
    assert local_clip.spec.differentiable and not remote_clip.spec.differentiable
    from rewardbench.model import param_fingerprint

    assert remote_clip.served_fingerprint() == param_fingerprint(local_clip)
    from rewardbench.errors import UsageError

    with pytest.raises(UsageError, match="asked tiny=False"):
        rewardbench.load_reward("clipscore-b32", remote="ray", tiny=False)
    with pytest.raises(UsageError, match="dtype"):  # served in float32
        rewardbench.load_reward("clipscore-b32", remote="ray", dtype="bf16")
    with pytest.raises(UsageError, match="not served"):
        rewardbench.load_reward("pickscore", remote="ray")


def test_a_scorer_run_with_a_remote_reward_gives_the_local_table(cluster, tmp_path):
    rows = [{"image": (np.random.default_rng(i).random((24, 24, 3)) * 255).astype(np.uint8), "prompt": f"p{i}"}
            for i in range(10)]
    rows[3]["prompt"] = ""  # clipscore needs a prompt: that row fails for clipscore only
    torch.manual_seed(0)
    local = rewardbench.Scorer({"jpeg": rewardbench.load_reward("jpeg-compressibility"),
                                "clip": rewardbench.load_reward("clipscore-b32", pretrained=False, tiny=True)},
                               batch_size=4, num_workers=0, progress=False).run(rows)
    remote = rewardbench.Scorer({"jpeg": rewardbench.load_reward("jpeg-compressibility", remote="ray"),
                                 "clip": rewardbench.load_reward("clipscore-b32", remote="ray", pretrained=False,
                                                                 tiny=True)},
                                batch_size=4, num_workers=0, progress=False).run(rows)
    assert remote.table.equals(local.table)
    # the same by name, a config option choosing the service (`rewardbench score --config NAME:remote=ray`)
    by_name = rewardbench.Scorer(["jpeg-compressibility", "clipscore-b32"], batch_size=4, num_workers=0,
                                 progress=False, pretrained=False,
                                 reward_config={"jpeg-compressibility": {"remote": "ray"},
                                                "clipscore-b32": {"remote": "ray", "tiny": True}}).run(rows)
    renamed = by_name.table.rename(columns=lambda c: c.replace("jpeg-compressibility", "jpeg")
                                   .replace("clipscore-b32", "clip"))
    renamed["error"] = renamed["error"].str.replace("clipscore-b32:", "clip:")  # the column's name, as above
    assert renamed.equals(local.table)
    assert remote.n_failed == 1 and "clip" in remote.table["error"][3] and remote.table["jpeg"][3] is not None
    assert remote.provenance == local.provenance


def test_a_replica_killed_mid_run_loses_and_duplicates_nothing(cluster, tmp_path):
    replica = cluster.replicas[SLOW][0]
    pid = ray.get(replica.pid.remote())
    rows = [{"image": (np.random.default_rng(i).random((16, 16, 3)) * 255).astype(np.uint8), "prompt": "p"}
            for i in range(24)]
    local = rewardbench.Scorer(SLOW, batch_size=4, num_workers=0, progress=False).run(rows)
    model = rewardbench.load_reward(SLOW, remote="ray")
    killer = threading.Timer(0.5, lambda: ray.kill(replica, no_restart=False))  # while a call is in flight
    killer.start()
    res = rewardbench.Scorer({SLOW: model}, batch_size=4, num_workers=0, progress=False).run(
        rows, out=tmp_path / "s.parquet")
    killer.join()
    assert ray.get(replica.pid.remote()) != pid  # it was restarted
    t = res.table
    assert len(t) == 24 and res.n_failed == 0  # one row per input row
    assert t[SLOW].tolist() == local.table[SLOW].tolist()
    written = __import__("pandas").read_parquet(tmp_path / "s.parquet")
    assert len(written) == 24 and written[SLOW].tolist() == local.table[SLOW].tolist()


def test_two_clients_share_batches_and_timeouts_stay_with_their_reward(cluster):
    x = _images(2)
    replica = cluster.replicas[SLOW][0]
    before = len(ray.get(replica.batch_sizes.remote()))
    clients = [rewardbench.load_reward(SLOW, remote="ray") for _ in range(2)]
    results: dict[int, torch.Tensor] = {}

    def call(k: int) -> None:
        results[k] = clients[k % 2](x[k % 2: k % 2 + 1], ["p"]).scores

    threads = [threading.Thread(target=call, args=(k,)) for k in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    local = rewardbench.load_reward(SLOW)
    for k, s in results.items():
        assert torch.equal(s, local(x[k % 2: k % 2 + 1]).scores)
    passes = ray.get(replica.batch_sizes.remote())[before:]
    assert sum(passes) == 6 and max(passes) > 1  # several callers' requests in one forward pass
    impatient = rewardbench.load_reward(SLOW, remote="ray", remote_timeout_s=0.05)
    fast = rewardbench.load_reward("jpeg-compressibility", remote="ray", remote_timeout_s=0.05 + 30)
    from rewardbench.remote import RemoteTimeoutError

    with pytest.raises(RemoteTimeoutError, match="no answer"):
        impatient(x, ["p", "q"])
    assert fast(x, ["p", "q"]).scores.shape == (2,)


def test_group_rewards_of_callers_sharing_a_pass_keep_their_own_groups(cluster):
    replica = cluster.replicas[GROUP][0]
    before = len(ray.get(replica.batch_sizes.remote()))
    local = rewardbench.load_reward(GROUP)
    calls = [(_images(3, seed=1), [0, 0, 1]), (_images(4, seed=2), [1, 1, 0, 0]), (_images(2, seed=3), None)]
    got: dict[int, rewardbench.RewardOutput] = {}

    def call(k: int) -> None:
        x, g = calls[k]
        got[k] = rewardbench.load_reward(GROUP, remote="ray")(x, None, g)

    threads = [threading.Thread(target=call, args=(k,)) for k in range(len(calls))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert max(ray.get(replica.batch_sizes.remote())[before:]) > 1  # the callers shared a forward pass
    for k, (x, g) in enumerate(calls):
        want = local(x, None, g)
        assert torch.equal(got[k].scores, want.scores) and got[k].group_details == want.group_details


def test_the_tiny_recipe_trains_the_same_with_a_remote_reward(cluster, tmp_path):
    from rewardbench.trainers.config import load_config
    from rewardbench.trainers.train import train

    recipe = ROOT / "trainers" / "recipes" / "tiny_smoke.yaml"
    quick = ["run.iterations=2", "run.checkpoint_every=0", "run.sample_every=0", "run.tensorboard=false",
             "sample.num_steps=2", "train.timesteps_per_iter=1"]
    local = train(load_config(recipe, [*quick, f"run.output_dir={tmp_path / 'local'}"]))
    remote = train(load_config(recipe, [*quick, f"run.output_dir={tmp_path / 'remote'}",
                                        "tasks.0.reward_kwargs={remote: ray}"]))  # the one line a recipe changes

    def metrics(result):
        return [{k: v for k, v in row.items() if not k.endswith("_s")} for row in result["history"]]  # not timings

    assert metrics(remote) == metrics(local) and len(local["history"]) == 2


def test_the_http_endpoint_scores_with_per_item_and_per_reward_errors(cluster):
    from rewardbench.http_client import HttpClient
    from rewardbench.http_service import HttpFrontend

    front = HttpFrontend(port=0).start()
    try:
        client = HttpClient(front.url)
        served = {r["name"]: r for r in client.rewards()}
        assert set(served) == {"jpeg-compressibility", "clipscore-b32", SLOW, GROUP}
        assert served["clipscore-b32"]["provenance"][0]["kind"] == "random"
        imgs = [(np.random.default_rng(i).random((20, 20, 3)) * 255).astype(np.uint8) for i in range(3)]
        res = client.score(imgs, ["a cat", "", "a dog"], ["jpeg-compressibility", "clipscore-b32"])
        jpeg, clip = res["rewards"]["jpeg-compressibility"], res["rewards"]["clipscore-b32"]
        u8 = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2)
        assert jpeg["scores"] == rewardbench.load_reward("jpeg-compressibility")(u8).scores.tolist()
        assert jpeg["errors"] == [None, None, None] and jpeg["details"]["jpeg_kb"][0] > 0
        assert clip["scores"][1] is None and "empty prompt" in clip["errors"][1]  # the bad item only
        torch.manual_seed(0)
        local_clip = rewardbench.load_reward("clipscore-b32", pretrained=False, tiny=True)
        assert clip["scores"][0] == local_clip(u8[:1], ["a cat"]).scores.item()
        # an item that is not an image fails alone
        bad = client._request("/v1/score", {"rewards": ["jpeg-compressibility"], "images": ["bm90IGFuIGltYWdl"]})
        assert bad["errors"][0].startswith("images[0]: not a PNG or JPEG")
        from rewardbench.remote import RemoteRewardError

        with pytest.raises(RemoteRewardError, match="HTTP 400.*not served"):
            client.score(imgs[:1], None, ["pickscore"])
        # a RemoteReward over HTTP, no Ray on the client's side: PNG bytes, so the same as a local uint8 call
        over_http = rewardbench.load_reward("jpeg-compressibility", remote=front.url)
        assert torch.equal(over_http(u8).scores, rewardbench.load_reward("jpeg-compressibility")(u8).scores)
        front.max_request_bytes = 100  # a body above the limit: 413, never read
        with pytest.raises(RemoteRewardError, match="HTTP 413.*limit of 100"):
            client.score(imgs[:1], None, ["jpeg-compressibility"])
    finally:
        front.stop()


def test_rewardbench_serve_starts_a_service_a_client_reaches(cluster, tmp_path):
    """`rewardbench serve` as another Ray driver on this cluster, under another service name, with HTTP."""
    address = ray.get_runtime_context().gcs_address
    env = {**os.environ, "RAY_ADDRESS": address}
    proc = subprocess.Popen([sys.executable, "-m", "rewardbench.cli", "serve", "--rewards",
                             "jpeg-compressibility+jpeg-incompressibility",  # one replica for both
                             "--num-cpus", "0.25", "--http-port", "0", "--name", "cli-service", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()[-3000:]
        up = json.loads(line)
        assert up["service"] == "cli-service"
        assert [(r["reward"], r["with"]) for r in up["rewards"]] == [("jpeg-compressibility", ""),
                                                                     ("jpeg-incompressibility", "jpeg-compressibility")]
        from rewardbench.http_client import HttpClient

        img = np.zeros((8, 8, 3), np.uint8)
        res = HttpClient(up["http"]).score([img], None, ["jpeg-compressibility", "jpeg-incompressibility"])
        a, b = (res["rewards"][n]["scores"][0] for n in ("jpeg-compressibility", "jpeg-incompressibility"))
        assert a == -b and b > 0  # minus and plus the same JPEG size
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert proc.returncode == 0
    time.sleep(0.5)
    with pytest.raises(ValueError):  # it shut its actors down
        ray.get_actor("cli-service", namespace="rewardbench")


def test_serve_usage_errors_exit_2_before_anything_starts():
    from click.testing import CliRunner

    from rewardbench.cli.serve import serve

    r = CliRunner().invoke(serve, ["--rewards", "jpeg-compresibility"])
    assert r.exit_code == 2 and "did you mean" in r.output.lower()
    r = CliRunner().invoke(serve, ["--rewards", "jpeg-compressibility", "--replicas", "vendi=2"])
    assert r.exit_code == 2 and "not among the served rewards" in r.output
    r = CliRunner().invoke(serve, ["--rewards", "jpeg-compressibility", "--detach", "--http-port", "1"])
    assert r.exit_code == 2 and "--detach" in r.output


def test_serve_a_reward_that_cannot_load_exits_2_with_its_own_message(cluster):
    from click.testing import CliRunner

    from rewardbench.cli.serve import serve
    from rewardbench.weights import WeightsNotFoundError, resolve_weights

    try:
        resolve_weights(rewardbench.get_spec("pickscore").weights, reward="pickscore")
        pytest.skip("PickScore's weights are on this machine: the reward would load")
    except WeightsNotFoundError:
        pass
    r = CliRunner().invoke(serve, ["--rewards", "pickscore", "--name", "broken", "--num-cpus", "0.25"])
    assert r.exit_code == 2, r.output
    assert r.output.startswith("error: weights for reward 'pickscore' not found") and "Traceback" not in r.output
    with pytest.raises(ValueError):  # nothing left behind
        ray.get_actor("broken/pickscore/0", namespace="rewardbench")


def test_serve_refuses_more_replicas_than_the_cluster_holds_with_exit_2(cluster):
    """Three one-CPU replicas on a 2-CPU cluster: refused at once, saying what was asked (Ray would keep the third
    waiting for a CPU forever); nothing started."""
    from click.testing import CliRunner

    from rewardbench.cli.serve import serve

    r = CliRunner().invoke(serve, ["--rewards", "jpeg-compressibility", "--name", "too-big", "--replicas", "3"])
    assert r.exit_code == 2, r.output
    assert "asks for 3 CPUs (jpeg-compressibility 3 x 1) but the cluster has 2" in r.output
    with pytest.raises(ValueError):
        ray.get_actor("too-big/jpeg-compressibility/0", namespace="rewardbench")


def test_a_replica_never_runs_more_than_max_batch_size_images_in_one_pass():
    """Requests waiting together fill a pass up to max_batch_size images; the one that would overflow opens the next
    pass (no Ray: the replica's batching loop alone)."""
    import asyncio
    from collections import deque

    from rewardbench.service import RewardReplica, ServedReward

    replica = RewardReplica.__new__(RewardReplica)  # no model: the loop's passes are recorded
    replica.served, replica.leader, replica.models = ServedReward("x", max_batch_size=4), "x", {"x": None}
    replica._queue, replica.batches, passes = None, deque(), []

    def score_many(requests):
        passes.append([len(req[1]) for _, req in requests])
        return [{"scores": list(range(len(req[1])))} for _, req in requests]

    replica._score_many = score_many

    async def callers():
        sizes = [3, 3, 2, 1, 6]  # a request larger than the bound goes alone
        return await asyncio.gather(*(replica.score(np.zeros((n, 3, 2, 2), np.float32), ["p"] * n, None)
                                      for n in sizes))

    replies = asyncio.run(callers())
    assert [len(r["scores"]) for r in replies] == [3, 3, 2, 1, 6]  # every caller answered, its own rows
    assert sorted(n for p in passes for n in p) == [1, 2, 3, 3, 6]
    assert all(sum(p) <= 4 or len(p) == 1 for p in passes), passes


def test_a_service_that_fails_to_start_leaves_no_replica_behind(cluster):
    """A replica name taken on the cluster (here by another actor) fails the start; the replicas made before it
    are stopped, not left running (detached ones outlive their handles: nothing else would stop them)."""
    from rewardbench.service import Directory, RewardService, ServedReward

    blocker = ray.remote(Directory).options(name="leaky/jpeg-incompressibility/0", namespace="rewardbench",
                                            num_cpus=0).remote({})
    try:
        with pytest.raises(ValueError):
            RewardService([ServedReward("jpeg-compressibility", num_cpus=0.25), ServedReward(SLOW, num_cpus=0.25)],
                          name="leaky", detached=True).start()
        deadline = time.time() + 20
        while True:
            try:
                ray.get_actor("leaky/jpeg-compressibility/0", namespace="rewardbench")
            except ValueError:
                break  # stopped
            assert time.time() < deadline, "the replica started before the failure is still running"
            time.sleep(0.2)
    finally:
        ray.kill(blocker)
        try:
            ray.kill(ray.get_actor("leaky/jpeg-compressibility/0", namespace="rewardbench"))
        except ValueError:
            pass


def test_a_remote_reward_asked_for_published_weights_refuses_a_random_weight_service(monkeypatch):
    """load_reward(NAME, remote=...) without pretrained=False asks for the published weights: a service serving
    random ones is refused, as `rewardbench score --engine ray` refuses it (no Ray: a stand-in transport)."""
    from rewardbench.errors import UsageError
    from rewardbench.provenance import Provenance
    from rewardbench.remote import ServedInfo

    spec = rewardbench.get_spec("clipscore-b32")

    class RandomWeightService:
        def info(self, name):
            build = {"device": "cpu", "dtype": "torch.float32", "pretrained": False, "weights": None,
                     "config": {"tiny": True}}
            return ServedInfo(spec.name, spec, (Provenance("random", "pretrained=False"),), (0,), build=build)

    monkeypatch.setattr("rewardbench.remote.open_transport", lambda address, service: RandomWeightService())
    with pytest.raises(UsageError, match="asked pretrained=True"):
        rewardbench.load_reward("clipscore-b32", remote="ray", tiny=True)
    assert rewardbench.load_reward("clipscore-b32", remote="ray", tiny=True, pretrained=False).spec.name == spec.name


def test_score_with_a_running_service_refuses_replica_options_it_would_ignore(tmp_path):
    from click.testing import CliRunner

    from rewardbench.cli.score import score

    r = CliRunner().invoke(score, ["--model", "jpeg-compressibility", "--images", str(tmp_path), "--engine", "ray",
                                   "--service", "s", "--replicas", "4", "--gpus-per-replica", "1"])
    assert r.exit_code == 2 and "--replicas, --gpus-per-replica: not with --service" in r.output, r.output


def test_the_http_endpoint_refuses_a_timeout_that_is_not_a_number_of_seconds():
    """A malformed timeout_s is a 400 (RequestError) before any reward is asked, not an error in every row."""
    from rewardbench.http_client import RequestError, encode_image
    from rewardbench.http_service import Scoring

    class NoService:
        def info(self, name):
            raise AssertionError("no reward is asked for a malformed request")

    scoring = Scoring(NoService())
    try:
        image = encode_image(np.zeros((4, 4, 3), np.uint8))
        for bad in ("60", -1, 0, True, [1]):
            with pytest.raises(RequestError, match="timeout_s"):
                scoring.score({"rewards": ["jpeg-compressibility"], "images": [image], "timeout_s": bad})
    finally:
        scoring.pool.shutdown()


def test_serve_runtime_env_may_hold_an_equals_sign():
    """--runtime-env JSON with '=' in it (pip pins), for every reward or NAME=JSON; a bad value still exits 2."""
    from rewardbench.cli.serve import per_reward

    pins = '{"pip": ["pkg==1.0"], "env_vars": {"A": "x=1"}}'
    want = {"pip": ["pkg==1.0"], "env_vars": {"A": "x=1"}}
    names = ["jpeg-compressibility", "jpeg-incompressibility"]
    assert per_reward((pins,), "--runtime-env", names, json.loads, None) == dict.fromkeys(names, want)
    assert per_reward((f"jpeg-incompressibility={pins}",), "--runtime-env", names, json.loads, None) == \
        {"jpeg-compressibility": None, "jpeg-incompressibility": want}
    with pytest.raises(SystemExit) as e:
        per_reward(("jpeg-compressibility={not json",), "--runtime-env", names, json.loads, None)
    assert e.value.code == 2


def test_a_group_reward_over_http_keeps_its_group_details(cluster):
    """Over HTTP a group reward answers its per-group details too, keyed by the caller's group ids: a RemoteReward
    over HTTP gives the local output (scores and group_details), as over Ray."""
    from rewardbench.http_client import HttpClient
    from rewardbench.http_service import HttpFrontend

    front = HttpFrontend(port=0).start()
    try:
        x = torch.randint(0, 256, (5, 3, 24, 24), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
        groups = [9, 9, 4, 4, 4]
        want = rewardbench.load_reward(GROUP)(x, None, groups)
        got = rewardbench.load_reward(GROUP, remote=front.url)(x, None, groups)
        assert want.group_details and set(want.group_details) == {4, 9}
        assert torch.equal(got.scores, want.scores) and got.group_details == want.group_details
        col = HttpClient(front.url).score(list(x), None, [GROUP], groups=groups)["rewards"][GROUP]
        assert col["group_details"] == {str(k): v for k, v in want.group_details.items()}
    finally:
        front.stop()


def test_a_client_follows_a_redeploy_of_the_same_model_and_refuses_another(cluster):
    """The service stopped and started again under its name: the client's next call reaches the new replicas
    (same model: same scores); started with another build (JPEG quality 50), the call fails saying so; with no
    service running, it fails as before."""
    from rewardbench.remote import RemoteReward, RemoteRewardError
    from rewardbench.service import RewardService, ServedReward

    images = _images(3)

    def serve(**config):
        return RewardService([ServedReward("jpeg-compressibility", num_cpus=0.25, config=config)],
                             name="redeployed").start()

    service = serve()
    reward = RemoteReward("jpeg-compressibility", "ray", service="redeployed")
    first = reward(images).scores
    service.shutdown()
    service = serve()
    try:
        assert torch.equal(reward(images).scores, first)
    finally:
        service.shutdown()
    with pytest.raises(RemoteRewardError, match="the reward service failed"):
        reward(images)
    service = serve(quality=50)
    try:
        with pytest.raises(RemoteRewardError, match="redeployed with another model"):
            reward(images)
    finally:
        service.shutdown()


def test_a_reward_runs_in_its_own_runtime_env(cluster):
    """``runtime_env`` reaches the replicas of its reward only (environment variables here: packages would need an
    index this machine may not reach)."""
    from rewardbench.service import RewardService, ServedReward

    with RewardService([ServedReward("jpeg-compressibility", num_cpus=0.25,
                                     runtime_env={"env_vars": {"REWARDBENCH_TEST_ENV": "served"}}),
                        ServedReward("jpeg-incompressibility", num_cpus=0.25)], name="envs") as service:
        def env_of(reward):
            replica = service.replicas[reward][0]
            return ray.get(replica.__ray_call__.remote(lambda self: os.environ.get("REWARDBENCH_TEST_ENV")))

        assert env_of("jpeg-compressibility") == "served"
        assert env_of("jpeg-incompressibility") is None
