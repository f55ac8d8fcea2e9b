"""Parity driver: each official implementation in its own environment, scored against ours on the same weights.

    python scripts/parity/run.py --cache /path/to/cache --mirrors /path/to/mirrors [--only vendi,ddpo]
    python scripts/parity/run.py --cache ... --mirrors ... --only hpsv2,pickscore --dtype float64

For each official implementation below it (1) builds ``CACHE/envs/NAME``: a venv whose ``.pth`` file
adds this checkout's environment (torch, open_clip, ... are shared), with the official package and
the few packages it needs pip-installed at pinned versions, so they take precedence; (2) runs the
script with ``--side ours`` in this environment: it builds our reward at full size with seeded
random weights, saves the state dict (safetensors) and scores the real photos on the exact (PIL) and
torch paths; (3) runs it with ``--side official`` in NAME's environment: the official code loads the
same state dict and scores the same files; (4) writes ``results/parity.csv`` and ``results/parity.md``.
``--dtype float64`` runs both sides of the CLIP-family scripts in float64 (the same weights cast after
loading, the same float32 preprocessed images cast at the patch embedding): rows with dtype float64 beside
the float32 ones, which separate the maths and the inputs from the rounding of float32 kernels.
Code published only on GitHub is read at a pinned commit from ``MIRRORS/owner+name/repo`` (bare git
mirrors), never copied into this tree. See README.md beside this file for the workarounds.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from _common import DTYPES, result_file

HERE = Path(__file__).resolve().parent
TRANSFORMERS4 = ("transformers==4.57.3", "tokenizers==0.22.1", "huggingface-hub==0.36.0")
OPENAI_CLIP = ("openai-clip==1.0.1",)  # openai/CLIP repackaged on PyPI (the `clip` module)

# name: script, pip pins (installed with --no-deps: the rest comes from this checkout's environment),
# GitHub sources (owner/name@commit); float64: the script supports --dtype float64
OFFICIAL: dict[str, dict] = {
    "image-reward": dict(script="image_reward.py", pip=("image-reward==1.5", "fairscale==0.4.13",
                                                       *OPENAI_CLIP, *TRANSFORMERS4),
                         github=("salesforce/BLIP@056a169437371659074aa2732649d5de3bffb4a8",)),
    "hpsv2": dict(script="hps.py", pip=("hpsv2==1.2.0",), github=(), float64=True),
    "clipscore": dict(script="clipscore.py", pip=OPENAI_CLIP, float64=True,
                      github=("jmhessel/clipscore@1036465276513621f77f1c2208d742e4a430781f",)),
    "torchmetrics": dict(script="torchmetrics_clipscore.py",
                         pip=("torchmetrics==1.9.0", "lightning-utilities==0.15.3", *TRANSFORMERS4), github=(),
                         float64=True),
    "pickscore": dict(script="pickscore.py", pip=TRANSFORMERS4, float64=True,
                      github=("yuvalkirstain/PickScore@f79607ff68609c1e6dfa78cba38afeea4c248df1",)),
    # the same snippet on transformers 5 as installed here: its default CLIPImageProcessor resizes uint8
    # tensors with torchvision instead of PIL (reuses pickscore's shared weights and our scores)
    "pickscore-transformers5": dict(script="pickscore.py", pip=(), reuse="pickscore",
                                    github=("yuvalkirstain/PickScore@f79607ff68609c1e6dfa78cba38afeea4c248df1",)),
    "aesthetic": dict(script="aesthetic.py", pip=OPENAI_CLIP, float64=True,
                      github=("christophschuhmann/improved-aesthetic-predictor@6934dd81792f086e613a121dbce43082cb8be85e",
                              "LAION-AI/aesthetic-predictor@6d122adad522ab246644d9dc1c6d7a3810ee255f")),
    "vendi-score": dict(script="vendi.py", pip=("vendi-score==0.0.3",), github=()),
    "ddpo-pytorch": dict(script="ddpo.py", pip=(),
                         github=("kvablack/ddpo-pytorch@1958463f020112c9a7bc85768d296daacc2e1b4b",)),
    # Flow-GRPO's SDE step (torch + diffusers only, from this checkout's environment); its "cps" step, added after
    # ac4c86e, is read at 54809b5 (flow_grpo.py says from where)
    "flow-grpo": dict(script="flow_grpo.py", pip=(),
                      github=("yifan123/flow_grpo@ac4c86e8cae021841f1fde853d340e0db67690dd",)),
    # Flow-GRPO's OCR reward after its PaddleOCR call (which needs PaddlePaddle): python-Levenshtein's module, as
    # Flow-GRPO's README installs it (`pip install python-Levenshtein`), and the rapidfuzz it is built on
    "flow-grpo-ocr": dict(script="ocr.py", pip=("levenshtein==0.27.1", "rapidfuzz==3.13.0"),
                          github=("yifan123/flow_grpo@ac4c86e8cae021841f1fde853d340e0db67690dd",)),
    # GenEval 2's evaluation.py and soft_tifa_analysis.py (torch, transformers, pillow, scipy: this checkout's
    # environment; its README pins transformers 4.57.0) on a tiny random Qwen3-VL and an offline Qwen3VLProcessor
    # t2v_metrics' Qwen2.5-VL / Qwen3-VL VQAScore classes with the qwen-vl-utils they call (its PIL resize and budget)
    "t2v-metrics-qwen": dict(script="t2v_metrics_qwen.py", pip=("qwen-vl-utils==0.0.14",),
                             github=("linzhiqiu/t2v_metrics@6ecb74f92028f42c7e64546d3a71e98c8c73068f",)),
    # t2v_metrics' CLIP-FlanT5 (its last commit with it) on transformers 4, whose CLIPImageProcessor resizes with PIL
    "t2v-metrics-clip-flant5": dict(script="clip_flant5.py", pip=TRANSFORMERS4, float64=True,
                                    github=("linzhiqiu/t2v_metrics@335e4c2c3452df52e32fe3c583d9458235e7d9e1",)),
    # hpsv3's inferencer on its transformers pin (and the accelerate, tokenizers and hub of that time; omegaconf for
    # its config parser); its training-only imports are stand-ins (hps_v3.py: not named hpsv3.py, the package)
    "hpsv3": dict(script="hps_v3.py", pip=("hpsv3==1.0.0", "transformers==4.45.2", "tokenizers==0.20.3",
                                          "huggingface-hub==0.36.0", "accelerate==1.0.1", "omegaconf==2.3.0",
                                          "antlr4-python3-runtime==4.9.3"), github=(), float64=True),
    "geneval2": dict(script="geneval2.py", pip=(),
                     github=("facebookresearch/GenEval2@a6e82d2289e8d418f27f0adee77908b07060eea3",)),
}


def build_env(cache: Path, name: str, pins: tuple[str, ...]) -> Path:
    """``CACHE/envs/NAME`` with ``pins`` installed (rebuilt when the pins change); returns its python."""
    env = cache / "envs" / name
    py = env / "bin" / "python"
    stamp = env / "pins.json"
    if py.exists() and stamp.exists() and json.loads(stamp.read_text()) == list(pins):
        return py
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(env)], check=True)
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    main_site = sysconfig.get_paths()["purelib"]  # this interpreter's: the main environment
    # after the env's own site-packages on sys.path: the official pins win, everything else is shared
    # (addsitedir, not a bare path, so that the main environment's own .pth files, e.g. this checkout's
    # editable install, are processed too)
    (Path(site) / "_rewardbench_main.pth").write_text(f"import site; site.addsitedir({main_site!r})\n")
    if pins:
        subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--no-deps", *pins], check=True)
    stamp.write_text(json.dumps(list(pins)))
    return py


def run_side(py: Path, script: str, side: str, work: Path, srcs: list[str], log, dtype: str = "float32") -> None:
    cmd = [str(py), str(HERE / script), "--side", side, "--work", str(work)] + [a for s in srcs for a in ("--src", s)]
    if dtype != "float32":
        cmd += ["--dtype", dtype]
    t = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                               "PYTHONWARNINGS": "ignore"})
    log.write(f"$ {' '.join(cmd)}\n{proc.stdout}\n[{side}: exit {proc.returncode}, {time.perf_counter() - t:.0f} s]\n")
    log.flush()
    if proc.returncode:
        raise RuntimeError(f"{script} --side {side} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}")


def same_inputs(ours: dict | None, theirs: dict | None) -> str:
    """Whether both sides' models received the same image and token rows (``_common.watch_inputs``
    hashes, compared as sets: one side may batch or repeat what the other encodes once); "" if unrecorded."""
    if not ours or not theirs or not (ours.get("image") or theirs.get("image")):
        return ""
    same = all(set(ours.get(k, [])) == set(theirs.get(k, [])) for k in ("image", "text"))
    return "identical" if same else "differ"


def compare(ours: list[dict], theirs: dict[str, dict], dtype: str = "float32") -> list[dict]:
    rows = []
    for case in ours:
        ref = theirs[case["case"]]
        t = [float(v) for v in ref["scores"]]
        for path, values in case["paths"].items():
            o = [float(v) for v in values]
            if len(o) != len(t):
                raise RuntimeError(f"{case['reward']} {path}: {len(o)} scores vs {len(t)} official")
            absd = [abs(a - b) for a, b in zip(o, t)]
            # relative to the largest official magnitude of the set: random weights put cosines near 0
            # (and Hessel's clamp at exactly 0), where a per-item ratio measures float32 noise over ~0
            scale = max(abs(b) for b in t)
            rel = max(absd) / scale if scale else (0.0 if max(absd) == 0 else float("inf"))
            rows.append({"reward": case["reward"], "path": path, "dtype": dtype, "n": len(o),
                         "max_abs_diff": max(absd), "max_rel_diff": rel,
                         "official_range": f"{min(t):.4g} .. {max(t):.4g}", "official": ref["official"],
                         "note": case.get("note", ""), "case": case["case"],
                         "inputs": same_inputs(case.get("inputs"), ref.get("inputs")) if path == "exact" else ""})
    return rows


def order_rows(rows: list[dict]) -> list[dict]:
    """Implementations in ``OFFICIAL`` order; within one, each row's other-dtype twin (same reward, case
    and path) right after it, float32 first."""
    order = {n: i for i, n in enumerate(OFFICIAL)}

    def dt(r):
        return DTYPES.index(r.get("dtype", "float32"))

    rows = sorted(rows, key=lambda r: (order[r["implementation"]], dt(r)))  # stable: keeps each run's order
    first: dict[tuple, int] = {}
    for i, r in enumerate(rows):
        first.setdefault((r["implementation"], r["reward"], r.get("case", r["note"]), r["path"]), i)
    return sorted(rows, key=lambda r: (order[r["implementation"]],
                                       first[(r["implementation"], r["reward"], r.get("case", r["note"]), r["path"])],
                                       dt(r)))


def write_tables(rows: list[dict], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    cols = ["reward", "path", "dtype", "n", "max_abs_diff", "max_rel_diff", "official_range", "official", "note",
            "inputs"]
    with open(out / "parity.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows({"dtype": "float32", "inputs": "", **r} for r in rows)
    lines = ["| reward | path | dtype | n | max abs diff | max rel diff | official scores | official implementation "
             "| note |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        note = r["note"] + {"identical": "; model inputs identical", "differ": "; model inputs DIFFER"}.get(
            r.get("inputs", ""), "")
        lines.append(f"| {r['reward']} | {r['path']} | {r.get('dtype', 'float32')} | {r['n']} "
                     f"| {r['max_abs_diff']:.2e} | {r['max_rel_diff']:.2e} "
                     f"| {r['official_range']} | {r['official']} | {note} |")
    (out / "parity.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, required=True, help="environments and work files (GBs: full-size weights)")
    ap.add_argument("--mirrors", type=Path, help="folder of bare git mirrors, MIRRORS/owner+name/repo")
    ap.add_argument("--only", help="comma-separated names from: " + ", ".join(OFFICIAL))
    ap.add_argument("--dtype", default="float32",
                    help="comma-separated compute dtypes, float32 (as published) and/or float64 (scripts that "
                         "support it: " + ", ".join(n for n, s in OFFICIAL.items() if s.get("float64")) + ")")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--reuse-ours", action="store_true", help="keep our side's scores and weights from a previous run")
    ap.add_argument("--compare-only", action="store_true",
                    help="rebuild the tables from both sides' stored scores (CACHE/work) without running either")
    args = ap.parse_args(argv)
    names = args.only.split(",") if args.only else list(OFFICIAL)
    dtypes = args.dtype.split(",")
    unknown = [n for n in names if n not in OFFICIAL] + [d for d in dtypes if d not in DTYPES]
    if unknown:
        raise SystemExit(f"unknown implementation or dtype: {', '.join(unknown)}")
    lacking = [n for n in names if not OFFICIAL[n].get("float64")] if "float64" in dtypes else []
    if args.only and lacking:  # named explicitly: refuse; otherwise float64 runs where it is supported
        raise SystemExit(f"--dtype float64 is not supported by: {', '.join(lacking)}")
    runs = [(n, d) for n in names for d in dtypes if not (d == "float64" and n in lacking)]
    args.cache.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    previous = args.out / "parity.json"
    if previous.exists():  # a run updates its own rows (implementation and dtype) only
        done = set(runs)
        rows = [r for r in json.loads(previous.read_text())
                if (r.get("implementation"), r.get("dtype", "float32")) not in done]
    with open(args.cache / "parity.log", "a") as log:
        for name, dtype in runs:
            spec = OFFICIAL[name]
            srcs = []
            for item in spec["github"]:
                repo, commit = item.split("@")
                if args.mirrors is None:
                    raise SystemExit(f"{name} reads {repo} at {commit}: pass --mirrors")
                git_dir = args.mirrors / repo.replace("/", "+") / "repo"
                srcs.append(f"{repo}={git_dir}@{commit}")
            work = args.cache / "work" / spec.get("reuse", name)
            ours_file, official_file = work / result_file("ours", dtype), work / result_file("official", dtype)
            stored = work / result_file("official", dtype, name)
            if not args.compare_only:
                py = build_env(args.cache, name, spec["pip"])
                if not ((args.reuse_ours or "reuse" in spec) and ours_file.exists()):
                    print(f"[{name} {dtype}] ours ...", flush=True)
                    run_side(Path(sys.executable), spec["script"], "ours", work, srcs, log, dtype)
                print(f"[{name} {dtype}] official ...", flush=True)
                run_side(py, spec["script"], "official", work, srcs, log, dtype)
                theirs = json.loads(official_file.read_text())["cases"]
                stored.write_text(json.dumps(theirs))
            ours = json.loads(ours_file.read_text())["cases"]
            theirs = json.loads(stored.read_text()) if stored.exists() else \
                json.loads(official_file.read_text())["cases"]
            new = compare(ours, theirs, dtype)
            for r in new:
                r["implementation"] = name
                print(f"  {r['reward']:<22} {r['path']:<24} {dtype}  max abs {r['max_abs_diff']:.2e}  "
                      f"max rel {r['max_rel_diff']:.2e}  {r['inputs']}")
            rows += new
    rows = order_rows(rows)
    previous.parent.mkdir(parents=True, exist_ok=True)
    previous.write_text(json.dumps(rows, indent=1))
    write_tables(rows, args.out)
    digest = hashlib.sha256((args.out / "parity.csv").read_bytes()).hexdigest()[:12]
    print(f"wrote {args.out / 'parity.csv'} and parity.md ({len(rows)} rows, sha256 {digest})")


if __name__ == "__main__":
    main()
