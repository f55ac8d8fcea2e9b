"""Parity of ``vqascore-qwen2.5-vl`` and ``vqascore-qwen3-vl`` with t2v_metrics' own ``Qwen2VLModel.forward`` and
``Qwen3VLModel.forward`` (linzhiqiu/t2v_metrics @ 6ecb74f, ``t2v_metrics/models/vqascore_models/qwen2vl_model.py``,
``qwen3vl_model.py``), executed from the pinned source with qwen-vl-utils 0.0.14 on the same model and image files.

The classes load their model and processor from the hub in ``load_model``: ``from_pretrained`` is pointed at the
tiny random Qwen2.5-VL / Qwen3-VL of ``load_reward(..., tiny=True)`` (saved by our side as config.json +
safetensors) and at a real ``Qwen2_5_VLProcessor`` / ``Qwen3VLProcessor`` built offline (the same tokenizer.json,
the model's chat template, the PIL-backend Qwen2-VL image processor with the family's patch size and mean/std).
Everything else is the official code: ``load_images`` (PIL), qwen-vl-utils' ``process_vision_info`` (its default
budget and PIL resize), the processor with ``do_resize=False``, one ``generate(max_new_tokens=1)`` per item and the
softmax at the answer token. Its base class ``VQAScoreModel`` (abstract, no computation) and ``decord`` (videos) are
stand-ins. Ours: the reward on the files read through PIL (``pil_preprocess=True``, qwen-vl-utils' budget as
t2v_metrics calls it: `rewardbench.rewards.vqascore.t2v_metrics_budget`) and on the decoded pixels (``torch``), with
the generation config's repetition penalty 1.0 and 1.05 (Qwen2.5-VL-7B-Instruct's).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from _common import file_pixels, git_show, main, stub_module, version_of, write_photos

REPO = "linzhiqiu/t2v_metrics"
ROOT = Path(__file__).resolve().parents[2]
PROMPTS = ["a photo of an astronaut", "a cup of coffee", "a cat", "a rocket on a launch pad", "a portrait"]
BACKENDS = {"vqascore-qwen2.5-vl": ("qwen2_5_vl", "qwen2vl_model.py", "Qwen2VLModel", "qwen2.5-vl-7b"),
            "vqascore-qwen3-vl": ("qwen3_vl", "qwen3vl_model.py", "Qwen3VLModel", "qwen3-vl-8b")}
PENALTIES = (1.0, 1.05)


def ours(work, args):
    from safetensors.torch import save_file

    import rewardbench
    from rewardbench.rewards.vqascore import t2v_metrics_budget

    photos = write_photos(work)
    (work / "photos.json").write_text(json.dumps([str(p) for p in photos]))
    cases = []
    for name, (family, *_rest) in BACKENDS.items():
        b = t2v_metrics_budget(family)
        folder = work / name
        folder.mkdir(exist_ok=True)
        for penalty in PENALTIES:
            r = {path: rewardbench.load_reward(name, pretrained=False, tiny=True, min_pixels=b.min_pixels,
                                               max_pixels=b.max_pixels, repetition_penalty=penalty,
                                               pil_preprocess=(path == "exact")) for path in ("exact", "torch")}
            r["torch"].vlm = r["exact"].vlm
            vl = r["exact"].vlm
            if penalty == PENALTIES[0]:
                save_file({k: v.contiguous() for k, v in vl.model.state_dict().items()},
                          str(folder / "model.safetensors"))
                vl.model.config.to_json_file(str(folder / "config.json"))
                vl.tokenizer.save(str(folder / "tokenizer.json"))
            paths = {p: [float(rr(file_pixels(f), [t]).scores[0]) for f, t in zip(photos, PROMPTS)]
                     for p, rr in r.items()}
            refuses = [rr for f, t in zip(photos, PROMPTS)
                       for rr in r["exact"](file_pixels(f), [t]).details["t2v_metrics_refuses"]]
            cases.append({"case": f"{name}-penalty-{penalty}", "reward": name, "paths": paths,
                          "note": f"5 photos, tiny random {family}, repetition penalty {penalty}, qwen-vl-utils' "
                                  f"budget; greedy end token (t2v_metrics refuses): {sum(refuses)}"})
    return cases


def _processor(family: str, folder: Path):
    import transformers
    from tokenizers import Tokenizer

    sys.path.insert(0, str(ROOT))
    from rewardbench.transforms import CLIP_MEAN, CLIP_STD
    from tests.rewards.test_vlm import TEMPLATES  # the models' chat templates, as their chat_template.json hold them

    # preprocessor_config.json of Qwen2.5-VL-7B-Instruct (patch 14, OpenAI CLIP mean/std) and Qwen3-VL-8B-Instruct
    # (patch 16, mean/std 0.5); both merge 2x2 patches and repeat the frame twice
    patch, mean, std = (16, [0.5] * 3, [0.5] * 3) if family == "qwen3_vl" else (14, list(CLIP_MEAN), list(CLIP_STD))
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_file(str(folder / "tokenizer.json")),
                                               pad_token="<|endoftext|>", eos_token="<|im_end|>")
    cls = getattr(transformers, "Qwen2VLImageProcessorPil", None) or transformers.Qwen2VLImageProcessor
    image = cls(patch_size=patch, merge_size=2, temporal_patch_size=2, image_mean=mean, image_std=std)
    if family == "qwen3_vl":
        from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor as Video

        proc = transformers.Qwen3VLProcessor
    else:
        from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor as Video

        proc = transformers.Qwen2_5_VLProcessor
    return proc(image_processor=image, tokenizer=tok, video_processor=Video(), chat_template=TEMPLATES[family])


def official(work, args):
    import torch
    import transformers
    from safetensors.torch import load_file

    git_dir, commit = args.sources[REPO]
    stub_module("decord", VideoReader=None, cpu=None)
    pkg = "t2v_metrics.models.vqascore_models"
    stub_module(f"{pkg}.vqa_model", VQAScoreModel=type("VQAScoreModel", (), {}))  # abstract base: no computation
    photos = json.loads((work / "photos.json").read_text())
    out = {}
    for name, (family, file, cls_name, model_name) in BACKENDS.items():
        folder = work / name
        config = transformers.AutoConfig.from_pretrained(str(folder))
        model = transformers.AutoModelForImageTextToText.from_config(config, attn_implementation="sdpa")
        model.load_state_dict(load_file(str(folder / "model.safetensors")))
        model.eval()
        processor = _processor(family, folder)
        for cls in (transformers.AutoModelForImageTextToText, transformers.Qwen2VLForConditionalGeneration,
                    transformers.Qwen2_5_VLForConditionalGeneration):
            cls.from_pretrained = staticmethod(lambda *a, m=model, **k: m)
        transformers.AutoProcessor.from_pretrained = staticmethod(lambda *a, p=processor, **k: p)
        ns: dict = {"__name__": f"{pkg}.{file[:-3]}", "__package__": pkg}
        exec(compile(git_show(git_dir, commit, f"t2v_metrics/models/vqascore_models/{file}"), file, "exec"), ns)
        judge = ns[cls_name](model_name, device="cpu")
        for penalty in PENALTIES:
            model.generation_config.repetition_penalty = penalty
            with torch.no_grad():
                scores = [float(judge.forward([p], [t])[0]) for p, t in zip(photos, PROMPTS)]
            out[f"{name}-penalty-{penalty}"] = {
                "scores": scores, "official": f"{REPO}@{commit[:7]} {cls_name}.forward + "
                                             f"{version_of('qwen-vl-utils')}, {version_of('transformers')}"}
    return out


if __name__ == "__main__":
    main(ours, official)
