import os
import pickle

import pytest
import torch

from rewardbench.spec import WeightSource
from rewardbench.weights import (
    CheckpointMismatchError,
    Provenance,
    WeightsNotFoundError,
    load_into,
    load_state_dict,
    resolve_weights,
    sha256_of,
    weights_stamp,
)


def test_offline_hub_source_fails_with_an_actionable_message(unreachable):
    src = WeightSource("hub", "rewardbench-tests/does-not-exist", filename="model.safetensors")
    with pytest.raises(WeightsNotFoundError) as e:
        resolve_weights([src], reward="demo-reward")
    msg = str(e.value)
    assert "rewardbench-tests/does-not-exist" in msg and "model.safetensors" in msg
    assert "the hub is unreachable (offline)" in msg
    assert "--weights" in msg and "REWARDBENCH_WEIGHTS" in msg
    assert unreachable == []  # it failed without trying to download


def test_offline_url_source_fails_without_trying(unreachable):
    src = WeightSource("url", "https://example.invalid/weights/head.pth")
    with pytest.raises(WeightsNotFoundError, match="example.invalid is unreachable .offline."):
        resolve_weights([src], reward="demo-reward")
    assert unreachable == []


def test_the_hub_probe_asks_the_configured_endpoint(monkeypatch):
    from rewardbench import weights

    asked = []
    monkeypatch.setattr(weights, "_reachable", lambda host, port=443: asked.append((host, port)) or False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # a closed local port
    assert weights._hub_offline() and asked == [("127.0.0.1", 9)]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert weights._hub_offline() and len(asked) == 1  # switched off: not even probed


@pytest.fixture
def http_server(tmp_path):
    """A local HTTP server over ``tmp_path / "served"`` (a real download, no outside network)."""
    import functools
    import http.server
    import threading

    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_url_downloads_are_checked_against_the_published_digest(http_server, tmp_path, monkeypatch):
    import hashlib

    root, base = http_server
    monkeypatch.setenv("REWARDBENCH_CACHE", str(tmp_path / "cache"))
    data = b"checkpoint bytes"
    (root / "head.pth").write_bytes(data)
    sha, md5 = hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest()
    for bad in (dict(sha256="0" * 64), dict(sha256="deadbeef"), dict(md5="0" * 32)):
        with pytest.raises(WeightsNotFoundError, match=f"{next(iter(bad))} mismatch"):
            resolve_weights([WeightSource("url", f"{base}/head.pth", **bad)], reward="r")
        assert not (tmp_path / "cache" / "r" / "head.pth").exists()  # a bad download is not kept
    found = resolve_weights([WeightSource("url", f"{base}/head.pth", sha256=sha[:8], md5=md5)], reward="r")
    assert found.path.read_bytes() == data  # a published prefix of the sha256 (open_clip's file names) and an md5


def test_every_url_source_of_the_zoo_carries_its_published_digest_or_says_there_is_none():
    import rewardbench
    from rewardbench.registry import REGISTRY
    from rewardbench.weights import url_digest

    checked = 0
    for spec in rewardbench.list_rewards():
        hook = getattr(REGISTRY.entry(spec.name).load_target(), "weight_sources", None)
        sources = [*spec.weights, *((hook(spec, {}) or ()) if hook else ())]
        for src in sources:
            if src.kind != "url":
                continue
            checked += 1
            published = url_digest(src.location)
            if published:  # the URL itself publishes it: the source carries the same digest
                assert src.sha256 == published, (spec.name, src.location)
            assert src.sha256 or src.md5 or "no sha256 published" in src.note or "no checksum published" in src.note, \
                (spec.name, src)
    assert checked >= 10


def test_override_env_dir_and_file_sources(tmp_path, monkeypatch):
    f = tmp_path / "head.pth"
    torch.save({"w": torch.ones(2)}, f)
    found = resolve_weights([], reward="r", override=f)
    assert found.path == f and found.provenance == Provenance("file", str(f)) and str(found) == f"file:{f}"
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
    assert ok.path == f and ok.provenance.digest == sha256_of(f)  # the digest it was checked against


def test_a_runs_fingerprint_stamps_the_local_files_its_provenance_names(tmp_path):
    f = tmp_path / "head.pth"
    f.write_bytes(b"12345")
    stamp = weights_stamp([Provenance("file", str(f)), Provenance("hub", "org/name"), Provenance("random")])
    assert list(stamp) == [f"file:{f}"] and stamp[f"file:{f}"][0] == 5
    assert weights_stamp([Provenance("file", str(tmp_path / "gone.pth"))]) == {f"file:{tmp_path / 'gone.pth'}": [None]}


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


def test_every_downloadable_reward_fails_clearly_without_its_weights(tmp_path):
    """With no network (the reachability probe patched to say no, downloads refused) and empty caches:
    load_reward(name) of every reward that needs a download raises WeightsNotFoundError naming what it
    looked for and the CLI flag, without trying to download and before building its (possibly huge)
    architecture."""
    import json
    import subprocess
    import sys

    code = (
        "import json, torch, huggingface_hub, rewardbench\n"
        "from rewardbench import weights\n"
        "from rewardbench.registry import REGISTRY\n"
        "weights._reachable = lambda host, port=443: False\n"
        "tried, built = [], []\n"
        "def refuse(*a, **k):\n"
        "    tried.append(str(a[:1]))\n"
        "    raise OSError('no network')\n"
        "torch.hub.download_url_to_file = refuse\n"
        "real = huggingface_hub.hf_hub_download\n"
        "huggingface_hub.hf_hub_download = lambda *a, **k: real(*a, **k) if k.get('local_files_only') else refuse(*a)\n"
        "build = REGISTRY.build\n"
        "REGISTRY.build = lambda name, **cfg: built.append(name) or build(name, **cfg)\n"
        "out = {}\n"
        "for s in rewardbench.list_rewards():\n"
        "    if s.offline: continue\n"
        "    try:\n"
        "        rewardbench.load_reward(s.name); out[s.name] = ['loaded', '']\n"
        "    except Exception as e:\n"
        "        out[s.name] = [type(e).__name__, str(e)]\n"
        "print(json.dumps({'results': out, 'tried': tried, 'built': built}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "REWARDBENCH_WEIGHTS")}
    env.update(HF_HOME=str(tmp_path / "hf"), REWARDBENCH_CACHE=str(tmp_path / "rb"), TORCH_HOME=str(tmp_path / "torch"))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads(res.stdout.strip().splitlines()[-1])
    results = report["results"]
    assert len(results) >= 10
    assert report["tried"] == [] and report["built"] == []  # no download tried, no architecture built
    for name, (kind, msg) in results.items():
        assert kind == "WeightsNotFoundError", (name, kind, msg[:300])
        assert "Looked for" in msg and f"--weights {name}=PATH" in msg, (name, msg)  # the CLI flag, spelled out
