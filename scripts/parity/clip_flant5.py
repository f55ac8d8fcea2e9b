"""Parity of ``vqascore`` (CLIP-FlanT5) with t2v_metrics' own ``CLIPT5Model`` (linzhiqiu/t2v_metrics @ 335e4c2, the
last commit with this backend: ``t2v_metrics/models/vqascore_models/clip_t5_model.py``, ``mm_utils.py``,
``clip_t5/model/...``, ``constants.py``, ``models/model.py``), executed from the pinned source on transformers 4.

The official files are written from the mirror into ``WORK/src`` and imported as their package; the three package
``__init__.py`` files above them (which import every other backend of t2v_metrics) are empty stand-ins. The model is
``load_pretrained_model`` as published, reading a checkpoint folder our side writes in t2v_metrics' layout
(config.json with the ``mm_*`` fields, safetensors with ``shared``/``encoder``/``decoder``/``lm_head`` and
``mm_projector.{0,2}`` keys) of the tiny random CLIP-FlanT5 of ``load_reward("vqascore", tiny=True)``, and a CLIP
tower folder (config, weights and a ``CLIPImageProcessor`` at the tiny size) named by the config's
``mm_vision_tower``, which ``CLIPVisionTower.load_model`` loads with ``from_pretrained``. Workarounds:
``AutoTokenizer.from_pretrained`` (FlanT5's slow sentencepiece tokenizer from the hub) returns a
``PreTrainedTokenizerFast`` of the same tokenizer.json; ``load_pretrained_model`` casts the model to bfloat16, so
the shared weights are made bfloat16-exact first and the model is cast back to float32 after loading (nothing is
lost; the forward then runs in float32 on both sides: t2v_metrics' autocast is CUDA-only).

Ours: the reward on the PNG files read through PIL with ``pil_preprocess=True`` (``exact``) and on the decoded pixels
(``torch``); t2v_metrics scores the five photos in one batch. ``--dtype float64``: both models cast to float64
after loading, the float32 preprocessed pixels cast to float64 before the vision tower on both sides, and
`_common.float64_kept` keeps our ``.float()`` on the logits from rounding back to float32: what is left is any
difference of maths.
"""

from __future__ import annotations

import json
import sys

from _common import DTYPES, file_pixels, float64_kept, git_show, main, version_of, write_photos

REPO = "linzhiqiu/t2v_metrics"
PROMPTS = ["a photo of an astronaut", "a cup of coffee", "a cat", "a rocket on a launch pad", "a portrait"]
FILES = ("t2v_metrics/constants.py", "t2v_metrics/models/model.py",
         "t2v_metrics/models/vqascore_models/vqa_model.py", "t2v_metrics/models/vqascore_models/mm_utils.py",
         "t2v_metrics/models/vqascore_models/clip_t5_model.py",
         "t2v_metrics/models/vqascore_models/clip_t5/__init__.py",
         "t2v_metrics/models/vqascore_models/clip_t5/model/__init__.py",
         "t2v_metrics/models/vqascore_models/clip_t5/model/language_model/clip_t5.py",
         "t2v_metrics/models/vqascore_models/clip_t5/model/multimodal_encoder/builder.py",
         "t2v_metrics/models/vqascore_models/clip_t5/model/multimodal_encoder/clip_encoder.py",
         "t2v_metrics/models/vqascore_models/clip_t5/model/multimodal_projector/builder.py")
STAND_INS = ("t2v_metrics/__init__.py", "t2v_metrics/models/__init__.py",
             "t2v_metrics/models/vqascore_models/__init__.py")


def ours(work, args):
    import torch
    from safetensors.torch import save_file

    import rewardbench
    from rewardbench.transforms import CLIP_MEAN, CLIP_STD

    photos = write_photos(work)
    (work / "photos.json").write_text(json.dumps([str(p) for p in photos]))
    exact = rewardbench.load_reward("vqascore", pretrained=False, tiny=True, pil_preprocess=True)
    net = exact.net
    with torch.no_grad():  # bfloat16-exact weights: t2v_metrics' load casts the model to bfloat16
        for t in net.state_dict().values():
            t.copy_(t.to(torch.bfloat16).float())
    ckpt, tower = work / "ckpt", work / "vision_tower"
    ckpt.mkdir(exist_ok=True)
    tower.mkdir(exist_ok=True)
    sd = {k: v.contiguous() for k, v in net.t5.state_dict().items() if "embed_tokens" not in k}
    sd.update({f"mm_projector.{k}": v.contiguous() for k, v in net.projector.state_dict().items()})
    # transformers 4's CLIPVisionModel keys start with vision_model. (transformers 5 saves them without it)
    vis = {k if k.startswith("vision_model.") else f"vision_model.{k}": v.contiguous()
           for k, v in net.vision.state_dict().items()}
    sd.update({f"vision_tower.vision_tower.{k}": v for k, v in vis.items()})  # else from_pretrained re-initialises
    save_file(sd, str(ckpt / "model.safetensors"), metadata={"format": "pt"})
    save_file(vis, str(tower / "model.safetensors"), metadata={"format": "pt"})
    cfg = net.t5.config.to_dict()
    cfg.update(model_type="clip_t5", architectures=["CLIPT5ForConditionalGeneration"], tie_word_embeddings=False,
               mm_vision_tower=str(tower), mm_hidden_size=net.vision.config.hidden_size,
               mm_projector_type="mlp2x_gelu", mm_vision_select_layer=-2, mm_vision_select_feature="patch",
               use_mm_proj=True)
    for k in ("scale_decoder_outputs", "transformers_version", "dtype", "torch_dtype"):
        cfg.pop(k, None)
    (ckpt / "config.json").write_text(json.dumps(cfg, indent=1))
    vcfg = {k: v for k, v in net.vision.config.to_dict().items() if k not in ("transformers_version", "dtype")}
    (tower / "config.json").write_text(json.dumps({**vcfg, "model_type": "clip_vision_model",
                                                   "architectures": ["CLIPVisionModel"]}, indent=1))
    size = net.image_size
    (tower / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "CLIPImageProcessor", "do_resize": True, "size": {"shortest_edge": size},
        "resample": 3, "do_center_crop": True, "crop_size": {"height": size, "width": size}, "do_rescale": True,
        "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": list(CLIP_MEAN), "image_std": list(CLIP_STD),
        "do_convert_rgb": True}))
    exact.tokenizer.save(str(work / "tokenizer.json"))
    torch_path = rewardbench.load_reward("vqascore", pretrained=False, tiny=True)
    torch_path.net, torch_path.tokenizer = net, exact.tokenizer
    paths = {}
    if args.dtype == "float64":  # the same weights in float64; the float32 preprocessed pixels cast at the tower
        net.double()
    with float64_kept():
        for name, r in (("exact", exact), ("torch", torch_path)):
            if args.dtype == "float32" or name == "exact":
                paths[name] = [float(r(file_pixels(f), [p]).scores[0]) for f, p in zip(photos, PROMPTS)]
    return [{"case": "photos", "reward": "vqascore", "paths": paths,
             "note": "5 photos, tiny random CLIP-FlanT5 (bfloat16-exact weights), score exp(-CE) of 'Yes </s>'"}]


def official(work, args):
    import torch
    import transformers

    git_dir, commit = args.sources[REPO]
    src = work / "src"
    for f in FILES:
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        (src / f).write_text(git_show(git_dir, commit, f))
    for f in STAND_INS:
        (src / f).write_text("")  # the real ones import every backend of t2v_metrics
    sys.path.insert(0, str(src))
    tok = transformers.PreTrainedTokenizerFast(tokenizer_file=str(work / "tokenizer.json"), pad_token="<pad>",
                                               eos_token="</s>", unk_token="<unk>", model_max_length=2048)
    transformers.AutoTokenizer.from_pretrained = staticmethod(lambda *a, **k: tok)
    from t2v_metrics.models.vqascore_models import clip_t5_model as m

    m.CLIP_T5_MODELS["clip-flant5-xxl"]["model"]["path"] = str(work / "ckpt")
    judge = m.CLIPT5Model("clip-flant5-xxl", device="cpu", cache_dir=str(work / "hf_cache"))
    # load_pretrained_model's bfloat16 cast undone (the weights are bfloat16-exact); float64 for --dtype float64 (the
    # tower casts the float32 pixels to its dtype)
    judge.model.to(torch.float64 if args.dtype == "float64" else torch.float32)
    if args.dtype == "float64":  # the tower returns features in its input's dtype: the float32 pixels cast first
        load = judge.load_images
        judge.load_images = lambda paths: load(paths).double()
    photos = json.loads((work / "photos.json").read_text())
    with torch.no_grad():
        scores = [float(s) for s in judge.forward(photos, PROMPTS)]
    return {"photos": {"scores": scores, "official": f"{REPO}@{commit[:7]} CLIPT5Model.forward, "
                                                     f"{version_of('transformers')}"}}


if __name__ == "__main__":
    main(ours, official, dtypes=DTYPES)
