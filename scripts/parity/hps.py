"""Parity of ``hpsv2`` with the official ``hpsv2`` package's ``img_score.score``."""

from __future__ import annotations

from _common import DTYPES, PROMPTS, both_paths, main, stub_module, to_dtype, version_of, watch_inputs, write_photos


def ours(work, args):
    import torch

    import rewardbench

    paths = write_photos(work / "photos")
    r = rewardbench.load_reward("hpsv2", pretrained=False)  # full-size ViT-H-14, seeded random weights
    # the official checkpoint's layout ({"state_dict": ...}, hpsv2/img_score.py score())
    torch.save({"state_dict": r.backbone.model.state_dict()}, work / "hps.pt")
    return [{"case": "v2", "reward": "hpsv2", **both_paths(r, paths, PROMPTS, args.dtype),
             "note": "random ViT-H-14 (hpsv2.1: same code and architecture)"}]


def official(work, args):
    import shutil
    from importlib.util import find_spec
    from pathlib import Path

    # img_score imports clint (a download progress bar), unused when the checkpoint path is given
    stub_module("clint.textui", progress=None)
    # the hpsv2 1.2.0 wheel lacks its tokenizer vocabulary (hpsv2/src/open_clip/bpe_simple_vocab_16e6.txt.gz):
    # the same file ships in open_clip_torch
    vendored = Path(find_spec("hpsv2").submodule_search_locations[0]) / "src" / "open_clip"
    bpe = vendored / "bpe_simple_vocab_16e6.txt.gz"
    if not bpe.exists():
        from rewardbench.text import clip_bpe_path

        shutil.copy(clip_bpe_path(), bpe)
    from hpsv2 import img_score
    from hpsv2.src.open_clip import factory

    cp = str(work / "hps.pt")
    # create_model_and_transforms('ViT-H-14', 'laion2B-s32B-b79K') downloads the base weights first;
    # score() then loads the checkpoint over all of them: point the download at the checkpoint
    factory.download_pretrained = lambda cfg, cache_dir=None: cp
    paths = [str(p) for p in write_photos(work / "photos")]
    img_score.initialize_model()  # the model score() uses (its load_state_dict keeps the parameters' dtype)
    with watch_inputs(to_dtype(img_score.model_dict["model"], args.dtype)) as inputs:
        scores = [float(img_score.score(p, t, cp=cp, hps_version="v2.0")[0]) for p, t in zip(paths, PROMPTS)]
    return {"v2": {"scores": scores, "inputs": inputs, "official": f"{version_of('hpsv2')} img_score.score"}}


if __name__ == "__main__":
    main(ours, official, DTYPES)
