"""The parity harness (scripts/parity) offline: run.py's comparison, row order and tables on a fake
official side, the helpers of _common.py the scripts rely on, and each script's command line. The real
comparison needs the official environments and full-size weights (``scripts/parity/run.py``)."""

from __future__ import annotations

import csv
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

PARITY = Path(__file__).resolve().parents[2] / "scripts" / "parity"


def _load(name: str, file: str):
    # the scripts import _common as a top-level module (`from _common import ...`), as when run: it is
    # registered under that name; the folder is not put on sys.path (its script names would shadow)
    spec = importlib.util.spec_from_file_location(name, PARITY / file)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


common = _load("_common", "_common.py")
run = _load("parity_run", "run.py")


def test_result_file_names():
    assert common.result_file("ours") == "ours.json"
    assert common.result_file("official", "float64") == "official-float64.json"
    assert common.result_file("official", "float32", "hpsv2") == "official-hpsv2.json"
    assert common.result_file("official", "float64", "hpsv2") == "official-hpsv2-float64.json"
    with pytest.raises(ValueError):
        common.result_file("ours", "float16")


def test_compare_max_abs_and_rel_to_largest_official():
    ours = [{"case": "c", "reward": "r", "note": "n", "paths": {"exact": [0.1, -0.2, 0.0], "torch": [0.1, -0.2, 0.3]},
             "inputs": {"image": ["a", "b"], "text": ["t"]}}]
    theirs = {"c": {"scores": [0.1, -0.25, 0.0], "official": "pkg 1.0", "inputs": {"image": ["b", "a"], "text": ["t"]}}}
    exact, torch_row = run.compare(ours, theirs, "float64")
    assert exact["max_abs_diff"] == pytest.approx(0.05)
    assert exact["max_rel_diff"] == pytest.approx(0.05 / 0.25)  # relative to max |official|, not per item
    assert (exact["dtype"], exact["n"], exact["case"], exact["inputs"]) == ("float64", 3, "c", "identical")
    assert exact["official_range"] == "-0.25 .. 0.1"
    assert torch_row["max_abs_diff"] == pytest.approx(0.3) and torch_row["inputs"] == ""  # inputs: exact path only
    with pytest.raises(RuntimeError, match="2 scores vs 3"):
        run.compare([{**ours[0], "paths": {"exact": [0.1, 0.2]}}], theirs)


def test_compare_all_zero_official():
    ours = [{"case": "c", "reward": "r", "paths": {"exact": [0.0, 0.0], "torch": [0.0, 1e-9]}}]
    exact, torch_row = run.compare(ours, {"c": {"scores": [0.0, 0.0], "official": "x"}})
    assert exact["max_rel_diff"] == 0.0 and torch_row["max_rel_diff"] == float("inf")
    assert exact["dtype"] == "float32" and exact["inputs"] == ""  # no record: nothing claimed


def test_same_inputs_as_sets():
    a = {"image": ["i1", "i2"], "text": ["t1", "t2"]}
    assert run.same_inputs(a, {"image": ["i2", "i1", "i1"], "text": ["t2", "t1"]}) == "identical"  # batched/repeated
    assert run.same_inputs(a, {"image": ["i1", "i3"], "text": ["t1", "t2"]}) == "differ"
    assert run.same_inputs(a, {"image": ["i1", "i2"], "text": ["t1"]}) == "differ"
    assert run.same_inputs({"image": ["i"], "text": []}, {"image": ["i"], "text": []}) == "identical"  # image-only
    assert run.same_inputs({"image": [], "text": []}, {"image": [], "text": []}) == ""
    assert run.same_inputs(None, a) == "" and run.same_inputs(a, None) == ""


def _fake_work(cache: Path) -> None:
    work = cache / "work" / "hpsv2"
    work.mkdir(parents=True)
    inputs = {"image": ["i1", "i2"], "text": ["t1", "t2"]}
    (work / "ours.json").write_text(json.dumps({"cases": [
        {"case": "v2", "reward": "hpsv2", "note": "fake", "paths": {"exact": [0.5, -1.0], "torch": [0.5, -1.1]}}]}))
    (work / "official-hpsv2.json").write_text(json.dumps({"v2": {"scores": [0.5, -1.0 + 1e-6], "official": "hps"}}))
    (work / "ours-float64.json").write_text(json.dumps({"cases": [
        {"case": "v2", "reward": "hpsv2", "note": "fake", "paths": {"exact": [0.5, -1.0]}, "inputs": inputs}]}))
    (work / "official-hpsv2-float64.json").write_text(json.dumps(
        {"v2": {"scores": [0.5, -1.0 + 1e-13], "official": "hps", "inputs": inputs}}))


def test_run_compare_only_keeps_other_rows_and_puts_float64_beside_float32(tmp_path):
    cache, out = tmp_path / "cache", tmp_path / "results"
    _fake_work(cache)
    out.mkdir()
    kept = {"reward": "vendi", "path": "exact", "n": 1, "max_abs_diff": 0.0, "max_rel_diff": 0.0,
            "official_range": "1 .. 1", "official": "vendi-score", "note": "", "implementation": "vendi-score"}
    stale = {**kept, "reward": "hpsv2", "implementation": "hpsv2", "max_abs_diff": 9.0}
    (out / "parity.json").write_text(json.dumps([kept, stale]))  # rows of an older run (no dtype column)
    run.main(["--cache", str(cache), "--out", str(out), "--only", "hpsv2", "--dtype", "float32,float64",
              "--compare-only"])
    rows = json.loads((out / "parity.json").read_text())
    assert [(r["implementation"], r["path"], r.get("dtype")) for r in rows] == [
        ("hpsv2", "exact", "float32"), ("hpsv2", "exact", "float64"), ("hpsv2", "torch", "float32"),
        ("vendi-score", "exact", None)]  # the stale hpsv2 row replaced, vendi's kept, hpsv2 before vendi
    assert rows[0]["max_abs_diff"] == pytest.approx(1e-6) and rows[1]["max_abs_diff"] == pytest.approx(1e-13)
    assert rows[1]["inputs"] == "identical"
    table = (out / "parity.md").read_text().splitlines()
    assert table[0].startswith("| reward | path | dtype | n | max abs diff | max rel diff |")
    assert table[3].startswith("| hpsv2 | exact | float64 | 2 | 1.00e-13 | 1.00e-13 |")
    assert table[3].endswith("| fake; model inputs identical |")
    assert table[5].startswith("| vendi | exact | float32 | 1 |")
    with open(out / "parity.csv") as f:
        got = list(csv.DictReader(f))
    assert [r["dtype"] for r in got] == ["float32", "float64", "float32", "float32"]

    # a float64-only rerun replaces the float64 row and keeps the float32 ones
    (cache / "work" / "hpsv2" / "official-hpsv2-float64.json").write_text(json.dumps(
        {"v2": {"scores": [0.5, -1.0 + 2e-12], "official": "hps"}}))
    run.main(["--cache", str(cache), "--out", str(out), "--only", "hpsv2", "--dtype", "float64", "--compare-only"])
    rows = json.loads((out / "parity.json").read_text())
    assert [r.get("dtype") for r in rows] == ["float32", "float64", "float32", None]
    assert rows[1]["max_abs_diff"] == pytest.approx(2e-12) and rows[1]["inputs"] == ""
    assert rows[0]["max_abs_diff"] == pytest.approx(1e-6)


def test_run_refuses_float64_where_unsupported(tmp_path):
    assert not run.OFFICIAL["vendi-score"].get("float64") and run.OFFICIAL["hpsv2"].get("float64")
    with pytest.raises(SystemExit, match="not supported by: vendi-score"):
        run.main(["--cache", str(tmp_path), "--only", "hpsv2,vendi-score", "--dtype", "float64", "--compare-only"])
    with pytest.raises(SystemExit, match="unknown"):
        run.main(["--cache", str(tmp_path), "--only", "hpsv2", "--dtype", "float16", "--compare-only"])


def test_exec_definitions_runs_only_the_named_definitions():
    source = ("import math\n"
              "raise RuntimeError('the script runs a GPU job at import')\n"
              "def keep(x):\n    return math.sqrt(x)\n"
              "class Also:\n    pass\n"
              "def other():\n    pass\n")
    ns = common.exec_definitions(source, {"keep", "Also"}, {}, imports=True)
    assert ns["keep"](4.0) == 2.0 and "Also" in ns and "other" not in ns
    ns = common.exec_definitions(source, {"Also"}, {})
    assert "math" not in ns
    with pytest.raises(RuntimeError, match="no definition of \\['missing'\\]"):
        common.exec_definitions(source, {"keep", "missing"}, {})


def test_stub_module_registers_an_importable_tree():
    name = "parity_stub_pkg.textui"
    try:
        mod = common.stub_module(name, progress=None, level=3)
        import parity_stub_pkg.textui as again  # noqa: F401  (the import statement finds it)
        from parity_stub_pkg.textui import level

        assert again is mod and level == 3 and mod.progress is None
        assert sys.modules["parity_stub_pkg"].textui is mod
        assert importlib.util.find_spec("parity_stub_pkg") is not None
    finally:
        for k in ("parity_stub_pkg.textui", "parity_stub_pkg"):
            sys.modules.pop(k, None)


def test_float64_kept_restores_tensor_float():
    x64, x16 = torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float16)
    had = "float" in torch.Tensor.__dict__
    with common.float64_kept():
        assert x64.float() is x64 and x16.float().dtype == torch.float32
    assert x64.float().dtype == torch.float32
    assert ("float" in torch.Tensor.__dict__) == had


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.pos = nn.Embedding(7, 4)
        self.tok = nn.Embedding(50, 4)
        self.conv = nn.Conv2d(3, 4, 2)

    def forward(self, image, ids):
        return self.conv(image).mean() + self.tok(ids).mean()


def test_watch_inputs_hashes_rows_and_casts_the_image():
    model = _Tiny().double()
    image = torch.rand(2, 3, 4, 4)  # float32, as official code hands its preprocessed tensor
    ids = torch.tensor([[1, 2, 3], [4, 5, 6]])
    with common.watch_inputs(model) as rec:
        out = model(image, ids)  # float32 image on float64 weights: cast by the hook
        model(image[1:], ids[1:])
    assert out.dtype == torch.float64
    assert len(rec["image"]) == 3 and rec["image"][2] == rec["image"][1] != rec["image"][0]
    assert len(rec["text"]) == 3 and rec["text"][2] == rec["text"][1] != rec["text"][0]
    assert rec["image"][0] == common._row_hashes(image[:1].double(), "image")[0]  # hashes of float64 values
    # token rows compared without their padding (a batch padded to its longest prompt, or 0-padded to 77)
    assert common._row_hashes(torch.tensor([[5, 6, 9, 9, 9], [5, 6, 9, 0, 0]]), "text") == \
        common._row_hashes(torch.tensor([[5, 6, 9]]), "text") + common._row_hashes(torch.tensor([[5, 6, 9, 0]]), "text")
    assert len(set(common._row_hashes(torch.tensor([[5, 6, 9], [5, 7, 9], [5, 6, 6]]), "text"))) == 3
    with pytest.raises(RuntimeError):  # hooks removed afterwards
        model(image, ids)
    assert len(rec["image"]) == 3


def test_main_parses_the_command_line_and_writes_the_side_file(tmp_path):
    seen = {}

    def ours(work, args):
        seen.update(work=work, sources=args.sources, dtype=args.dtype, grad=torch.is_grad_enabled())
        return [{"case": "c"}]

    try:
        common.main(ours, lambda work, args: {}, common.DTYPES,
                    ["--side", "ours", "--work", str(tmp_path / "w"), "--dtype", "float64",
                     "--src", "a/b=/m/a+b/repo@0123abc", "--src", "c/d=/m/c+d/repo@4567def"])
    finally:
        torch.set_grad_enabled(True)
    assert seen == {"work": tmp_path / "w", "dtype": "float64", "grad": False,
                    "sources": {"a/b": ("/m/a+b/repo", "0123abc"), "c/d": ("/m/c+d/repo", "4567def")}}
    assert json.loads((tmp_path / "w" / "ours-float64.json").read_text()) == {"cases": [{"case": "c"}]}
    with pytest.raises(SystemExit):  # a script without float64 support refuses it
        common.main(ours, lambda work, args: {}, ("float32",), ["--side", "ours", "--work", str(tmp_path),
                                                               "--dtype", "float64"])


def _one_name_per_script() -> list[str]:
    first: dict[str, str] = {}
    for name, spec in run.OFFICIAL.items():  # pickscore-transformers5 reuses pickscore.py
        first.setdefault(spec["script"], name)
    return sorted(first.values())


@pytest.mark.parametrize("name", _one_name_per_script())
def test_each_script_command_line(name, tmp_path):
    script = PARITY / run.OFFICIAL[name]["script"]
    assert script.exists()
    help_ = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert help_.returncode == 0, help_.stderr
    assert "--side {ours,official}" in help_.stdout and "--work WORK" in help_.stdout
    # run.py asks for float64 exactly where the script accepts it
    assert ("float64" in help_.stdout) == bool(run.OFFICIAL[name].get("float64"))
    bad = subprocess.run([sys.executable, str(script), "--side", "theirs", "--work", str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_both_paths_float64_computes_our_reward_in_float64(tmp_path):
    import torch.nn.functional as F
    from PIL import Image

    import rewardbench

    r = rewardbench.load_reward("clipscore-b32", pretrained=False, tiny=True)
    paths = common.write_photos(tmp_path)[:2]
    prompts = list(common.PROMPTS[:2])
    f32 = common.both_paths(r, paths, prompts)
    f64 = common.both_paths(r, paths, prompts, "float64")
    assert sorted(f32["paths"]) == ["exact", "torch"] and list(f64["paths"]) == ["exact"]
    assert f64["inputs"]["image"] == f32["inputs"]["image"] and len(f64["inputs"]["image"]) == 2
    assert len(f64["inputs"]["text"]) == 2
    # the reward's formula by hand in float64 on its own model: only float64 rounding apart
    bb = r.backbone
    assert next(bb.model.parameters()).dtype == torch.float64
    x = bb.pil_preprocess_images([Image.open(p) for p in paths]).double()
    img = F.normalize(bb.model.encode_image(x), dim=-1)
    txt = F.normalize(bb.model.encode_text(bb.tokenize([r.prompt_prefix + t for t in prompts])["text"]), dim=-1)
    want = (r.scale * (img * txt).sum(-1).clamp(min=0)).tolist()
    assert f64["paths"]["exact"] == pytest.approx(want, abs=1e-12)
    assert f32["paths"]["exact"] == pytest.approx(want, abs=1e-5)
    assert min(want) > 0  # not two clamped zeros
