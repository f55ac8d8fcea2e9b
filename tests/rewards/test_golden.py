"""Published scores of known images, reproduced with the real weights (``pytest -m real_weights``).

Skipped unless the weights resolve locally (hub cache, ``$REWARDBENCH_WEIGHTS``) and the images are in
``$REWARDBENCH_GOLDEN_DIR`` (default ``../shared/data/golden``):

* ``imagereward/1.webp`` … ``4.webp``: THUDM/ImageReward ``assets/images`` (prompt below);
* ``hpsv2/demo_image.jpg``: tgxs002/HPSv2 ``assets/demo_image.jpg``.

Each value names its source and the tolerance, which covers what the publisher's run differs in (GPU,
fp16 autocast, the transformers/torchvision versions of the day, another port's preprocessing). Scores
are computed on the exact (PIL) path, as the official code reads files.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import rewardbench
from rewardbench.weights import WeightsNotFoundError

from ..conftest import SHARED_DATA

pytestmark = pytest.mark.real_weights

GOLDEN_DIR = Path(os.environ.get("REWARDBENCH_GOLDEN_DIR", SHARED_DATA / "golden"))
OCEAN = "a painting of an ocean with clouds and birds, day time, low depth field effect"
# modelscope/DiffSynth-Studio examples/image_quality_metric/README.md, "Output" block (an earlier
# version of that README): each model's official code or a port of it, on ImageReward's 4 example images
DIFFSYNTH = "DiffSynth-Studio examples/image_quality_metric/README.md (Output block)"

# (reward, config, detail or None for the score, expected per image, tolerance, source)
OCEAN_CASES = [
    ("imagereward", {}, None, [0.5811904668807983, 0.2745198607444763, -1.4158903360366821, -2.032487154006958],
     0.01, f"{DIFFSYNTH}; THUDM/ImageReward README prints 0.58, 0.27, -1.41, -2.03"),
    # DiffSynth's PickScore is the cosine (no logit scale): our details["cosine"]
    ("pickscore", {"pil_preprocess": True}, "cosine",
     [0.20737126469612122, 0.20443597435951233, 0.20660750567913055, 0.19426065683364868], 1e-3, DIFFSYNTH),
    ("hpsv2", {"pil_preprocess": True}, None,
     [0.2672519087791443, 0.25495243072509766, 0.24888549745082855, 0.24302822351455688], 2e-3,
     f"{DIFFSYNTH} (fp16 autocast on GPU)"),
    ("hpsv2.1", {"pil_preprocess": True}, None,
     [0.2321144938468933, 0.20233657956123352, 0.1978294551372528, 0.19230154156684875], 2e-3,
     f"{DIFFSYNTH} (fp16 autocast on GPU)"),
    # DiffSynth feeds the v2 head transformers' CLIP ViT-L/14 (processor crop (h-224)//2); ours is
    # open_clip's with torchvision's crop: one pixel apart on some sizes, hence the looser tolerance
    ("aesthetic", {"pil_preprocess": True}, None,
     [5.900862693786621, 5.776571273803711, 5.799864292144775, 5.05204963684082], 0.05, DIFFSYNTH),
]


def _image(*parts: str) -> Path:
    path = GOLDEN_DIR.joinpath(*parts)
    if not path.is_file():
        pytest.skip(f"golden image {path} not found (set REWARDBENCH_GOLDEN_DIR; see this module's docstring)")
    return path


def _reward(name: str, **cfg):
    try:
        return rewardbench.load_reward(name, **cfg)
    except WeightsNotFoundError as e:
        pytest.skip(f"real weights for {name} not available locally: {str(e).splitlines()[0]}")


@pytest.mark.parametrize("name,cfg,detail,expected,tol,source", OCEAN_CASES, ids=[c[0] for c in OCEAN_CASES])
def test_imagereward_example_images(name, cfg, detail, expected, tol, source):
    paths = [str(_image("imagereward", f"{i}.webp")) for i in range(1, 5)]
    reward = _reward(name, **cfg)
    out = reward.score_pil(paths, [OCEAN] * 4) if name == "imagereward" else reward(paths, [OCEAN] * 4)
    got = (out.details[detail] if detail else out.scores).tolist()
    assert got == pytest.approx(expected, abs=tol), f"{name} vs {source}"


def test_hpsv2_demo_image():
    """tgxs002/HPSv2 issue #27 (a maintainer's reply, 2024-02-21): assets/demo_image.jpg with the
    prompt 'A cat with two horns on its head' scores 0.2876 (hps_version v2.0) through both hpsv2.score
    and img_score.py. Tolerance 5e-4: four published decimals, fp16 autocast on GPU."""
    path = str(_image("hpsv2", "demo_image.jpg"))
    reward = _reward("hpsv2", pil_preprocess=True)
    assert float(reward([path], ["A cat with two horns on its head"]).scores[0]) == pytest.approx(0.2876, abs=5e-4)
