"""Parity of ``clipscore-100`` with torchmetrics' CLIPScore (per-image ``100 * cos``, before its mean)."""

from __future__ import annotations

from _common import (
    DTYPES,
    LONG_PROMPT,
    PROMPTS,
    both_paths,
    load_hf_clip,
    main,
    save_hf_clip,
    to_dtype,
    transformers4_in_float64,
    version_of,
    watch_inputs,
    write_photos,
)


def _cases(paths):
    return {"photos": (paths, list(PROMPTS)), "long": (paths[:2], [LONG_PROMPT, PROMPTS[1]])}


def ours(work, args):
    import rewardbench

    paths = write_photos(work / "photos")
    rows = []
    for case, (imgs, texts) in _cases(paths).items():
        opt = {"long_prompts": "torchmetrics"} if case == "long" else {}
        reward = rewardbench.load_reward("clipscore-100", pretrained=False, **opt)
        save_hf_clip(reward.backbone.model, work)
        note = ("a prompt over 77 tokens, long_prompts='torchmetrics'" if opt else
                "random openai/clip-vit-large-patch14 architecture")
        rows.append({"case": case, "reward": "clipscore-100", "note": note,
                     **both_paths(reward, imgs, texts, args.dtype)})
    return rows


def official(work, args):
    import numpy as np
    import torch
    import transformers
    from PIL import Image
    from torchmetrics.functional.multimodal.clip_score import _clip_score_update

    model, processor = load_hf_clip(work)  # CLIPScore(model_name_or_path=...)'s from_pretrained, offline
    transformers4_in_float64(args.dtype)
    out = {}
    for case, (imgs, texts) in _cases(write_photos(work / "photos")).items():
        # torchmetrics takes uint8 image tensors [3, H, W]: the files as PIL decodes them
        images = [torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1) for p in imgs]
        # the per-image scores that CLIPScore.update accumulates (compute() returns max(mean, 0))
        with watch_inputs(to_dtype(model, args.dtype)) as inputs:
            scores, _ = _clip_score_update(images, texts, model, processor)
        out[case] = {"scores": scores.tolist(), "inputs": inputs,
                     "official": f"{version_of('torchmetrics')} _clip_score_update + "
                                 f"transformers {transformers.__version__}"}
    return out


if __name__ == "__main__":
    main(ours, official, DTYPES)
