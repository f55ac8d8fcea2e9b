import os
import pickle
import time

import pytest
import torch

from rewardbench.spec import WeightSource
from rewardbench.weights import (
    CheckpointMismatchError,
    WeightsNotFoundError,
    load_into,
    load_state_dict,
    resolve_weights,
    sha256_of,
)


def test_offline_hub_source_fails_fast_with_an_actionable_message(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # exercise the reachability probe too
    src = WeightSource("hub", "rewardbench-tests/does-not-exist", filename="model.safetensors")
    t0 = time.monotonic()
    with pytest.raises(WeightsNotFoundError) as e:
        resolve_weights([src], reward="demo-reward")
    assert time.monotonic() - t0 < 5.0
    msg = str(e.value)
    assert "rewardbench-tests/does-not-exist" in msg and "model.safetensors" in msg
    assert "--weights" in msg and "REWARDBENCH_WEIGHTS" in msg


def test_offline_url_source_fails_fast(monkeypatch, tmp_path):
    monkeypatch.setenv("REWARDBENCH_CACHE", str(tmp_path))
    src = WeightSource("url", "https://example.invalid/weights/head.pth")
    t0 = time.monotonic()
    with pytest.raises(WeightsNotFoundError, match="example.invalid"):
        resolve_weights([src], reward="demo-reward")
    assert time.monotonic() - t0 < 5.0


def test_override_env_dir_and_file_sources(tmp_path, monkeypatch):
    f = tmp_path / "head.pth"
    torch.save({"w": torch.ones(2)}, f)
    found = resolve_weights([], reward="r", override=f)
    assert found.path == f and found.source == f"file:{f}"
    with pytest.raises(WeightsNotFoundError, match="not an existing path, a URL or a hub id"):
        resolve_weights([], reward="r", override="./nope/missing.pth")
    # $REWARDBENCH_WEIGHTS/<reward>/<filename> is found before any download
    root = tmp_path / "root"
    (root / "r").mkdir(parents=True)
    torch.save({"w": torch.ones(2)}, root / "r" / "head.pth")
    monkeypatch.setenv("REWARDBENCH_WEIGHTS", str(root))
    found = resolve_weights([WeightSource("url", "https://example.invalid/x/head.pth")], reward="r")
    assert found.path == root / "r" / "head.pth"
    # a file source with the wrong sha256 is rejected
    with pytest.raises(WeightsNotFoundError, match="sha256 mismatch"):
        resolve_weights([WeightSource("file", str(f), sha256="0" * 64)], reward="x")
    ok = resolve_weights([WeightSource("file", str(f), sha256=sha256_of(f))], reward="x")
    assert ok.path == f


def test_load_state_dict_safetensors_pickle_and_wrappers(tmp_path):
    from safetensors.torch import save_file

    sd = {"a.weight": torch.randn(3, 2), "a.bias": torch.randn(3)}
    save_file(sd, tmp_path / "m.safetensors")
    torch.save({"state_dict": sd, "epoch": 3}, tmp_path / "m.ckpt")
    for p in (tmp_path / "m.safetensors", tmp_path / "m.ckpt", tmp_path):
        got = load_state_dict(p)
        assert set(got) == set(sd) and all(torch.equal(got[k], sd[k]) for k in sd)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/rewardbench_pwned",))


def test_arbitrary_pickles_are_never_executed(tmp_path):
    p = tmp_path / "evil.pth"
    with open(p, "wb") as f:
        pickle.dump({"w": _Evil()}, f)
    with pytest.raises(CheckpointMismatchError, match="weights_only=True"):
        load_state_dict(p)
    assert not os.path.exists("/tmp/rewardbench_pwned")


def test_load_into_lists_missing_and_unexpected_keys():
    m = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
    sd = dict(m.state_dict())
    sd["extra.weight"] = sd.pop("1.weight")
    with pytest.raises(CheckpointMismatchError) as e:
        load_into(m, sd, source="ckpt.pth")
    assert "missing keys: 1.weight" in str(e.value) and "unexpected keys: extra.weight" in str(e.value)
    bad_shape = dict(m.state_dict())
    bad_shape["0.weight"] = torch.zeros(5, 5)
    with pytest.raises(CheckpointMismatchError, match="shape mismatches: 0.weight"):
        load_into(m, bad_shape)


def test_checkpoint_saved_on_cuda_loads_on_cpu(shared_data):
    """The improved-aesthetic MLP in ../shared/data was saved from a CUDA device."""
    path = shared_data / "weights" / "improved-aesthetic-mlp" / "sac+logos+ava1-l14-linearMSE.pth"
    sd = load_state_dict(path, map_location="cpu")
    assert sd and all(t.device.type == "cpu" for t in sd.values())
    assert any(t.shape == (1024, 768) for t in sd.values())


def test_every_downloadable_reward_fails_fast_and_clearly_without_its_weights(tmp_path):
    """Offline, with empty caches: load_reward(name) of every reward that needs a download raises
    WeightsNotFoundError within 5 s, before building its (possibly huge) architecture."""
    import json
    import subprocess
    import sys

    code = (
        "import json, time, rewardbench\n"
        "out = {}\n"
        "for s in rewardbench.list_rewards():\n"
        "    if s.offline: continue\n"
        "    t = time.monotonic()\n"
        "    try:\n"
        "        rewardbench.load_reward(s.name); out[s.name] = ['loaded', 0.0, '']\n"
        "    except Exception as e:\n"
        "        out[s.name] = [type(e).__name__, time.monotonic() - t, str(e)]\n"
        "print(json.dumps(out))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "REWARDBENCH_WEIGHTS")}
    env.update(HF_HOME=str(tmp_path / "hf"), REWARDBENCH_CACHE=str(tmp_path / "rb"), TORCH_HOME=str(tmp_path / "torch"))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    results = json.loads(res.stdout.strip().splitlines()[-1])
    assert len(results) >= 10
    for name, (kind, seconds, msg) in results.items():
        assert kind == "WeightsNotFoundError", (name, kind, msg[:300])
        assert seconds < 5.0, (name, seconds)
        assert "Looked for" in msg and f"--weights {name}=PATH" in msg, (name, msg)  # the CLI flag, spelled out
