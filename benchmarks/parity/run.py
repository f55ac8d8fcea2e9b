"""Parity driver: each official implementation in its own environment, scored against ours on the same weights.

    python benchmarks/parity/run.py --cache /path/to/cache --mirrors /path/to/mirrors [--only vendi,ddpo]

For each official implementation below it (1) builds ``CACHE/envs/NAME``: a venv whose ``.pth`` file
adds this checkout's environment (torch, open_clip, ... are shared), with the official package and
the few packages it needs pip-installed at pinned versions, so they take precedence; (2) runs the
script with ``--side ours`` in this environment: it builds our reward at full size with seeded
random weights, saves the state dict (safetensors) and scores the real photos on the exact (PIL) and
torch paths; (3) runs it with ``--side official`` in NAME's environment: the official code loads the
same state dict and scores the same files; (4) writes ``results/parity.csv`` and ``results/parity.md``.
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
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRANSFORMERS4 = ("transformers==4.57.3", "tokenizers==0.22.1", "huggingface-hub==0.36.0")
OPENAI_CLIP = ("openai-clip==1.0.1",)  # openai/CLIP repackaged on PyPI (the `clip` module)

# name: script, pip pins (installed with --no-deps: the rest comes from this checkout's environment),
# GitHub sources (owner/name@commit)
OFFICIAL: dict[str, dict] = {
    "image-reward": dict(script="image_reward.py", pip=("image-reward==1.5", "fairscale==0.4.13",
                                                       *OPENAI_CLIP, *TRANSFORMERS4),
                         github=("salesforce/BLIP@056a169437371659074aa2732649d5de3bffb4a8",)),
    "hpsv2": dict(script="hps.py", pip=("hpsv2==1.2.0",), github=()),
    "clipscore": dict(script="clipscore.py", pip=OPENAI_CLIP,
                      github=("jmhessel/clipscore@1036465276513621f77f1c2208d742e4a430781f",)),
    "torchmetrics": dict(script="torchmetrics_clipscore.py",
                         pip=("torchmetrics==1.9.0", "lightning-utilities==0.15.3", *TRANSFORMERS4), github=()),
    "pickscore": dict(script="pickscore.py", pip=TRANSFORMERS4,
                      github=("yuvalkirstain/PickScore@f79607ff68609c1e6dfa78cba38afeea4c248df1",)),
    # the same snippet on transformers 5 as installed here: its default CLIPImageProcessor resizes uint8
    # tensors with torchvision instead of PIL (reuses pickscore's shared weights and our scores)
    "pickscore-transformers5": dict(script="pickscore.py", pip=(), reuse="pickscore",
                                    github=("yuvalkirstain/PickScore@f79607ff68609c1e6dfa78cba38afeea4c248df1",)),
    "aesthetic": dict(script="aesthetic.py", pip=OPENAI_CLIP,
                      github=("christophschuhmann/improved-aesthetic-predictor@6934dd81792f086e613a121dbce43082cb8be85e",
                              "LAION-AI/aesthetic-predictor@6d122adad522ab246644d9dc1c6d7a3810ee255f")),
    "vendi-score": dict(script="vendi.py", pip=("vendi-score==0.0.3",), github=()),
    "ddpo-pytorch": dict(script="ddpo.py", pip=(),
                         github=("kvablack/ddpo-pytorch@1958463f020112c9a7bc85768d296daacc2e1b4b",)),
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
    main_site = subprocess.run([sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip()
    # after the env's own site-packages on sys.path: the official pins win, everything else is shared
    # (addsitedir, not a bare path, so that the main environment's own .pth files, e.g. this checkout's
    # editable install, are processed too)
    (Path(site) / "_rewardbench_main.pth").write_text(f"import site; site.addsitedir({main_site!r})\n")
    if pins:
        subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--no-deps", *pins], check=True)
    stamp.write_text(json.dumps(list(pins)))
    return py


def run_side(py: Path, script: str, side: str, work: Path, srcs: list[str], log) -> None:
    cmd = [str(py), str(HERE / script), "--side", side, "--work", str(work)] + [a for s in srcs for a in ("--src", s)]
    t = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                               "PYTHONWARNINGS": "ignore"})
    log.write(f"$ {' '.join(cmd)}\n{proc.stdout}\n[{side}: exit {proc.returncode}, {time.perf_counter() - t:.0f} s]\n")
    log.flush()
    if proc.returncode:
        raise RuntimeError(f"{script} --side {side} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}")


def compare(ours: list[dict], theirs: dict[str, dict]) -> list[dict]:
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
            rows.append({"reward": case["reward"], "path": path, "n": len(o), "max_abs_diff": max(absd),
                         "max_rel_diff": rel, "official_range": f"{min(t):.4g} .. {max(t):.4g}",
                         "official": ref["official"], "note": case.get("note", "")})
    return rows


def write_tables(rows: list[dict], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    cols = ["reward", "path", "n", "max_abs_diff", "max_rel_diff", "official_range", "official", "note"]
    with open(out / "parity.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    lines = ["| reward | path | n | max abs diff | max rel diff | official scores | official implementation | note |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['reward']} | {r['path']} | {r['n']} | {r['max_abs_diff']:.2e} | {r['max_rel_diff']:.2e} "
                     f"| {r['official_range']} | {r['official']} | {r['note']} |")
    (out / "parity.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, required=True, help="environments and work files (GBs: full-size weights)")
    ap.add_argument("--mirrors", type=Path, help="folder of bare git mirrors, MIRRORS/owner+name/repo")
    ap.add_argument("--only", help="comma-separated names from: " + ", ".join(OFFICIAL))
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--reuse-ours", action="store_true", help="keep our side's scores and weights from a previous run")
    ap.add_argument("--compare-only", action="store_true",
                    help="rebuild the tables from both sides' stored scores (CACHE/work) without running either")
    args = ap.parse_args()
    names = args.only.split(",") if args.only else list(OFFICIAL)
    args.cache.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    previous = args.out / "parity.json"
    if args.only and previous.exists():  # a partial run updates its own rows only
        rows = [r for r in json.loads(previous.read_text()) if r.get("implementation") not in names]
    with open(args.cache / "parity.log", "a") as log:
        for name in names:
            spec = OFFICIAL[name]
            srcs = []
            for item in spec["github"]:
                repo, commit = item.split("@")
                if args.mirrors is None:
                    raise SystemExit(f"{name} reads {repo} at {commit}: pass --mirrors")
                git_dir = args.mirrors / repo.replace("/", "+") / "repo"
                srcs.append(f"{repo}={git_dir}@{commit}")
            work = args.cache / "work" / spec.get("reuse", name)
            if not args.compare_only:
                py = build_env(args.cache, name, spec["pip"])
                if not ((args.reuse_ours or "reuse" in spec) and (work / "ours.json").exists()):
                    print(f"[{name}] ours ...", flush=True)
                    run_side(Path(sys.executable), spec["script"], "ours", work, srcs, log)
                print(f"[{name}] official ...", flush=True)
                run_side(py, spec["script"], "official", work, srcs, log)
                theirs = json.loads((work / "official.json").read_text())["cases"]
                (work / f"official-{name}.json").write_text(json.dumps(theirs))
            ours = json.loads((work / "ours.json").read_text())["cases"]
            stored = work / f"official-{name}.json"
            theirs = json.loads(stored.read_text()) if stored.exists() else \
                json.loads((work / "official.json").read_text())["cases"]
            new = compare(ours, theirs)
            for r in new:
                r["implementation"] = name
                print(f"  {r['reward']:<22} {r['path']:<24} max abs {r['max_abs_diff']:.2e}  "
                      f"max rel {r['max_rel_diff']:.2e}")
            rows += new
    order = {n: i for i, n in enumerate(OFFICIAL)}
    rows.sort(key=lambda r: order[r["implementation"]])
    previous.parent.mkdir(parents=True, exist_ok=True)
    previous.write_text(json.dumps(rows, indent=1))
    write_tables(rows, args.out)
    digest = hashlib.sha256((args.out / "parity.csv").read_bytes()).hexdigest()[:12]
    print(f"wrote {args.out / 'parity.csv'} and parity.md ({len(rows)} rows, sha256 {digest})")


if __name__ == "__main__":
    main()
