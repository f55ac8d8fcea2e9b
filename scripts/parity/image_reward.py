"""Parity of ``imagereward`` with the official ``image-reward`` package (``ImageReward.score``)."""

from __future__ import annotations

import sys
import types

from _common import PROMPTS, file_pixels, git_show, load_state, main, save_state, version_of, write_photos

BLIP = "salesforce/BLIP"


def ours(work, args):
    import shutil

    import torch

    import rewardbench
    from rewardbench.rewards.imagereward import ours_to_official
    from rewardbench.rewards.parts import bert_vocab_path

    paths = write_photos(work / "photos")
    r = rewardbench.load_reward("imagereward", pretrained=False)  # full size, seeded random weights
    sd = {ours_to_official(k): v for k, v in r.state_dict().items()}
    # in the official module but unused by score(): BLIP's contrastive projections, the position ids
    g = torch.Generator().manual_seed(0)
    for name, shape in (("vision_proj", (256, 1024)), ("text_proj", (256, 768))):
        sd[f"blip.{name}.weight"] = torch.randn(shape, generator=g) * 0.02
        sd[f"blip.{name}.bias"] = torch.zeros(shape[0])
    sd["blip.text_encoder.embeddings.position_ids"] = torch.arange(512)[None]
    save_state(sd, work / "ImageReward.safetensors")
    (work / "bert-base-uncased").mkdir(exist_ok=True)
    shutil.copy(bert_vocab_path(), work / "bert-base-uncased" / "vocab.txt")
    exact = [float(r.score_pil([str(p)], [t]).scores[0]) for p, t in zip(paths, PROMPTS)]
    fast = [float(r(file_pixels(p), [t]).scores[0]) for p, t in zip(paths, PROMPTS)]
    return [{"case": "v1.0", "reward": "imagereward", "paths": {"exact": exact, "torch": fast},
             "note": "random BLIP ViT-L/16 + med BERT + MLP"}]


def official(work, args):
    import transformers
    import transformers.modeling_utils
    import transformers.pytorch_utils

    # BLIP's med.py imports these three from transformers.modeling_utils; transformers 4.57 keeps them
    # in transformers.pytorch_utils only (the same functions)
    for name in ("apply_chunking_to_forward", "find_pruneable_heads_and_indices", "prune_linear_layer"):
        setattr(transformers.modeling_utils, name, getattr(transformers.pytorch_utils, name))
    # the package __init__ imports ReFL (the training code: diffusers, datasets, accelerate of 2023),
    # which score() never uses and which does not import against transformers 4.57's hub client
    sys.modules["ImageReward.ReFL"] = types.ModuleType("ImageReward.ReFL")
    import ImageReward.models.BLIP.blip as blip
    from ImageReward.ImageReward import ImageReward

    # init_tokenizer() loads bert-base-uncased from the hub: the same vocab.txt, from a local folder
    local = str(work / "bert-base-uncased")
    blip.BertTokenizer = type("BertTokenizer", (transformers.BertTokenizer,), {
        "from_pretrained": classmethod(lambda cls, name, **kw: transformers.BertTokenizer.from_pretrained(local))})
    # ImageReward's med_config.json (hub THUDM/ImageReward) is BLIP's configs/med_config.json
    git_dir, commit = args.sources[BLIP]
    (work / "med_config.json").write_text(git_show(git_dir, commit, "configs/med_config.json"))
    model = ImageReward(med_config=str(work / "med_config.json"), device="cpu")
    model.load_state_dict(load_state(work / "ImageReward.safetensors"))
    model.eval()
    scores = [model.score(t, str(p)) for p, t in zip(write_photos(work / "photos"), PROMPTS)]
    return {"v1.0": {"scores": scores, "official": f"{version_of('image-reward')} ImageReward.score + transformers "
                                                   f"{transformers.__version__}"}}


if __name__ == "__main__":
    main(ours, official)
