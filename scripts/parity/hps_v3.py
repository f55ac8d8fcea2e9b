"""Parity of ``hpsv3`` with PyPI ``hpsv3==1.0.0``'s ``HPSv3RewardInferencer.reward`` on transformers 4.45.2 (its pin),
on the same tiny random model and image files.

The inferencer is run as published with ``config_path`` (its ``HPSv3_7B.yaml`` with the model path pointed at a
local folder, float32 instead of bfloat16, SDPA instead of flash-attention 2, no DeepSpeed or TensorBoard) and
``checkpoint_path`` (the reward model's state dict in transformers 4.45's layout, as ``HPSv3.safetensors`` holds it:
our tiny model's keys mapped back, the inverse of `rewardbench.rewards.hpsv3.official_to_ours`). Workarounds: the
package imports its training stack at module level (``trl.RewardTrainer`` as a base class, ``peft``, ``datasets``,
``fire``, TensorBoard); those names are stand-ins, none of them runs in ``reward``. ``AutoProcessor.from_pretrained``
(Qwen2-VL-7B-Instruct's processor from the hub) returns a real transformers 4.45 ``Qwen2VLProcessor`` built offline
around the same tokenizer.json, Qwen2-VL's chat template and its image processor constants.

Ours: the reward at the official budget (``min_pixels = max_pixels = 256 x 28 x 28``) on the PNG files read through
PIL with ``pil_preprocess=True`` (``exact``) and on the decoded pixels (``torch``); the inferencer scores the five
photos in one right-padded batch. ``--dtype float64``: both models cast to float64 after loading (the RankNet head
too, which both keep in float32 as published), the float32 preprocessed pixels cast by the vision tower.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from _common import DTYPES, file_pixels, float64_kept, main, stub_module, version_of, write_photos

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = ["a photo of an astronaut", "a cup of coffee", "a cat", "a rocket on a launch pad", "a portrait"]
PIXELS = 256 * 28 * 28  # hpsv3/inference.py prepare_batch: min_pixels = max_pixels


def _config_445(config) -> dict:
    """transformers 4.45's flat Qwen2VLConfig from today's nested one."""
    c = config.to_dict()
    text = dict(c.pop("text_config"))
    rope = dict(text.pop("rope_parameters"))
    out = {k: v for k, v in text.items() if k not in ("model_type", "layer_types", "dtype", "transformers_version")}
    out.update(rope_theta=rope["rope_theta"], rope_scaling={"type": "mrope", "mrope_section": rope["mrope_section"]})
    vision = {k: v for k, v in c["vision_config"].items()
              if k in ("depth", "embed_dim", "hidden_size", "hidden_act", "mlp_ratio", "num_heads", "in_channels",
                       "patch_size", "spatial_merge_size", "temporal_patch_size")}
    out.update(vision_config=vision, model_type="qwen2_vl", architectures=["Qwen2VLForConditionalGeneration"],
               torch_dtype="float32", tie_word_embeddings=False,
               **{k: c[k] for k in ("image_token_id", "video_token_id", "vision_start_token_id",
                                    "vision_end_token_id")})
    return out


def ours(work, args):
    from safetensors.torch import save_file

    import rewardbench

    photos = write_photos(work)
    (work / "photos.json").write_text(json.dumps([str(p) for p in photos]))
    exact = rewardbench.load_reward("hpsv3", pretrained=False, tiny=True, min_pixels=PIXELS, max_pixels=PIXELS,
                                    pil_preprocess=True)
    torch_path = rewardbench.load_reward("hpsv3", pretrained=False, tiny=True, min_pixels=PIXELS, max_pixels=PIXELS)
    torch_path.vlm, torch_path.head = exact.vlm, exact.head
    sd = {}
    for k, v in exact.vlm.model.state_dict().items():  # official_to_ours, inverted
        if k.startswith("model.language_model."):
            k = "model." + k[len("model.language_model."):]
        elif k.startswith("model.visual."):
            k = k[len("model."):]
        sd[k] = v.contiguous()
    sd.update({f"rm_head.{k}": v.contiguous() for k, v in exact.head.state_dict().items()})
    base = work / "base"
    base.mkdir(exist_ok=True)
    save_file(sd, str(base / "model.safetensors"), metadata={"format": "pt"})
    (base / "config.json").write_text(json.dumps(_config_445(exact.vlm.model.config), indent=1))
    exact.vlm.tokenizer.save(str(work / "tokenizer.json"))
    if args.dtype == "float64":  # the same weights in float64, after they were saved for the official side
        exact.vlm.model.double()
        exact.head.double()
    with float64_kept():
        paths = {name: [float(r(file_pixels(f), [p]).scores[0]) for f, p in zip(photos, PROMPTS)]
                 for name, r in (("exact", exact), ("torch", torch_path)) if args.dtype == "float32" or name == "exact"}
    return [{"case": "photos", "reward": "hpsv3", "paths": paths,
             "note": "5 photos, tiny random Qwen2-VL + the RankNet head (mu), HPSv3's 256 x 28 x 28 budget"}]


def _stubs() -> None:
    class _Any:
        def __init__(self, *a, **k):
            pass

    stub_module("trl", RewardTrainer=_Any, get_kbit_device_map=lambda: None,
                get_quantization_config=lambda *a, **k: None)
    stub_module("peft", PeftModel=_Any, LoraConfig=_Any, get_peft_model=lambda m, c: m)
    stub_module("datasets", Dataset=_Any, load_dataset=None, concatenate_datasets=None)
    stub_module("fire", Fire=lambda *a, **k: None)
    stub_module("torch.utils.tensorboard", SummaryWriter=_Any)


def official(work, args):
    import torch
    import transformers
    from tokenizers import Tokenizer

    _stubs()
    sys.path.insert(0, str(ROOT))
    from rewardbench.transforms import CLIP_MEAN, CLIP_STD
    from tests.rewards.test_vlm import QWEN2_VL_TEMPLATE

    tok = transformers.Qwen2TokenizerFast(tokenizer_object=Tokenizer.from_file(str(work / "tokenizer.json")),
                                          pad_token="<|endoftext|>", eos_token="<|im_end|>", unk_token=None,
                                          bos_token=None, padding_side="right")
    image = transformers.Qwen2VLImageProcessor(patch_size=14, merge_size=2, temporal_patch_size=2,
                                               image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD))
    processor = transformers.Qwen2VLProcessor(image_processor=image, tokenizer=tok, chat_template=QWEN2_VL_TEMPLATE)
    transformers.AutoProcessor.from_pretrained = staticmethod(lambda *a, **k: processor)
    import hpsv3
    import yaml

    cfg = yaml.safe_load((Path(hpsv3.__file__).parent / "config" / "HPSv3_7B.yaml").read_text())
    cfg.update(model_name_or_path=str(work / "base"), disable_flash_attn2=True, bf16=False, torch_dtype="float32",
               deepspeed=None, report_to="none", output_dir=str(work / "out"), gradient_checkpointing=False,
               dataloader_num_workers=0)
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    from hpsv3 import HPSv3RewardInferencer

    inferencer = HPSv3RewardInferencer(config_path=str(work / "config.yaml"),
                                       checkpoint_path=str(work / "base" / "model.safetensors"), device="cpu")
    if args.dtype == "float64":  # the processor's float32 pixels are cast by the vision tower's patch embedding
        inferencer.model.double()
    photos = json.loads((work / "photos.json").read_text())
    with torch.no_grad():
        mu = inferencer.reward(photos, PROMPTS)[:, 0]  # "miu and sigma. we select miu"
    return {"photos": {"scores": [float(x) for x in mu],
                       "official": f"{version_of('hpsv3')} HPSv3RewardInferencer.reward, {version_of('transformers')}"}}


if __name__ == "__main__":
    main(ours, official, dtypes=DTYPES)
