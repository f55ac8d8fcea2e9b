"""T2I-CompBench's rewards: 2D spatial and numeracy on detector boxes, BLIP-VQA, CLIP non-spatial, and 3-in-1.

The rules follow the official evaluation scripts of T2I-CompBench (Karine-Huang/T2I-CompBench); the
detector-based ones share the pipeline of `rewards.detection` (prompt parser, YOLO on COCO in place of
UniDet, unknown objects noted) and the box geometry of `rewards._boxes`:

=====================  ========================================================================
reward                 rule
=====================  ========================================================================
compbench-spatial      T2I-CompBench 2D spatial (UniDet_eval/2D_spatial_eval.py): 0.25 * conf of
                       each object + 0.5 * the relation's soft score from the box centres and IoU;
                       totals under 0.5 become 0. ``mode="official"`` (default) or "corrected".
compbench-numeracy     T2I-CompBench numeracy (UniDet_eval/numeracy_eval.py): per object,
                       weight 1/n: +0.5 if detected, +0.5 more if the count is exact.
compbench-vqa          T2I-CompBench BLIP-VQA (attribute binding): product over noun phrases of
                       P(yes | image, "<noun phrase>?").
compbench-nonspatial   T2I-CompBench CLIPScore: cosine similarity, CLIP ViT-B/32 (via the registry).
compbench-complex      T2I-CompBench 3-in-1: mean of BLIP-VQA and spatial (prompt with a spatial
                       relation) or BLIP-VQA and CLIP (otherwise).
=====================  ========================================================================

``compbench-vqa`` and ``compbench-nonspatial`` are differentiable; the others are not.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from rewardbench import Option, RewardModel, RewardOutput, RewardSpec, WeightSource, register_reward
from rewardbench.transforms import CLIP_MEAN, CLIP_STD, normalize, resize

from ._boxes import COMPBENCH_REFERENCE_SIZE, compbench_position_score, dedup_boxes
from ._detect import Detections, yolo_weight_sources
from ._prompts import ParsedPrompt, parse_prompt
from ._vocab import COLORS, NUMBER_WORDS, SHAPES, TEXTURES
from .detection import (
    _DETECTOR_TINY,
    _YOLO_LICENSE,
    DEFAULT_DETECTOR,
    _det_spec,
    _DetectionReward,
    threshold_option,
)

_COMPBENCH = ("Huang et al., T2I-CompBench: A Comprehensive Benchmark for Open-world Compositional Text-to-image "
              "Generation, arXiv 2307.06350")
# UniDet's score threshold lives in its detectron2 config; with YOLO we keep detections above this.
COMPBENCH_DETECTION_THRESHOLD = 0.3
# T2I-CompBench UniDet_eval/2D_spatial_eval.py (commit 6d58bed) line 168, vocab_spatial: the relation phrases the
# official rule looks for, as substrings of the prompt, in this order; the first found is the relation (lines
# 170-174). determine_position() (lines 23-77) scores all but "on top of", which reaches its `else: score=0`
# (lines 76-77).
COMPBENCH_OFFICIAL_RELATIONS = ("on side of", "next to", "near", "on the left of", "on the right of",
                                "on the bottom of", "on the top of", "on top of")
SPATIAL_MODES = ("official", "corrected")


# =============================================================================================
# 2D spatial and numeracy: rules on detections, and their rewards


def official_relation(prompt: str) -> str | None:
    """The relation T2I-CompBench's 2D spatial rule reads from a prompt: the first of its phrases
    (`COMPBENCH_OFFICIAL_RELATIONS`) found anywhere in the text, or None.

        >>> official_relation("a dog on top of a car"), official_relation("a dog beside a car")
        ('on top of', None)
    """
    return next((w for w in COMPBENCH_OFFICIAL_RELATIONS if w in prompt), None)


def _pair_instances(det: Detections, a: str, b: str, min_score: float, distinct: bool = True):
    """Best instance of ``a`` and of ``b``; when ``a == b``, the second best of ``b`` (``distinct``)
    or the same best box twice (the official code's ``obj.index``: 2D_spatial_eval.py lines 234-235)."""
    ba, sa = det.of(a, min_score)
    bb, sb = det.of(b, min_score)
    ia = 0 if len(sa) else None
    ib = (1 if len(sb) > 1 else None) if a == b and distinct else (0 if len(sb) else None)
    return ((ba[ia].tolist(), float(sa[ia])) if ia is not None else None,
            (bb[ib].tolist(), float(sb[ib])) if ib is not None else None)


def compbench_spatial(parsed: ParsedPrompt, det: Detections, min_score: float = COMPBENCH_DETECTION_THRESHOLD,
                      mode: str = "official") -> float:
    """T2I-CompBench 2D spatial score of one image: subject and reference are the relation's two
    objects (the first and last object when no relation is found, as the official code takes the
    first and last noun). ``0.25 * conf(subject) + 0.25 * conf(reference) + position / 2`` when both
    are detected, ``0.25 * conf`` when one is, 0 when none; a total under 0.5 is 0.

    ``mode="official"``: the published rule (UniDet_eval/2D_spatial_eval.py): the relation is
    `official_relation` of the prompt's text, two objects of one class both take the class's best box,
    the proximity threshold is 150 px at any image size, "on top of" scores 0. ``mode="corrected"``:
    the parser's relation (any phrasing), the second best box for the second object of a class, and
    the threshold scaled to the image (150 px at 512). See `CompBenchSpatial`."""
    if mode not in SPATIAL_MODES:
        raise ValueError(f"compbench spatial mode {mode!r}: choose from {', '.join(SPATIAL_MODES)}")
    if not parsed.objects:
        return 0.0
    official = mode == "official"
    if parsed.relations:
        r = parsed.relations[0]
        o1, o2, rel = parsed.objects[r.subject], parsed.objects[r.object], r.relation
    else:
        o1, o2, rel = parsed.objects[0], parsed.objects[-1], None
    if official:
        rel = official_relation(parsed.text)
    if o1.coco and o2.coco:
        i1, i2 = _pair_instances(det, o1.coco, o2.coco, min_score, distinct=not official)
    else:  # an object unknown to the detector
        i1 = _pair_instances(det, o1.coco, o1.coco, min_score)[0] if o1.coco else None
        i2 = _pair_instances(det, o2.coco, o2.coco, min_score)[0] if o2.coco else None
    if i1 and i2:
        reference = None if official else COMPBENCH_REFERENCE_SIZE
        position = compbench_position_score(rel, i1[0], i2[0], det.image_size, reference_size=reference)
        score = 0.25 * i1[1] + 0.25 * i2[1] + position / 2  # official: lines 250-251
    elif i1 or i2:
        score = 0.25 * (i1 or i2)[1]  # type: ignore[index]
    else:
        score = 0.0
    return score if score >= 0.5 else 0.0  # official: `if (score<0.5): score=0` (lines 260-261)


def compbench_numeracy(parsed: ParsedPrompt, det: Detections,
                       min_score: float = COMPBENCH_DETECTION_THRESHOLD) -> float:
    """T2I-CompBench numeracy score: objects introduced by a number word or "a"/"an"; each weighs
    1/n and earns half for being detected and half for the exact count (duplicates merged)."""
    objs = [o for o in parsed.objects if o.det.split()[:1] and o.det.split()[-1] in NUMBER_WORDS]
    if not objs:
        objs = list(parsed.objects)
    if not objs:
        return 0.0
    w = 1.0 / len(objs)
    score = 0.0
    for o in objs:
        if o.coco is None:
            continue
        boxes, _ = det.of(o.coco, min_score)
        n = dedup_boxes(boxes)
        if n > 0:
            score += 0.5 * w
            if n == (o.count or 1):
                score += 0.5 * w
    return score


@register_reward()
class CompBenchSpatial(_DetectionReward):
    """T2I-CompBench 2D spatial score (UniDet rule on YOLO boxes), in one of two modes.

    ``mode="official"`` (the default) reproduces UniDet_eval/2D_spatial_eval.py as published, so the
    reward is the benchmark's rule:
      (a) two objects of one class ("a dog next to a dog") both take the class's first (best) box:
          a direction then scores 0, and a proximity relation scores 1 — one detected dog passes;
      (b) the proximity threshold is 150 px whatever the image size;
      (c) the relation is the first phrase of its vocabulary found in the prompt; "on top of" is in
          the vocabulary but not scored (position 0), and other phrasings ("beside", "above",
          "to the left of") are not found (position 0).
    ``mode="corrected"`` is the rule as it was meant: (a) the second box of the class for the second
    object, (b) 150 px at 512 px scaled to the image's longer side, (c) the parser's relation, so
    "on top of" is "on the top of", "beside" is "next to", and so on. The two agree on the official
    spatial prompts at 512 x 512 (no same-class pair nor "on top of" among them); prefer "corrected"
    as a training reward or for other prompts and sizes (the official (a) is easy to game).
    """

    spec = _det_spec("compbench-spatial", "T2I-CompBench 2D spatial: 0.25*conf per object + relation score/2, "
                     "zeroed below 0.5", _COMPBENCH, aliases=("t2i-compbench-spatial",),
                     options={"threshold": threshold_option(COMPBENCH_DETECTION_THRESHOLD),
                              "mode": Option(str, "official", "the official rule or the corrected one (see above)",
                                             choices=SPATIAL_MODES)})

    def __init__(self, model: str = DEFAULT_DETECTOR, imgsz: int = 640, detector: nn.Module | None = None,
                 mode: str = "official", **rule_kw: Any):
        if mode not in SPATIAL_MODES:
            raise ValueError(f"compbench-spatial mode {mode!r}: choose from {', '.join(SPATIAL_MODES)}")
        super().__init__(model=model, imgsz=imgsz, detector=detector, **rule_kw)
        self.mode = mode

    def rule(self, parsed, det, pixels):
        min_score = self.rule_kw.get("threshold", COMPBENCH_DETECTION_THRESHOLD)
        return compbench_spatial(parsed, det, min_score, self.mode), {"note": self._note(parsed)}

    def _note(self, parsed: ParsedPrompt) -> str:
        if self.mode == "corrected":
            return "" if parsed.relations else "no spatial relation found in the prompt: position score 0"
        rel = official_relation(parsed.text)
        if rel is None:
            return ("no relation phrase of T2I-CompBench's vocabulary in the prompt: position score 0 "
                    "(mode='corrected' reads the parser's relation)")
        if rel == "on top of":
            return ("'on top of' is not scored by T2I-CompBench's rule: position score 0 (mode='corrected' reads "
                    "it as 'on the top of')")
        return ""


@register_reward()
class CompBenchNumeracy(_DetectionReward):
    """T2I-CompBench numeracy score (UniDet rule on YOLO boxes)."""

    spec = _det_spec("compbench-numeracy", "T2I-CompBench numeracy: per object 0.5 if detected + 0.5 if the count "
                     "is exact, averaged", _COMPBENCH, aliases=("t2i-compbench-numeracy",),
                     options={"threshold": threshold_option(COMPBENCH_DETECTION_THRESHOLD)})

    def rule(self, parsed, det, pixels):
        return compbench_numeracy(parsed, det, self.rule_kw.get("threshold", COMPBENCH_DETECTION_THRESHOLD)), {}


# =============================================================================================
# BLIP-VQA (attribute binding), CLIPScore (non-spatial) and 3-in-1 (complex)

# Salesforce/blip-vqa-base (transformers config.json): ViT-B/16 at 384 px, BERT-base text encoder
# and decoder with cross-attention, vocabulary 30,524 (bert-base-uncased + [DEC] + [ENC]).
BLIP_VQA_BASE = dict(
    vision=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                image_size=384, patch_size=16, layer_norm_eps=1e-5),
    text=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
              encoder_hidden_size=768, vocab_size=30524, max_position_embeddings=512, layer_norm_eps=1e-12),
)
BLIP_VQA_TINY = dict(
    vision=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2, image_size=32,
                patch_size=8, layer_norm_eps=1e-5),
    text=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2,
              encoder_hidden_size=32, vocab_size=30524, max_position_embeddings=64, layer_norm_eps=1e-12),
)
# T2I-CompBench BLIPvqa_eval/models/blip_vqa.py vqa_prob(): the decoder starts from [DEC] (30522)
# and the answer is P("yes") / (P("yes") + P("no")) of the first token; "yes" = 2748, "no" = 2053 in
# bert-base-uncased's vocabulary. Questions: the noun phrase + "?", at most 35 tokens, first token
# replaced by [ENC] (30523) as BLIP's VQA encoder expects; at most 8 noun phrases (--np_num 8).
BLIP_DEC_ID, BLIP_ENC_ID, BLIP_YES_ID, BLIP_NO_ID = 30522, 30523, 2748, 2053
BLIP_MAX_QUESTION_TOKENS = 35
COMPBENCH_MAX_PHRASES = 8


@register_reward()
class CompBenchVQA(RewardModel):
    """T2I-CompBench's BLIP-VQA score for attribute binding (colour, shape, texture): one question
    per noun phrase of the prompt ("a green bench?"), the probability of "yes" among yes/no,
    multiplied over the phrases. Differentiable with respect to the pixels."""

    spec = RewardSpec(
        name="compbench-vqa", aliases=("blip-vqa", "t2i-compbench-vqa"), category="composition",
        higher_is_better=True, range=(0.0, 1.0), differentiable=True, needs_prompt=True,
        weights=(WeightSource("hub", "Salesforce/blip-vqa-base", filename="model.safetensors"),),
        license="BSD-3-Clause (Salesforce BLIP)", paper=_COMPBENCH + "; Li et al., BLIP, arXiv 2201.12086",
        description="T2I-CompBench BLIP-VQA: product over noun phrases of P(yes | image, '<phrase>?'), "
                    "transformers BlipForQuestionAnswering (Salesforce/blip-vqa-base)",
        tiny_config={"tiny": True},
    )

    def __init__(self, tiny: bool = False, image_size: int | None = None, tokenizer: str | None = None):
        super().__init__()
        from transformers import BlipConfig, BlipForQuestionAnswering

        arch = BLIP_VQA_TINY if tiny else BLIP_VQA_BASE
        cfg = BlipConfig(text_config=dict(arch["text"]), vision_config=dict(arch["vision"]))
        self.vqa = BlipForQuestionAnswering(cfg).eval()
        self.image_size = int(image_size or arch["vision"]["image_size"])
        from ._blip import blip_tokenizer  # BLIP's tokenizer, offline from the packaged vocabulary

        self.tokenizer = blip_tokenizer(tokenizer)

    def load_pretrained(self, weights=None):
        from rewardbench.weights import CheckpointMismatchError, load_into, load_state_dict, resolve_weights

        found = resolve_weights(self.spec.weights, reward=self.spec.name, override=weights)
        sd = load_state_dict(found.path, map_location="cpu")
        own = self.vqa.state_dict()
        missing = set(own) - set(sd)
        tied = {"text_decoder.cls.predictions.decoder.weight", "text_decoder.cls.predictions.decoder.bias"}
        if missing - tied:
            raise CheckpointMismatchError(f"{found.path}: missing keys {sorted(missing - tied)[:20]}")
        load_into(self.vqa, {k: v for k, v in sd.items() if k in own}, strict=False, source=str(found.path))
        self.vqa.tie_weights()
        self.record_weights(found.provenance)
        return self.provenance()

    @staticmethod
    def questions(prompt: str) -> list[str]:
        """The noun-phrase questions T2I-CompBench asks for a prompt (at most 8)."""
        return [f"{o.phrase}?" for o in parse_prompt(prompt).objects][:COMPBENCH_MAX_PHRASES]

    def yes_probability(self, pixels: torch.Tensor, questions: list[list[str]]) -> list[torch.Tensor]:
        """P(yes)/(P(yes)+P(no)) for each question of each image: a list of ``[Q_i]`` tensors."""
        dev = pixels.device
        # BLIP's eval transform: resize to S x S (bicubic), normalise with the CLIP mean/std
        x = normalize(resize(pixels, (self.image_size, self.image_size)), CLIP_MEAN, CLIP_STD)
        image_embeds = self.vqa.vision_model(pixel_values=x.to(self.dtype)).last_hidden_state  # [B, P+1, D]
        flat = [(i, q) for i, qs in enumerate(questions) for q in qs]
        if not flat:
            return [torch.zeros(0, device=dev) for _ in questions]
        # padded to a fixed length so that a question's result does not depend on its batch-mates
        enc = self.tokenizer([q for _, q in flat], padding="max_length", truncation=True,
                             max_length=BLIP_MAX_QUESTION_TOKENS, return_tensors="pt")
        ids = enc["input_ids"].to(dev)
        ids[:, 0] = BLIP_ENC_ID
        mask = enc["attention_mask"].to(dev)
        owner = torch.tensor([i for i, _ in flat], device=dev)
        img = image_embeds[owner]  # (questions, P+1, D)
        img_mask = torch.ones(img.shape[:-1], dtype=torch.long, device=dev)
        q = self.vqa.text_encoder(input_ids=ids, attention_mask=mask, encoder_hidden_states=img,
                                  encoder_attention_mask=img_mask).last_hidden_state
        start = torch.full((len(flat), 1), BLIP_DEC_ID, dtype=torch.long, device=dev)
        logits = self.vqa.text_decoder(input_ids=start, encoder_hidden_states=q, encoder_attention_mask=mask,
                                       return_logits=False).logits[:, 0, :].float()
        prob = logits.softmax(dim=-1)
        p = prob[:, BLIP_YES_ID] / (prob[:, BLIP_YES_ID] + prob[:, BLIP_NO_ID])
        out, k = [], 0
        for qs in questions:
            out.append(p[k:k + len(qs)])
            k += len(qs)
        return out

    def score(self, pixels, prompts, groups) -> RewardOutput:
        qs = [self.questions(p) for p in prompts]
        probs = self.yes_probability(pixels, qs)
        ones = pixels.sum(dim=(1, 2, 3)) * 0 + 1  # keeps the graph for prompts without a phrase
        scores = torch.stack([pr.prod() if len(pr) else ones[i] for i, pr in enumerate(probs)]).float()
        notes = ["" if q else "no noun phrase found: score 1 (as T2I-CompBench scores a missing phrase)" for q in qs]
        return RewardOutput(scores, {"questions": [" | ".join(q) for q in qs],
                                     "yes_probs": [",".join(f"{float(v):.4f}" for v in pr.detach()) for pr in probs],
                                     "note": notes})


def _strip_adjectives(prompt: str) -> str:
    """The prompt without attribute words (T2I-CompBench complex: CLIP sees the prompt without
    adjectives; here without the colour/shape/texture vocabulary)."""
    import re

    words = re.findall(r"\S+", prompt)
    keep = [w for w in words if w.lower().strip(".,;:!?") not in COLORS | SHAPES | TEXTURES]
    return " ".join(keep) or prompt


@register_reward()
class CompBenchNonSpatial(RewardModel):
    """T2I-CompBench's non-spatial score: the CLIP ViT-B/32 cosine similarity of image and prompt
    (CLIPScore_eval/CLIP_similarity.py: no 2.5 factor, no clamp), through the registry's
    ``clipscore-b32`` with ``scale=1, clamp_at_zero=False``."""

    spec = RewardSpec(
        name="compbench-nonspatial", aliases=("t2i-compbench-nonspatial", "compbench-clip"), category="composition",
        higher_is_better=True, range=(-1.0, 1.0), differentiable=True, needs_prompt=True,
        weights=(WeightSource("hub", "timm/vit_base_patch32_clip_224.openai", filename="open_clip_model.safetensors"),),
        license="MIT (OpenAI CLIP weights)", paper=_COMPBENCH,
        description="T2I-CompBench non-spatial: CLIP ViT-B/32 image-text cosine similarity",
        tiny_config={"tiny": True},
    )

    def __init__(self, tiny: bool = False, strip_adjectives: bool = False):
        super().__init__()
        from rewardbench.registry import REGISTRY

        self.clip = REGISTRY.build("clipscore-b32", tiny=tiny, scale=1.0, clamp_at_zero=False)
        self.strip_adjectives = strip_adjectives

    def load_pretrained(self, weights=None):
        self.record_weights(*self.clip.load_pretrained(weights))
        return self.provenance()

    def score(self, pixels, prompts, groups) -> RewardOutput:
        text = [_strip_adjectives(p) for p in prompts] if self.strip_adjectives else list(prompts)
        out = self.clip.score(pixels, text, None)
        return RewardOutput(out.scores.float(), {})


@register_reward()
class CompBenchComplex(RewardModel):
    """T2I-CompBench's 3-in-1 score for complex prompts (3_in_1_eval/3_in_1.py): the mean of the
    BLIP-VQA attribute score and the spatial score when the prompt has a spatial relation, else of
    the BLIP-VQA score and the CLIP score (on the prompt without adjectives). The official split
    uses hand-made lists of which val prompts are spatial/action; here the parser decides.
    ``spatial_mode``: the spatial score's ``mode`` (`CompBenchSpatial`; "official" by default)."""

    spec = RewardSpec(
        name="compbench-complex", aliases=("t2i-compbench-complex", "compbench-3-in-1"), category="composition",
        higher_is_better=True, range=(0.0, 1.0), differentiable=False, needs_prompt=True,
        weights=CompBenchVQA.spec.weights + yolo_weight_sources(DEFAULT_DETECTOR) + CompBenchNonSpatial.spec.weights,
        license="BSD-3-Clause (BLIP); " + _YOLO_LICENSE + "; MIT (OpenAI CLIP)", paper=_COMPBENCH,
        description="T2I-CompBench 3-in-1: mean of BLIP-VQA and (spatial if a relation is named, else CLIP)",
        tiny_config={**_DETECTOR_TINY, "tiny": True},
    )

    def __init__(self, model: str = DEFAULT_DETECTOR, imgsz: int = 640, tiny: bool = False,
                 detector: nn.Module | None = None, spatial_mode: str = "official"):
        super().__init__()
        self.attribute = CompBenchVQA(tiny=tiny)
        self.spatial = CompBenchSpatial(model=model, imgsz=imgsz, detector=detector, mode=spatial_mode)
        self.clip = CompBenchNonSpatial(tiny=tiny, strip_adjectives=True)

    def load_pretrained(self, weights=None):
        if weights is not None:
            raise ValueError("compbench-complex combines three models; set $REWARDBENCH_WEIGHTS or load them "
                             "separately")
        self.record_weights(*[p for m in (self.attribute, self.spatial, self.clip) for p in m.load_pretrained()])
        return self.provenance()

    def score(self, pixels, prompts, groups) -> RewardOutput:
        attr = self.attribute.score(pixels, prompts, None)
        spatial = self.spatial.score(pixels, prompts, None)
        clip = self.clip.score(pixels, prompts, None)
        has_rel = torch.tensor([bool(parse_prompt(p).relations) for p in prompts], device=pixels.device)
        second = torch.where(has_rel, spatial.scores.to(pixels.device), clip.scores.to(pixels.device))
        scores = ((attr.scores + second) / 2).float()
        return RewardOutput(scores, {"attribute": attr.scores.detach(), "spatial": spatial.scores.detach(),
                                     "clip": clip.scores.detach(),
                                     "mode": ["attribute+spatial" if r else "attribute+clip" for r in has_rel.tolist()],
                                     "note": spatial.details["note"]})
