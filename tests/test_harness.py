"""The scoring harness: per-row errors, groups, retries, shared work, resume after kill -9,
streaming and data parallel (gloo) — all offline on CPU."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import rewardbench
from rewardbench import BackboneReward, RewardModel, RewardOutput, RewardSpec, TextFeatureCache
from rewardbench.harness import GROUP_HINT, OutputExistsError, ResumeMismatchError, Scorer, UsageError
from rewardbench.shards import ShardWriter

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


# ----------------------------------------------------------------------------------------------
# toy rewards (real arithmetic on real pixels; counters to check shared work)


class Brightness(RewardModel):
    spec = RewardSpec(name="brightness", category="baseline", license="MIT", paper="-", range=(0.0, 1.0))

    def __init__(self):
        super().__init__()
        self.calls = []

    def score(self, pixels, prompts, groups):
        self.calls.append(pixels.shape[0])
        return RewardOutput(pixels.mean(dim=(1, 2, 3)))


class PickyBrightness(Brightness):
    """Raises on any batch holding a (nearly) black image: the harness must retry item by item."""

    spec = Brightness.spec.replace(name="picky")

    def score(self, pixels, prompts, groups):
        m = pixels.mean(dim=(1, 2, 3))
        if bool((m < 0.02).any()):
            raise RuntimeError("black image")
        self.calls.append(pixels.shape[0])
        return RewardOutput(m)


class GroupSpread(RewardModel):
    """Group reward: the spread of brightness within the group, given to every member."""

    spec = RewardSpec(name="spread", category="diversity", granularity="group", license="MIT", paper="-")

    def __init__(self):
        super().__init__()
        self.calls = []

    def score(self, pixels, prompts, groups):
        self.calls.append(groups.tolist())
        m = pixels.mean(dim=(1, 2, 3))
        out = torch.empty_like(m)
        for g in groups.unique():
            sel = groups == g
            out[sel] = m[sel].max() - m[sel].min()
        return RewardOutput(out)


class _ToyBackbone(torch.nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.proj = torch.nn.Linear(3 * 8 * 8, 16)
        with torch.no_grad():
            self.proj.weight.copy_(torch.randn(16, 192, generator=g) * 0.1)
            self.proj.bias.zero_()
        self.image_calls = 0
        self.text_cache = TextFeatureCache(self._encode_text)
        self.text_encoded = []

    def embed(self, pixels):
        self.image_calls += 1
        x = torch.nn.functional.interpolate(pixels, size=(8, 8), mode="bilinear", antialias=True)
        return torch.nn.functional.normalize(self.proj(x.flatten(1)), dim=-1)

    def _encode_text(self, prompts):
        self.text_encoded.extend(prompts)
        g = torch.stack([torch.tensor([float(ord(c)) for c in (p * 16)[:16]]) for p in prompts])
        return torch.nn.functional.normalize(g, dim=-1)


class ToyAlign(BackboneReward):
    spec = RewardSpec(name="toy_align", category="preference", needs_prompt=True, backbone="toy:v1",
                      license="MIT", paper="-")

    def __init__(self, use_cache=True):
        super().__init__()
        self.backbone = _ToyBackbone()
        self.use_cache = use_cache

    def embed_images(self, pixels):
        return self.backbone.embed(pixels)

    def score_embeddings(self, image_embeds, prompts, groups):
        enc = self.backbone.text_cache if self.use_cache else self.backbone._encode_text
        return RewardOutput((image_embeds * enc(prompts).to(image_embeds)).sum(-1))


class ToyNorm(ToyAlign):
    spec = ToyAlign.spec.replace(name="toy_norm", needs_prompt=False)

    def score_embeddings(self, image_embeds, prompts, groups):
        return RewardOutput(image_embeds[:, :4].sum(-1))


# ----------------------------------------------------------------------------------------------
# fixtures


def _png_bomb(path: Path, w: int = 100_000, h: int = 100_000) -> None:
    """A PNG header declaring w x h pixels (10^10): a decompression bomb in 60 bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")
    ihdr = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
                     + chunk(b"IEND", b""))


@pytest.fixture
def corpus(tmp_path, photos):
    """Good photos plus one file of every kind of bad input; returns (folder, {name: expected error})."""
    d = tmp_path / "corpus"
    d.mkdir()
    for name, arr in photos.items():
        Image.fromarray(arr[::4, ::4]).save(d / f"{name}.jpg", quality=90)
    good = (d / "astronaut.jpg").read_bytes()
    (d / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (d / "zero.png").write_bytes(b"")
    (d / "text.jpg").write_text("this is not an image\n")
    (d / "html.png").write_text("<html><body>404</body></html>")
    _png_bomb(d / "bomb.png")
    bad = {"truncated.jpg": "cannot decode", "zero.png": "empty file", "text.jpg": "not a recognised image",
           "html.png": "not a recognised image", "bomb.png": "decompression bomb"}
    return d, bad


def _scorer(rewards, **kw):
    kw.setdefault("progress", False)
    kw.setdefault("num_workers", 0)
    return Scorer(rewards, **kw)


# ----------------------------------------------------------------------------------------------
# errors per row


@pytest.mark.parametrize("workers", [0, 2])
def test_bad_files_become_row_errors(corpus, workers):
    d, bad = corpus
    res = _scorer("jpeg-incompressibility", batch_size=4, num_workers=workers).run(d)
    t = res.table
    names = [p.rsplit("/", 1)[-1] for p in t["image"]]
    assert res.n_rows == len(names) == 10 and res.n_failed == len(bad)
    for name, expected in bad.items():
        err = t["error"][names.index(name)]
        assert err is not None and name in err and expected in err, (name, err)
        assert np.isnan(t["jpeg-incompressibility"][names.index(name)])
    ok = t[t["error"].isna()]
    assert len(ok) == 5 and (ok["jpeg-incompressibility"] > 0).all()
    direct = rewardbench.load_reward("jpeg-incompressibility")([str(d / "coffee.jpg")]).scores.item()
    assert t["jpeg-incompressibility"][names.index("coffee.jpg")] == pytest.approx(direct)


def test_missing_files_and_bad_arrays_in_manifest_and_lists(tmp_path, photos):
    Image.fromarray(photos["coffee"]).save(tmp_path / "coffee.png")
    m = tmp_path / "m.jsonl"
    m.write_text('{"image": "coffee.png", "prompt": "coffee"}\n{"image": "gone.png", "prompt": "x"}\n'
                 '{"prompt": "no image at all"}\n')
    t = _scorer("jpeg-compressibility").run(m).table
    assert t["error"][0] is None
    assert "gone.png: no such file" in t["error"][1]
    assert "no image path" in t["error"][2]
    items = [{"image": np.full((8, 8, 3), 0.5, np.float32)}, {"image": np.full((8, 8, 3), 7.0, np.float32)},
             {"image": "not-a-file.png"}]
    t = _scorer("jpeg-compressibility").run(items).table
    assert t["error"][0] is None and "expected [0, 1]" in t["error"][1] and "no such file" in t["error"][2]


def test_empty_prompt_is_a_row_error_for_prompt_rewards_only():
    items = [{"image": np.full((16, 16, 3), v, np.uint8), "prompt": p} for v, p in ((10, "a"), (200, "  "))]
    res = _scorer({"toy_align": ToyAlign(), "brightness": Brightness()}).run(items)
    t = res.table
    assert t["error"][0] is None and "toy_align: empty prompt" in t["error"][1]
    assert np.isnan(t["toy_align"][1]) and t["brightness"][1] == pytest.approx(200 / 255, abs=1e-6)
    assert res.n_failed == 1


def test_a_raising_reward_is_retried_item_by_item():
    vals = [120, 0, 60, 250, 1, 90]
    items = [{"image": np.full((8, 8, 3), v, np.uint8)} for v in vals]
    picky = PickyBrightness()
    t = _scorer({"picky": picky, "brightness": Brightness()}, batch_size=3).run(items).table
    black = [i for i, v in enumerate(vals) if v < 5]
    for i, v in enumerate(vals):
        if i in black:
            assert "picky: RuntimeError: black image" in t["error"][i]
            assert np.isnan(t["picky"][i])
        else:
            assert t["error"][i] is None and t["picky"][i] == pytest.approx(v / 255, abs=1e-6)
        assert t["brightness"][i] == pytest.approx(v / 255, abs=1e-6)  # the other reward is unaffected
    assert picky.calls == [1, 1, 1, 1]  # two batches failed, each retried per item (the good ones)


# ----------------------------------------------------------------------------------------------
# groups


def _group_items():
    # 3 prompts, interleaved, 5 images each; group "b" larger than the batch size below
    out = []
    for i in range(15):
        p = "abc"[i % 3]
        out.append({"image": np.full((8, 8, 3), 10 * i, np.uint8), "prompt": f"prompt {p}"})
    return out


def test_group_by_prompt_keeps_groups_in_one_call():
    items = _group_items()
    spread = GroupSpread()
    t = _scorer({"spread": spread, "brightness": Brightness()}, batch_size=4).run(items, group_by="prompt").table
    assert t["error"].isna().all()
    assert sorted(len(c) for c in spread.calls) == [5, 5, 5]  # each group whole, though batch_size=4
    for p in "abc":
        sel = [i for i in range(15) if items[i]["prompt"] == f"prompt {p}"]
        vals = [10 * i / 255 for i in sel]
        assert np.allclose(t["spread"][sel], max(vals) - min(vals), atol=1e-6)
    assert list(t["prompt"]) == [it["prompt"] for it in items]  # input order preserved


def test_group_column_works_and_no_grouping_is_refused_up_front(tmp_path):
    items = [{**it, "group": i // 5} for i, it in enumerate(_group_items())]
    t = _scorer({"spread": GroupSpread()}, batch_size=8).run(items).table
    assert "group" in t.columns and t["error"].isna().all()
    assert t["spread"][0] == pytest.approx(40 / 255, abs=1e-6)
    # no grouping at all: refused before any image is scored, not N failed rows
    spread = GroupSpread()
    with pytest.raises(UsageError, match="spread is a group reward: pass --group-by"):
        _scorer({"spread": spread, "brightness": Brightness()}).run(_group_items(), out=tmp_path / "r.parquet")
    assert spread.calls == [] and not (tmp_path / "r.parquet.parts").exists()
    # a row whose group value is empty fails alone, with the reason
    items = [{**it, "model": "m" if i else ""} for i, it in enumerate(_group_items())]
    t = _scorer({"spread": GroupSpread()}).run(items, group_by="prompt,model").table
    assert "no group for this row (an empty value in --group-by prompt,model)" in t["error"][0]
    assert t["error"][1:].isna().all()
    assert GROUP_HINT.startswith("needs groups")


# ----------------------------------------------------------------------------------------------
# shared work: text cache and shared backbone give the uncached results


def _prompted_items(n_prompts=3, per_prompt=16, size=24):
    rng = np.random.default_rng(0)
    return [{"image": rng.integers(0, 256, (size, size, 3), dtype=np.uint8), "prompt": f"a photo number {p}"}
            for p in range(n_prompts) for _ in range(per_prompt)]


def test_shared_backbone_and_text_cache_match_the_uncached_path():
    items = _prompted_items()
    a, b = ToyAlign(), ToyNorm()
    shared = _scorer({"toy_align": a, "toy_norm": b}, batch_size=16)
    assert len(shared.clusters) == 1 and b.backbone is a.backbone  # one backbone module
    res = shared.run(items)
    assert res.summary["text_encoder_calls"] == 3
    assert a.backbone.text_encoded == [f"a photo number {p}" for p in range(3)]
    assert a.backbone.image_calls == 3  # 48 images / 16 per batch, once for both rewards

    plain_a, plain_b = ToyAlign(use_cache=False), ToyNorm()
    alone = _scorer({"toy_align": plain_a, "toy_norm": plain_b}, batch_size=16, share_backbones=False).run(items)
    assert plain_a.backbone.image_calls == 3 and plain_b.backbone.image_calls == 3
    assert len(plain_a.backbone.text_encoded) == 48  # the uncached path encodes per image
    pd.testing.assert_frame_equal(res.table, alone.table)
    # and the reward called directly, image by image
    direct = [ToyAlign(use_cache=False)([it["image"]], [it["prompt"]]).scores.item() for it in items[:5]]
    assert np.allclose(res.table["toy_align"][:5], direct, atol=1e-6)


def test_shared_features_go_through_the_same_contract_as_forward():
    a = ToyAlign()
    x = torch.rand(2, 3, 16, 16)
    feats = a.embed_images(x)
    torch.testing.assert_close(a.score_features(feats, ["a cat", "a dog"]).scores, a(x, ["a cat", "a dog"]).scores)
    for bad, match in ((["a cat", " "], "empty prompt"), (["a cat"], "2 images but 1 prompts"),
                       (None, "needs prompts")):
        with pytest.raises(ValueError, match=match):  # forward refuses the same
            a.score_features(feats, bad)
        with pytest.raises(ValueError, match=match):
            a(x, bad)
    with pytest.raises(ValueError, match="groups: expected a 1-D tensor of length 2"):
        a.score_features(feats, ["a", "b"], groups=[0, 0, 1])


def test_decode_workers_get_planned_batches_and_never_plan(tmp_path, monkeypatch):
    import os

    from rewardbench import batching

    names = _tiny_images(tmp_path / "img", 12)
    m = tmp_path / "m.jsonl"
    m.write_text("".join(json.dumps({"image": f"img/{n}", "prompt": "p"}) + "\n" for n in names))
    planners = tmp_path / "planners.txt"
    real = batching.plan_batches

    def recording(plan):  # forked workers inherit this: a worker that planned would leave its pid
        with open(planners, "a") as f:
            f.write(f"{os.getpid()}\n")
        yield from real(plan)

    monkeypatch.setattr(batching, "plan_batches", recording)
    res = _scorer({"brightness": Brightness()}, batch_size=3, num_workers=2).run(m)
    assert set(planners.read_text().split()) == {str(os.getpid())}  # planned once, here
    assert list(res.table["image"]) == [f"img/{n}" for n in names]  # in input order
    assert np.allclose(res.table["brightness"], [(7 * i) % 256 / 255 for i in range(12)], atol=1e-6)


def test_one_rule_for_mixed_sizes_from_files_and_arrays(tmp_path):
    from rewardbench.batching import make_batch

    for name, shape in (("a.png", (8, 8, 3)), ("b.png", (4, 6, 3))):
        Image.fromarray(np.zeros(shape, np.uint8)).save(tmp_path / name)
    images = [str(tmp_path / "a.png"), str(tmp_path / "b.png"), torch.zeros(3, 8, 8), np.ones((8, 8, 3), np.uint8)]
    batch = make_batch([{"index": i, "image": im, "prompt": "", "group": None} for i, im in enumerate(images)])
    # one bucket per size; a decoded file (uint8 [H,W,3]) apart from in-memory items (float [3,H,W])
    assert [(pos, tuple(t.shape)) for pos, t in batch["buckets"]] == [
        ([0], (1, 8, 8, 3)), ([2, 3], (2, 3, 8, 8)), ([1], (1, 4, 6, 3))]
    seen = []

    class Sizes(Brightness):
        def score(self, pixels, prompts, groups):
            seen.append(tuple(pixels.shape))
            return super().score(pixels, prompts, groups)

    res = _scorer({"sizes": Sizes()}, batch_size=4).run([{"image": im} for im in images])
    assert res.n_failed == 0 and sorted(seen) == [(1, 3, 4, 6), (3, 3, 8, 8)]  # one call per size, buckets joined


def test_different_backbone_weights_are_not_shared():
    a, b = ToyAlign(), ToyNorm()
    with torch.no_grad():
        b.backbone.proj.bias.add_(0.1)
    s = _scorer({"toy_align": a, "toy_norm": b})
    assert len(s.clusters) == 2 and a.backbone is not b.backbone


def test_registered_clip_rewards_share_their_backbone():
    names = {s.name for s in rewardbench.list_rewards()}
    if not {"clipscore-b32", "aesthetic-v1-b32"} <= names:
        pytest.skip("rewards/clip.py or rewards/aesthetic.py not registered")
    items = _prompted_items(n_prompts=2, per_prompt=4, size=40)
    cfg = {"clipscore-b32": {"tiny": True}, "aesthetic-v1-b32": {"tiny": True}}
    torch.manual_seed(0)  # the aesthetic head's random init (the backbone is seeded by its id)
    shared = _scorer(["clipscore-b32", "aesthetic-v1-b32"], pretrained=False, reward_config=cfg, batch_size=8)
    assert len(shared.clusters) == 1
    t1 = shared.run(items).table
    torch.manual_seed(0)
    alone = _scorer(["clipscore-b32", "aesthetic-v1-b32"], pretrained=False, reward_config=cfg, batch_size=8,
                    share_backbones=False)
    assert len(alone.clusters) == 2
    t2 = alone.run(items).table
    assert t1["error"].isna().all()
    np.testing.assert_allclose(t1["clipscore-b32"], t2["clipscore-b32"], atol=1e-6)
    np.testing.assert_allclose(t1["aesthetic-v1-b32"], t2["aesthetic-v1-b32"], atol=1e-6)


# ----------------------------------------------------------------------------------------------
# streaming, resume, fingerprint


def _tiny_images(d: Path, n: int) -> list[str]:
    d.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        Image.fromarray(np.full((6, 6, 3), (7 * i) % 256, np.uint8)).save(d / f"t{i:03d}.png")
        names.append(f"t{i:03d}.png")
    return names


def test_streams_a_large_manifest_to_one_row_per_input(tmp_path, monkeypatch):
    names = _tiny_images(tmp_path / "img", 40)
    n = 6000
    m = tmp_path / "big.jsonl"
    with open(m, "w") as f:
        for i in range(n):
            f.write(json.dumps({"image": f"img/{names[i % 40]}", "prompt": f"p{i}"}) + "\n")
    out = tmp_path / "big.parquet"
    flushed = []
    real_flush = ShardWriter.flush

    def flush(self):
        flushed.append(len(self.buf))
        real_flush(self)

    monkeypatch.setattr(ShardWriter, "flush", flush)
    res = _scorer({"brightness": Brightness()}, batch_size=64, chunk_rows=500, flush_rows=1000,
                  num_workers=2).run(m, out=out)
    t = pd.read_parquet(out)
    assert res.n_rows == len(t) == n and res.n_failed == 0
    assert list(t["prompt"]) == [f"p{i}" for i in range(n)]
    assert list(t["image"]) == [f"img/{names[i % 40]}" for i in range(n)]  # paths as the manifest gave them
    assert np.allclose(t["brightness"], [(7 * (i % 40)) % 256 / 255 for i in range(n)], atol=1e-6)
    assert len([k for k in flushed if k]) >= 6  # written as it went
    assert not (tmp_path / "big.parquet.parts").exists()  # a finished run leaves one results file


_SLOW_SCRIPT = textwrap.dedent("""
    import sys, time, torch
    from rewardbench import RewardModel, RewardOutput, RewardSpec
    from rewardbench.harness import Scorer

    class Slow(RewardModel):
        spec = RewardSpec(name="slow", category="baseline", license="MIT", paper="-")
        def score(self, pixels, prompts, groups):
            time.sleep(float(sys.argv[3]))
            return RewardOutput(pixels.mean(dim=(1, 2, 3)))

    res = Scorer({"slow": Slow()}, batch_size=4, num_workers=1, progress=False, flush_rows=4).run(
        sys.argv[1], out=sys.argv[2])
    print("SUMMARY", res.summary["resumed"], res.summary["scored_now"], res.n_rows)
""")


def test_resume_after_kill_9(tmp_path):
    names = _tiny_images(tmp_path / "img", 60)
    m = tmp_path / "m.csv"
    pd.DataFrame({"image": [f"img/{n}" for n in names], "prompt": [f"p{i}" for i in range(60)]}).to_csv(m, index=False)
    script = tmp_path / "slow.py"
    script.write_text(_SLOW_SCRIPT)
    out = tmp_path / "res.parquet"
    parts = tmp_path / "res.parquet.parts"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([PY, str(script), str(m), str(out), "0.15"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(parts.glob("part-*.parquet"))) < 3:
        assert proc.poll() is None, proc.stdout.read().decode()
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = sum(len(pd.read_parquet(f)) for f in parts.glob("part-*.parquet"))
    assert 0 < done_before < 60 and not out.exists()

    again = subprocess.run([PY, str(script), str(m), str(out), "0"], env=env, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    resumed, scored, rows = map(int, again.stdout.split("SUMMARY")[1].split())
    assert resumed == done_before and resumed + scored == 60 and rows == 60
    t = pd.read_parquet(out)
    assert len(t) == 60 and list(t["prompt"]) == [f"p{i}" for i in range(60)]  # none lost, none twice
    assert np.allclose(t["slow"], [(7 * i) % 256 / 255 for i in range(60)], atol=1e-6)


def test_a_changed_reward_set_or_weights_is_not_mixed(tmp_path):
    names = _tiny_images(tmp_path / "img", 10)
    out = tmp_path / "r.parquet"
    _scorer({"brightness": Brightness()}).run(tmp_path / "img", out=out)
    # same run again: nothing to do, same table
    again = _scorer({"brightness": Brightness()}).run(tmp_path / "img", out=out)
    assert again.summary["resumed"] == 10 and again.summary["scored_now"] == 0 and again.n_rows == 10
    # a finished table of another run is never replaced without overwrite (resume or not)
    with pytest.raises(OutputExistsError, match="complete results table of a different run .rewards were"):
        _scorer({"brightness": Brightness(), "picky": PickyBrightness()}).run(tmp_path / "img", out=out)
    with pytest.raises(OutputExistsError, match="--overwrite"):
        _scorer({"brightness": Brightness()}).run(tmp_path / "img", out=out, resume=False)
    assert isinstance(OutputExistsError("x"), ResumeMismatchError)
    a, b = ToyNorm(), ToyNorm()
    _scorer({"toy_norm": a}).run(tmp_path / "img", out=tmp_path / "toy.parquet")
    with torch.no_grad():
        b.backbone.proj.weight.mul_(2)
    with pytest.raises(ResumeMismatchError, match="different model parameters"):
        _scorer({"toy_norm": b}).run(tmp_path / "img", out=tmp_path / "toy.parquet")
    fresh = _scorer({"toy_norm": b}).run(tmp_path / "img", out=tmp_path / "toy.parquet", overwrite=True)
    assert fresh.summary["resumed"] == 0 and fresh.n_rows == len(names)


# ----------------------------------------------------------------------------------------------
# data parallel


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_LAUNCHERS = {
    "torchrun": lambda port: ["-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port)],
    # accelerate's --cpu flag starts ONE process; --multi_gpu starts N through torchrun, and on a
    # machine without GPUs the Scorer picks gloo
    "accelerate": lambda port: ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                                "--num_machines", "1", "--main_process_port", str(port), "--mixed_precision", "no",
                                "--dynamo_backend", "no"],
}


@pytest.mark.parametrize("launcher", sorted(_LAUNCHERS))
def test_two_processes_give_the_same_table_as_one(corpus, tmp_path, launcher):
    d, bad = corpus
    one = tmp_path / "one.parquet"
    two = tmp_path / "two.parquet"
    args = ["--model", "jpeg-compressibility,jpeg-incompressibility", "--images", str(d), "--batch-size", "2",
            "--no-progress", "--num-workers", "1"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r1 = subprocess.run([PY, "-m", "rewardbench.cli", "score", *args, "--out", str(one)], env=env,
                        capture_output=True, text=True, timeout=300)
    assert r1.returncode == 1, r1.stderr  # the corpus has bad files
    r2 = subprocess.run([PY, *_LAUNCHERS[launcher](_free_port()), "-m", "rewardbench.cli", "score", *args,
                         "--out", str(two)], env=env, capture_output=True, text=True, timeout=300)
    assert r2.returncode != 0 and "Traceback" not in r2.stdout, r2.stdout + r2.stderr
    t1, t2 = pd.read_parquet(one), pd.read_parquet(two)
    pd.testing.assert_frame_equal(t1, t2)
    assert t1["error"].notna().sum() == len(bad)
    # the work really was split: both ranks wrote shards
    ranks = {p.name.split("-")[2] for p in (tmp_path / "two.parquet.parts").glob("part-*.parquet")}
    assert ranks == {"r0", "r1"}


_FAILING_RANK = textwrap.dedent("""
    import os, sys, time
    from rewardbench import harness

    rank = int(os.environ["RANK"])
    real = harness.Scorer._score_batch
    seen = []

    def score_batch(self, *a, **k):  # rank 1 fails on its second batch, after writing one
        seen.append(1)
        if rank == 1 and len(seen) == 2:
            raise OSError("disk full (injected)")
        return real(self, *a, **k)

    harness.Scorer._score_batch = score_batch
    scorer = harness.Scorer(["jpeg-compressibility"], batch_size=2, num_workers=0, progress=False,
                            flush_rows=1)
    try:
        scorer.run(sys.argv[1], out=sys.argv[2])
    except Exception as e:
        print(f"rank {rank} raised {type(e).__name__}: {e}", flush=True)
        if rank == 1:  # a caller that handles the error and stays alive: the others must not wait on it
            time.sleep(120)
        scorer.close()
        sys.exit(3)
""")


def test_one_failing_rank_does_not_leave_the_others_waiting(tmp_path):
    names = _tiny_images(tmp_path / "img", 12)
    script = tmp_path / "fail.py"
    script.write_text(_FAILING_RANK)
    out = tmp_path / "r.parquet"
    port = str(_free_port())
    procs = []
    for rank in (0, 1):  # launched by hand: no torchrun agent to tear the group down
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "RANK": str(rank),
               "LOCAL_RANK": str(rank), "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
        procs.append(subprocess.Popen([PY, str(script), str(tmp_path / "img"), str(out)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        out0, _ = procs[0].communicate(timeout=120)  # before the fix rank 0 waited at a barrier for rank 1
        assert procs[0].returncode == 3, out0
        assert "rank 0 raised RuntimeError" in out0 and "rank 1: OSError: disk full (injected)" in out0, out0
        assert procs[1].poll() is None  # rank 1 is still alive, sleeping
    finally:
        for p in procs:
            p.kill()
            p.communicate()
    # nothing scored is lost: a plain re-run resumes and completes the table
    res = _scorer(["jpeg-compressibility"]).run(tmp_path / "img", out=out)
    assert res.summary["resumed"] >= 2 and res.n_rows == len(names) and res.n_failed == 0


def test_a_changed_input_is_not_mixed(tmp_path):
    _tiny_images(tmp_path / "img", 6)
    m = tmp_path / "m.jsonl"
    m.write_text("".join(json.dumps({"image": f"img/t{i:03d}.png", "prompt": "a"}) + "\n" for i in range(6)))
    out = tmp_path / "r.parquet"
    _scorer({"brightness": Brightness()}).run(m, out=out)
    m.write_text("".join(json.dumps({"image": f"img/t{i:03d}.png", "prompt": "b"}) + "\n" for i in range(6)))
    with pytest.raises(ResumeMismatchError, match="input was"):
        _scorer({"brightness": Brightness()}).run(m, out=out)


def test_each_process_gets_its_own_gpu(monkeypatch):
    from rewardbench.distributed import process_device as _process_device

    monkeypatch.setenv("LOCAL_RANK", "3")
    assert _process_device("cuda", 4) == torch.device("cuda", 3)  # not every rank on GPU 0
    assert _process_device("cuda", 1) == torch.device("cuda")
    assert _process_device("cuda:0", 4) == torch.device("cuda", 0)  # an explicit index is kept
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert _process_device(None, 4) == torch.device("cuda", 3)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _process_device(None, 4) == torch.device("cpu")
