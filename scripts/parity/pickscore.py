"""Parity of ``pickscore`` with the PickScore model card's snippet (``calc_probs``) on transformers."""

from __future__ import annotations

import re

from _common import (
    DTYPES,
    PROMPTS,
    both_paths,
    exec_definitions,
    git_show,
    load_hf_clip,
    main,
    save_hf_clip,
    to_dtype,
    transformers4_in_float64,
    watch_inputs,
    write_photos,
)

REPO = "yuvalkirstain/PickScore"


def ours(work, args):
    import rewardbench

    paths = write_photos(work / "photos")
    r = rewardbench.load_reward("pickscore", pretrained=False)  # full-size ViT-H-14, seeded random weights
    save_hf_clip(r.backbone.model, work)
    return [{"case": "v1", "reward": "pickscore", **both_paths(r, paths, PROMPTS, args.dtype),
             "note": "random ViT-H-14"}]


class _Features:
    """transformers 5's get_image_features/get_text_features return an output object; the snippet (and
    transformers 4) divide the projected embedding tensor, its ``pooler_output`` in 5."""

    def __init__(self, model):
        self.model, self.logit_scale = model, model.logit_scale

    def get_image_features(self, **kw):
        return self.model.get_image_features(**kw).pooler_output

    def get_text_features(self, **kw):
        return self.model.get_text_features(**kw).pooler_output


def official(work, args):
    import torch
    import transformers
    from PIL import Image

    git_dir, commit = args.sources[REPO]
    readme = git_show(git_dir, commit, "README.md")
    snippet = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    model, processor = load_hf_clip(work)  # the snippet's from_pretrained calls, without the hub
    transformers4_in_float64(args.dtype)
    major = int(transformers.__version__.split(".")[0])

    class Capture:  # calc_probs returns softmax(scores); the scores are what PickScore reports
        def __getattr__(self, name):
            return getattr(torch, name)

        def softmax(self, x, dim=-1):
            self.scores = x.clone()
            return torch.softmax(x, dim=dim)

    cap = Capture()
    ns = exec_definitions(snippet, {"calc_probs"}, {"processor": processor, "device": "cpu", "torch": cap,
                                                     "model": _Features(model) if major >= 5 else model})
    scores = []
    with watch_inputs(to_dtype(model, args.dtype)) as inputs:
        for p, t in zip(write_photos(work / "photos"), PROMPTS):
            ns["calc_probs"](t, [Image.open(p)])
            scores.append(float(cap.scores[0]))
    proc = type(processor.image_processor).__name__
    return {"v1": {"scores": scores, "inputs": inputs, "official": f"{REPO}@{commit[:7]} calc_probs + transformers "
                                                 f"{transformers.__version__} ({proc})"}}


if __name__ == "__main__":
    main(ours, official, DTYPES)
