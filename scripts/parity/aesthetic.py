"""Parity of ``aesthetic`` (LAION improved predictor v2) and ``aesthetic-v1`` with their official code."""

from __future__ import annotations

import json

from _common import (
    DTYPES,
    exec_definitions,
    git_show,
    load_state,
    main,
    openai_clip_in_float64,
    ours_openai_clip,
    to_dtype,
    version_of,
    watch_inputs,
    write_photos,
)

V2_REPO, V1_REPO = "christophschuhmann/improved-aesthetic-predictor", "LAION-AI/aesthetic-predictor"
CASES = (("aesthetic", "v2"), ("aesthetic-v1", "v1"))


def ours(work, args):
    return ours_openai_clip(work, [(name, case, "random ViT-L/14 and head") for name, case in CASES],
                            dtype=args.dtype)


def _v2(work, args, clip_model, paths):
    """simple_inference.py: its MLP and normalized() as published; the scoring lines as the script runs
    them, on CPU (the script casts to torch.cuda.FloatTensor)."""
    import types

    import clip
    import torch
    import torch.nn.functional as F
    from PIL import Image
    from torch import nn

    git_dir, commit = args.sources[V2_REPO]
    # MLP subclasses pytorch_lightning's LightningModule, an nn.Module; inference uses none of Lightning
    ns = exec_definitions(git_show(git_dir, commit, "simple_inference.py"), {"MLP", "normalized"},
                          {"pl": types.SimpleNamespace(LightningModule=nn.Module), "nn": nn, "torch": torch, "F": F})
    model = ns["MLP"](768)
    model.load_state_dict(load_state(work / "v2-head.safetensors"))
    model = to_dtype(model, args.dtype).eval()
    # the script's .type(torch.cuda.FloatTensor), on CPU; float64 run: DoubleTensor, the head's dtype
    tensor_type = torch.DoubleTensor if args.dtype == "float64" else torch.FloatTensor
    preprocess = clip.clip._transform(clip_model.visual.input_resolution)  # what clip.load() returns
    scores = []
    with watch_inputs(clip_model) as inputs:
        for p in paths:
            image = preprocess(Image.open(p)).unsqueeze(0)
            image_features = clip_model.encode_image(image)
            im_emb_arr = ns["normalized"](image_features.cpu().detach().numpy())
            scores.append(float(model(torch.from_numpy(im_emb_arr).type(tensor_type))))
    return {"scores": scores, "inputs": inputs,
            "official": f"{V2_REPO}@{commit[:7]} simple_inference.py + {version_of('openai-clip')}"}


def _v1(work, args, paths):
    """The notebook's get_aesthetic_model() as published (it reads ~/.cache/emb_reader/sa_0_4_vit_l_14_linear.pth:
    HOME points at a folder holding the shared head there), open_clip's ViT-L-14 transforms."""
    import os

    import open_clip
    import torch
    from PIL import Image

    git_dir, commit = args.sources[V1_REPO]
    cells = json.loads(git_show(git_dir, commit, "asthetics_predictor.ipynb"))["cells"]
    src = next("".join(c["source"]) for c in cells if "def get_aesthetic_model" in "".join(c["source"]))
    src = "\n".join(line for line in src.splitlines() if not line.startswith("!"))
    ns = exec_definitions(src, {"get_aesthetic_model"}, {}, imports=True)
    home = work / "home"
    (home / ".cache" / "emb_reader").mkdir(parents=True, exist_ok=True)
    torch.save(load_state(work / "v1-head.safetensors"), home / ".cache" / "emb_reader" / "sa_0_4_vit_l_14_linear.pth")
    os.environ["HOME"] = str(home)
    amodel = to_dtype(ns["get_aesthetic_model"](clip_model="vit_l_14"), args.dtype)
    # create_model_and_transforms('ViT-L-14', pretrained='openai') without the download: the 'openai' tag
    # means QuickGELU and OpenAI's mean/std (open_clip's defaults); the shared weights load afterwards
    model, _, preprocess = open_clip.create_model_and_transforms("ViT-L-14", pretrained=None, force_quick_gelu=True)
    model.load_state_dict(load_state(work / "v1.safetensors"))
    model = to_dtype(model, args.dtype).eval()
    scores = []
    with watch_inputs(model) as inputs:
        for p in paths:
            image = preprocess(Image.open(p)).unsqueeze(0)
            image_features = model.encode_image(image)
            image_features /= image_features.norm(dim=-1, keepdim=True)
            scores.append(float(amodel(image_features)))
    return {"scores": scores, "inputs": inputs,
            "official": f"{V1_REPO}@{commit[:7]} notebook + {version_of('open_clip_torch')}"}


def official(work, args):
    import clip

    if args.dtype == "float64":
        openai_clip_in_float64()
    paths = [str(p) for p in write_photos(work / "photos")]
    clip_model = to_dtype(clip.model.build_model(load_state(work / "v2.safetensors")).float().eval(), args.dtype)
    return {"v2": _v2(work, args, clip_model, paths), "v1": _v1(work, args, paths)}


if __name__ == "__main__":
    main(ours, official, DTYPES)
