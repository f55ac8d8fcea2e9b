"""Generators for run-benchmark: diffusers pipelines that make images, and images made beforehand.

* `DiffusersGenerator`: any diffusers text-to-image pipeline given as a source string (hub id, local
  directory, a trainer's ``final/`` output, ``BASE+LORA``, or ``tiny`` for offline smoke runs; see
  `rewardbench.benchmarks.pipelines.parse_source`), with steps, guidance scale, resolution and dtype.
* `read_pregenerated`: a folder of images (one model) or a manifest (JSONL/CSV/parquet) with ``image``,
  ``prompt`` and optionally ``model`` (any number of generators), ``index`` or ``seed`` (pairing), ``category``.

Seeds are pinned per (prompt, image index) by `seed_for`, so a model and its baseline start from the same
noise whatever the batch size or order. `generate_images` saves PNGs (lossless: the JPEG judges must see
the generator's pixels) and appends each finished image to a manifest, so a killed run resumes and redoes
nothing that finished.

    >>> seed_for("a cat", 0) == seed_for("a cat", 0) != seed_for("a cat", 1)
    True
    >>> g = DiffusersGenerator("ft", "tiny:1", GenerationSettings(steps=2, resolution=32))
    >>> g.generate(["a cat", "a dog"], [seed_for("a cat", 0), seed_for("a dog", 0)]).shape
    torch.Size([2, 3, 32, 32])
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .pipelines import PipelineSource, parse_source


def seed_for(prompt: str, index: int, base_seed: int = 0) -> int:
    """The noise seed of image ``index`` of ``prompt``: the same for every model (63-bit, from sha256)."""
    digest = hashlib.sha256(f"{base_seed}\x1f{prompt}\x1f{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


@dataclasses.dataclass(frozen=True)
class GenerationSettings:
    """How images are generated (the same for every generator of a run)."""

    steps: int = 50  # DDIM inference steps
    guidance_scale: float = 7.5  # classifier-free guidance
    resolution: int = 512  # image side, pixels
    negative_prompt: str = ""
    dtype: str | None = None  # e.g. "fp16"/"bf16" (default float32)
    device: str | None = None  # default: a GPU if there is one
    batch_size: int = 8  # images per pipeline call (does not change the images: seeds are per image)
    # text-encoder tokens of a pipeline that takes max_sequence_length (SD3's and FLUX's T5); None: the pipeline's
    # default. The flow trainers' evaluation sets what they trained with (128, as Flow-GRPO), since FLUX attends to
    # every padded token and its images change with the length
    max_sequence_length: int | None = None

    def identity(self) -> dict[str, Any]:
        """What changes the images (the device and batch size do not, by design)."""
        out = {"steps": self.steps, "guidance_scale": self.guidance_scale, "resolution": self.resolution,
               "negative_prompt": self.negative_prompt, "dtype": self.dtype or "float32"}
        if self.max_sequence_length is not None:  # only when set: earlier runs keep their identity
            out["max_sequence_length"] = self.max_sequence_length
        return out


class DiffusersGenerator:
    """A diffusers pipeline as a benchmark generator (loaded on the first `generate` call)."""

    kind = "diffusers"

    def __init__(self, name: str, source: str | PipelineSource, settings: GenerationSettings):
        self.name = name
        self.spec = source if isinstance(source, str) else source.describe()
        self.source = parse_source(source) if isinstance(source, str) else source
        self.settings = settings
        self._pipe = None

    @property
    def random_weights(self) -> bool:
        return self.source.random_weights

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "spec": self.spec, "source": self.source.describe(),
                "random_weights": self.random_weights, **self.settings.identity()}

    def _pipeline(self):
        if self._pipe is None:
            from rewardbench.loading import parse_dtype

            s = self.settings
            device = torch.device(s.device or ("cuda" if torch.cuda.is_available() else "cpu"))
            pipe = self.source.load().to(device)
            dtype = parse_dtype(s.dtype)
            self._pipe = pipe.to(dtype=dtype) if dtype not in (None, torch.float32) else pipe
        return self._pipe

    @torch.no_grad()
    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> torch.Tensor:
        """Images ``[B, 3, H, W]`` in [0, 1], image i from noise seeded ``seeds[i]`` (drawn on the CPU, so the
        same seed gives the same starting noise on every device)."""
        s, pipe = self.settings, self._pipeline()
        gens = [torch.Generator("cpu").manual_seed(int(x)) for x in seeds]
        extra = {}
        if s.max_sequence_length is not None and "max_sequence_length" in inspect.signature(pipe.__call__).parameters:
            extra["max_sequence_length"] = s.max_sequence_length
        out = pipe(prompt=list(prompts), negative_prompt=[s.negative_prompt] * len(prompts),
                   num_inference_steps=s.steps, guidance_scale=s.guidance_scale, height=s.resolution,
                   width=s.resolution, generator=gens, output_type="pt", **extra)
        return out.images.float().clamp(0, 1).cpu()


def slug(name: str) -> str:
    """A folder name for a model name (readable part + a short hash, so distinct names never collide)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:60] or "model"
    return f"{safe}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def _done_rows(manifest: Path) -> dict[tuple[int, int], dict]:
    """Complete lines of a generation manifest (a line cut by a kill is ignored), keyed (prompt_id, index)."""
    done = {}
    if manifest.is_file():
        for line in manifest.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if (manifest.parent / row["file"]).is_file():
                done[(row["prompt_id"], row["index"])] = row
    return done


def _save_png(image: torch.Tensor, path: Path) -> None:
    from PIL import Image

    arr = (image.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    tmp = path.with_name(path.name + ".tmp")
    Image.fromarray(arr).save(tmp, format="PNG")
    os.replace(tmp, path)


def generate_images(generator: DiffusersGenerator, items: list[dict], folder: Path,
                    progress: bool = True) -> tuple[list[dict], int]:
    """Generate every item (``{"prompt_id", "prompt", "index", "seed"}``) not already in ``folder``'s
    manifest, in batches; returns the manifest rows (``file`` relative to ``folder``) in item order and how
    many images were generated now."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / "manifest.jsonl"
    done = _done_rows(manifest)
    todo = [it for it in items if (it["prompt_id"], it["index"]) not in done]
    bar = None
    if progress and todo:
        import sys

        from tqdm.auto import tqdm

        bar = tqdm(total=len(items), initial=len(items) - len(todo), unit="img", desc=f"generating {generator.name}",
                   dynamic_ncols=True, file=sys.stderr)
    bs = max(1, generator.settings.batch_size)
    with open(manifest, "a+", encoding="utf-8") as f:
        if f.tell() > 0:  # a line cut by a kill gets its end, so the next record starts on a line of its own
            f.seek(f.tell() - 1)
            if f.read(1) != "\n":
                f.write("\n")
        for lo in range(0, len(todo), bs):
            batch = todo[lo:lo + bs]
            images = generator.generate([it["prompt"] for it in batch], [it["seed"] for it in batch])
            for it, img in zip(batch, images):
                name = f"{it['prompt_id']:05d}_{it['index']:02d}.png"
                _save_png(img, folder / name)
                row = {"file": name, "prompt_id": it["prompt_id"], "prompt": it["prompt"], "index": it["index"],
                       "seed": it["seed"]}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                done[(it["prompt_id"], it["index"])] = row
            f.flush()
            os.fsync(f.fileno())
            if bar is not None:
                bar.update(len(batch))
    if bar is not None:
        bar.close()
    return [done[(it["prompt_id"], it["index"])] for it in items], len(todo)


RESERVED_MANIFEST_COLUMNS = ("judge", "score", "judges", "group")  # run-benchmark's own columns


def read_pregenerated(source: str | os.PathLike, prompts: str | os.PathLike | None = None,
                      model: str | None = None):
    """Pre-generated images as a table ``image`` (absolute path), ``prompt``, ``model``, ``index`` and the
    manifest's other columns (``seed``, ``category``, ``prompt_id``, anything: they reach run-benchmark's
    ``scores.csv``); columns named like run-benchmark's own (``judge``, ``score``, ``judges``, ``group``) are refused.

    A manifest's ``model`` column may hold any number of generators (default: ``model`` or the manifest's
    name); ``index`` pairs images of one prompt across models (the ``index`` column, else ``seed``, else the
    order of the prompt's rows within the model). A folder is one model (named after it) with ``prompts``.
    """
    import pandas as pd

    from rewardbench.data import MANIFEST_EXTENSIONS, SourceError, open_source

    p = Path(source).expanduser()
    if p.is_dir():
        rows = list(open_source(p, prompts).iter_rows())
        df = pd.DataFrame({"image": [str(Path(r["image"]).resolve()) for r in rows],
                           "prompt": [r["prompt"] for r in rows]})
        df["model"] = model or p.resolve().name
    elif p.is_file() and p.suffix.lower() in MANIFEST_EXTENSIONS:
        ext = p.suffix.lower()
        if ext in (".parquet", ".pq"):
            df = pd.read_parquet(p)
        elif ext in (".csv", ".tsv"):
            df = pd.read_csv(p, sep="\t" if ext == ".tsv" else ",", dtype={"prompt": str, "model": str},
                             keep_default_na=False)
        else:
            df = pd.read_json(p, lines=True, dtype=False)
        for col in ("image", "prompt"):
            if col not in df.columns:
                raise SourceError(f"{p}: a manifest of generated images needs an {col!r} column; "
                                  f"columns are {sorted(df.columns)}")
        root = p.resolve().parent
        df["image"] = [str(x if Path(x).is_absolute() else root / x) for x in df["image"].astype(str)]
        if "model" not in df.columns:
            df["model"] = model or p.stem
    else:
        raise SourceError(f"{p}: not a folder of images or a manifest ({', '.join(MANIFEST_EXTENSIONS)})")
    df["model"] = df["model"].astype(str)
    df["prompt"] = df["prompt"].astype(str)
    if "index" in df.columns:
        df["index"] = df["index"].astype(int)
    elif "seed" in df.columns:
        df["index"] = df["seed"].astype(int)
    else:
        df["index"] = df.groupby(["model", "prompt"], sort=False).cumcount()
    dup = df.duplicated(["model", "prompt", "index"], keep=False)
    if dup.any():
        ex = df.loc[dup, ["model", "prompt", "index"]].head(3).to_dict("records")
        raise SourceError(f"{p}: {int(dup.sum())} images share a (model, prompt, index), e.g. {ex}; give each image "
                          "of a prompt its own `index` (or `seed`)")
    clash = [c for c in RESERVED_MANIFEST_COLUMNS if c in df.columns]
    if clash:
        raise SourceError(f"{p}: column {clash[0]!r} clashes with run-benchmark's own {clash[0]!r} (images are "
                          "grouped by (model, prompt), each judge's scores are rows); rename it in the manifest")
    first = ["image", "prompt", "model", "index"]
    return df[first + [c for c in df.columns if c not in first]].reset_index(drop=True)
