"""Shared helpers of the parity scripts: photos, prompts, state-dict exchange, reading pinned official sources."""

from __future__ import annotations

import argparse
import ast
import contextlib
import hashlib
import json
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# Real photos bundled with scikit-image/matplotlib (rewardbench.samples); sizes 512x512, 400x600,
# 300x451, 427x640 and 600x512, so portrait, landscape, square and the odd crop offsets all occur.
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "grace_hopper")
PROMPTS = ("a photo of an astronaut in a white space suit", "a cup of coffee on a saucer",
           "a photo of a ginger cat", "a rocket on a launch pad", "a portrait of a woman in uniform")
# over 77 CLIP tokens: how each implementation cuts a long prompt
LONG_PROMPT = "a photo of " + "a very large red and blue striped cat sitting on a wooden chair, " * 8
SEED = 1234
# float32: as published. float64: both sides' weights cast to float64 after loading the shared (float32)
# state dict, the float32 preprocessed images cast to float64 at the first convolution: what is left
# between the sides is then the maths and the inputs, not the rounding of float32 kernels
DTYPES = ("float32", "float64")


def result_file(side: str, dtype: str = "float32", name: str = "") -> str:
    """Name of a side's scores in the work folder: ``ours.json``, ``official-NAME-float64.json``..."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    return f"{side}{'-' + name if name else ''}{'' if dtype == 'float32' else '-' + dtype}.json"


def write_photos(folder: Path) -> list[Path]:
    """The photos as PNG files (lossless: the file decodes to exactly the bundled pixels)."""
    from PIL import Image

    from rewardbench.samples import sample_photo

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in PHOTOS:
        p = folder / f"{name}.png"
        if not p.exists():
            Image.fromarray(sample_photo(name)).save(p)
        paths.append(p)
    return paths


def file_pixels(path: Path):
    """A file as the torch path receives it: decoded by PIL, ``[1,3,H,W]`` float in [0, 1]."""
    from PIL import Image

    from rewardbench.transforms import to_tensor

    with Image.open(path) as im:
        return to_tensor(im)[None]


def _row_hashes(x, kind: str) -> list[str]:
    """sha256 (16 hex digits) of each row of a batch: images as float64 values; token ids as int64 without
    the trailing run of the row's last id (the padding: one side may pad a batch of prompts to the
    longest, the other encode each prompt alone; the pad id is 0 or the end-of-text id)."""
    import torch

    x = x.detach().cpu().to(torch.float64 if kind == "image" else torch.int64)
    rows = [r.contiguous() for r in x.reshape(x.shape[0], -1)]
    if kind == "text":
        rows = [r[:int(torch.nonzero(r != r[-1]).max()) + 1] if bool((r != r[-1]).any()) else r[:1] for r in rows]
    return [hashlib.sha256(r.numpy().tobytes()).hexdigest()[:16] for r in rows]


@contextlib.contextmanager
def watch_inputs(model) -> Iterator[dict[str, list[str]]]:
    """While open: record a hash of every image row reaching the model's first ``Conv2d`` (the patch
    embedding) and every token-id row reaching its largest ``Embedding`` (the token embedding), and cast
    the convolution's input to the weight dtype (the float64 run: official code that hands the model its
    float32 preprocessed tensor as is, e.g. hpsv2's, would otherwise fail on float64 weights). For both
    sides the record says whether the models received the same numbers. Yields ``{"image": [...], "text": [...]}``."""
    from torch import nn

    record: dict[str, list[str]] = {"image": [], "text": []}
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    emb = max((m for m in model.modules() if isinstance(m, nn.Embedding)), key=lambda m: m.num_embeddings)

    def on_image(mod, args):
        record["image"] += _row_hashes(args[0], "image")
        return (args[0].to(mod.weight.dtype), *args[1:])

    def on_text(mod, args):
        record["text"] += _row_hashes(args[0], "text")

    handles = [conv.register_forward_pre_hook(on_image), emb.register_forward_pre_hook(on_text)]
    try:
        yield record
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def float64_kept() -> Iterator[None]:
    """While open, ``Tensor.float()`` leaves float64 tensors as they are. Our rewards call ``.float()`` on
    the features and the logit scale (it upcasts half-precision backbones to float32); in the float64 run
    that would put float32 rounding back on our side only. Everything else of our code runs unchanged."""
    import torch

    own = "float" in torch.Tensor.__dict__
    original = torch.Tensor.float

    def float_(self, *args, **kwargs):
        return self if self.dtype == torch.float64 else original(self, *args, **kwargs)

    torch.Tensor.float = float_
    try:
        yield
    finally:
        if own:
            torch.Tensor.float = original
        else:
            del torch.Tensor.float


def both_paths(reward, paths: list[Path], prompts=None, dtype: str = "float32") -> dict[str, Any]:
    """Our scores of the files on the two paths of one model (so both see the same weights): exact
    (``pil_preprocess`` on: the files through PIL) and torch (the decoded pixels, resized in torch).
    Returns ``{"paths": {"exact": [...], "torch": [...]}, "inputs": ...}`` (`watch_inputs` on the exact
    path). ``dtype="float64"``: the reward cast to float64 (after its weights were saved) and the exact
    path only (the torch path differs from the official PIL resize by design; float64 says nothing more)."""
    import torch

    prompts = list(prompts) if prompts is not None else [None] * len(paths)

    def one(image, prompt):
        return float((reward(image) if prompt is None else reward(image, [prompt])).scores[0])

    wide = dtype == "float64"
    if wide:
        reward.to(torch.float64)
    reward.backbone.pil_preprocess = True
    try:
        with watch_inputs(reward.backbone.model) as inputs, float64_kept() if wide else contextlib.nullcontext():
            exact = [one([str(p)], t) for p, t in zip(paths, prompts)]
    finally:
        reward.backbone.pil_preprocess = False
    if wide:
        return {"paths": {"exact": exact}, "inputs": inputs}
    return {"paths": {"exact": exact, "torch": [one(file_pixels(p), t) for p, t in zip(paths, prompts)]},
            "inputs": inputs}


def to_dtype(model, dtype: str):
    """The official side's model in ``dtype`` (float64: cast after the shared weights are loaded)."""
    import torch

    return model.to(torch.float64) if dtype == "float64" else model


def transformers4_in_float64(dtype: str) -> None:
    """transformers 4.57 builds CLIP's causal text mask as ``torch.full(..., torch.finfo(dtype).min)``
    without a dtype (modeling_attn_mask_utils.py ``_make_causal_mask``): in torch's default float32, the
    float64 minimum overflows. For a float64 run on transformers 4 the default dtype becomes float64 (the
    image processor's numpy float32 output stays float32: `watch_inputs` checks that both sides' models get
    the same pixels); otherwise nothing changes."""
    import torch
    import transformers

    if dtype == "float64" and int(transformers.__version__.split(".")[0]) < 5:
        torch.set_default_dtype(torch.float64)


def openai_clip_in_float64() -> None:
    """openai/CLIP's ``LayerNorm`` computes in float32 whatever its input (clip/model.py: it exists to
    run fp16 models); for the float64 run it computes in the input's dtype, i.e. as ``nn.LayerNorm``.
    On float32 inputs, as published, the two are the same operation."""
    import clip
    from torch import nn

    clip.model.LayerNorm.forward = nn.LayerNorm.forward


def ours_openai_clip(work: Path, cases, prompts=None, dtype: str = "float32") -> list[dict]:
    """Our side for rewards on OpenAI's CLIP: for each (reward, case, note), seeded random weights with
    the CLIP made fp16-exact (OpenAI's checkpoints are fp16), saved as CASE.safetensors (a head as
    CASE-head.safetensors), and our scores (`both_paths`)."""
    import rewardbench

    paths = write_photos(work / "photos")
    rows = []
    for name, case, note in cases:
        r = rewardbench.load_reward(name, pretrained=False)
        round_to_fp16(r.backbone.model)
        save_state(r.backbone.model.state_dict(), work / f"{case}.safetensors")
        if hasattr(r, "head"):
            save_state(r.head.state_dict(), work / f"{case}-head.safetensors")
        rows.append({"case": case, "reward": name, "note": note, **both_paths(r, paths, prompts, dtype)})
    return rows


def save_state(state: dict, path: Path) -> None:
    """A state dict to safetensors (each tensor its own contiguous copy: no shared storage)."""
    from safetensors.torch import save_file

    save_file({k: v.detach().cpu().contiguous().clone() for k, v in state.items()}, str(path))


def round_to_fp16(model) -> None:
    """Make a model's float weights fp16-representable, in place. OpenAI publishes CLIP in fp16 and
    openai/CLIP's ``build_model`` casts to fp16 (``convert_weights``) before ``load`` casts back to
    float32 on CPU: with weights already fp16-exact, both sides hold the same float32 numbers."""
    import torch

    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            if t.is_floating_point():
                t.copy_(t.half().float())


def load_state(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def git_show(git_dir: str, commit: str, path: str) -> str:
    """A file of a public repository at a pinned commit, read from a local git mirror."""
    return subprocess.run(["git", f"--git-dir={git_dir}", "show", f"{commit}:{path}"], check=True,
                          capture_output=True, text=True).stdout


def exec_definitions(source: str, names: set[str], namespace: dict[str, Any], imports: bool = False) -> dict[str, Any]:
    """Execute only the top-level functions/classes called ``names`` of an official script (which runs
    downloads or a GPU job at import) in ``namespace`` (``imports``: its top-level imports too); return
    the namespace."""
    tree = ast.parse(source)
    keep = [n for n in tree.body if (isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name in names)
            or (imports and isinstance(n, (ast.Import, ast.ImportFrom)))]
    missing = names - {n.name for n in keep if not isinstance(n, (ast.Import, ast.ImportFrom))}
    if missing:
        raise RuntimeError(f"official source has no definition of {sorted(missing)}")
    exec(compile(ast.Module(body=keep, type_ignores=[]), "<official>", "exec"), namespace)
    return namespace


def stub_module(name: str, **attrs: Any) -> types.ModuleType:
    """Register an empty module (and its parents) for an import the scored code never uses."""
    parts = name.split(".")
    import importlib.machinery

    for i in range(1, len(parts) + 1):
        name_i = ".".join(parts[:i])
        if name_i not in sys.modules:
            mod = types.ModuleType(name_i)
            mod.__spec__ = importlib.machinery.ModuleSpec(name_i, None)  # find_spec() must not fail on it
            sys.modules[name_i] = mod
    mod = sys.modules[name]
    for k, v in attrs.items():
        setattr(mod, k, v)
    for i in range(len(parts) - 1, 0, -1):
        setattr(sys.modules[".".join(parts[:i])], parts[i], sys.modules[".".join(parts[:i + 1])])
    return mod


def save_hf_clip(model, work: Path) -> None:
    """A transformers CLIPModel for the official side: config.json, weights, and the tokenizer files the
    hub serves (vocab.json, merges.txt), written from open_clip's bundled BPE (the same vocabulary)."""
    from rewardbench.text import clip_bpe

    model.config.to_json_file(str(work / "config.json"))
    save_state(model.state_dict(), work / "model.safetensors")
    tok = work / "tokenizer"
    tok.mkdir(exist_ok=True)
    vocab, merges = clip_bpe()  # the vocabulary our offline tokenizer is built from
    (tok / "vocab.json").write_text(json.dumps(vocab))
    (tok / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    (tok / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 77}))  # as the hub's


def load_hf_clip(work: Path):
    """(model, processor) as ``AutoModel``/``AutoProcessor.from_pretrained`` build them for a CLIP repo,
    without the hub: CLIPModel from the shared config and weights; CLIPProcessor with the default image
    processor class of the installed transformers (transformers 4: PIL; 5: torchvision) configured as
    openai/clip-vit-large-patch14's and laion/CLIP-ViT-H-14's preprocessor_config.json (identical)."""
    import transformers
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    model = CLIPModel(CLIPConfig.from_json_file(str(work / "config.json")))
    model.load_state_dict(load_state(work / "model.safetensors"))
    model.eval()
    tok_cls = getattr(transformers, "CLIPTokenizerFast", None) or transformers.CLIPTokenizer  # AutoTokenizer: fast
    tokenizer = tok_cls.from_pretrained(str(work / "tokenizer"))  # a local folder, as from the hub
    images = CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}, resample=3,
                                do_center_crop=True, image_mean=[0.48145466, 0.4578275, 0.40821073],
                                image_std=[0.26862954, 0.26130258, 0.27577711])
    return model, CLIPProcessor(image_processor=images, tokenizer=tokenizer)


def version_of(dist: str) -> str:
    import importlib.metadata as md

    return f"{dist} {md.version(dist)}"


def main(ours: Callable[[Path, argparse.Namespace], list[dict]],
         official: Callable[[Path, argparse.Namespace], dict[str, dict]], dtypes: tuple[str, ...] = ("float32",),
         argv: list[str] | None = None) -> None:
    """Entry point of a parity script: ``--side ours`` (the main environment) writes the shared state
    dicts and our scores, ``--side official`` (the official package's environment) reads the state
    dicts and writes the official scores, to `result_file` in ``--work``. ``dtypes``: the ``--dtype``
    values the script supports. ``run.py`` calls both and compares."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--side", choices=("ours", "official"), required=True)
    ap.add_argument("--work", type=Path, required=True, help="exchange folder (state dicts, photos, scores)")
    ap.add_argument("--src", action="append", default=[], help="owner/name=GIT_DIR@COMMIT of official sources")
    ap.add_argument("--dtype", choices=dtypes, default="float32", help="compute dtype of both sides")
    args = ap.parse_args(argv)
    args.sources = {}
    for item in args.src:
        repo, rest = item.split("=", 1)
        git_dir, commit = rest.rsplit("@", 1)
        args.sources[repo] = (git_dir, commit)
    args.work.mkdir(parents=True, exist_ok=True)
    import torch

    torch.set_grad_enabled(False)
    torch.manual_seed(SEED)  # random weights that no backbone id seeds (heads, ImageReward) repeat run to run
    if args.side == "ours":
        out = {"cases": ours(args.work, args)}
    else:
        out = {"cases": official(args.work, args)}
    (args.work / result_file(args.side, args.dtype)).write_text(json.dumps(out, indent=1))
