"""The contract every registered reward honours, checked on its tiny random-weight config (CPU)."""

from __future__ import annotations

import pytest
import torch

import rewardbench
from rewardbench.spec import CATEGORIES

from .conftest import SHARED_DATA, real_photo

NAMES = [s.name for s in rewardbench.list_rewards()]
PROMPTS = ["a photo of an astronaut", "a cup of coffee", "a photo of a cat", "two dogs on the left of a red car"]


def _images(size: int = 96) -> torch.Tensor:
    import torch.nn.functional as F

    arrs = [real_photo(n) for n in ("astronaut", "coffee", "chelsea", "grace_hopper")]
    ts = [torch.from_numpy(a).permute(2, 0, 1).float()[None] / 255 for a in arrs]
    return torch.cat([F.interpolate(t, size=(size, size), mode="bilinear", antialias=True) for t in ts]).clamp(0, 1)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return _images()


def _build(name: str):
    spec = rewardbench.get_spec(name)
    return rewardbench.load_reward(name, device="cpu", pretrained=False, **dict(spec.tiny_config))


def test_zoo_is_not_empty():
    assert "jpeg-compressibility" in NAMES and "jpeg-incompressibility" in NAMES


@pytest.mark.parametrize("name", NAMES)
def test_spec_is_complete(name):
    spec = rewardbench.get_spec(name)
    assert spec.category in CATEGORIES
    lo, hi = spec.range
    assert lo is None or hi is None or lo < hi
    assert spec.license and spec.paper, "license and paper must be declared"
    for w in spec.weights:
        assert w.kind in ("hub", "url", "file", "bundled") and w.location


@pytest.mark.parametrize("name", NAMES)
def test_contract(name, images):
    torch.manual_seed(0)
    reward = _build(name)
    assert reward.spec.name == name
    assert "random" in reward.weights_used or "none" in reward.weights_used or "bundled" in reward.weights_used
    check_contract(reward, images)


# weighted composites honour the same contract (zscore is batch-relative by design: its own test is in test_model)
COMPOSITES = {
    "raw, lower-is-better member flipped": ({"jpeg-compressibility": 1.0, "nsfw": 50.0}, None),
    "range": ({"open-nsfw": 1.0, "nsfw": 0.5}, "range"),  # JPEG sizes and Vendi have no upper bound to map by
    "range, group members": ({"pairwise-cosine-distance": 1.0, "skin-tone-parity": 2.0}, "range"),
}


@pytest.mark.parametrize("label", sorted(COMPOSITES))
def test_composite_contract(label, images):
    members, normalize = COMPOSITES[label]
    reward = rewardbench.load_reward(members, device="cpu", pretrained=False, normalize=normalize)
    assert reward.spec.higher_is_better and reward.spec.license and reward.spec.paper
    lo, hi = reward.spec.range
    assert (lo is None or hi is None or lo < hi) and (normalize != "range" or lo is not None)
    out = check_contract(reward, images)
    if normalize == "range":
        assert ((out.scores >= lo - 1e-6) & (out.scores <= hi + 1e-6)).all(), out.scores


def check_contract(reward, images):
    """Shapes, dtype, device, finiteness, determinism, details per image, and batch invariance: item i in
    a batch equals item i alone (image rewards); a group alone equals the group in the batch (group rewards)."""
    spec = reward.spec
    groups = torch.tensor([0, 0, 1, 1]) if spec.granularity == "group" else None

    with torch.no_grad():
        out = reward(images, PROMPTS, groups)
        again = reward(images, PROMPTS, groups)
    assert out.scores.shape == (4,)
    assert out.scores.dtype == torch.float32
    assert out.scores.device.type == "cpu"
    assert torch.isfinite(out.scores).all(), out.scores
    torch.testing.assert_close(out.scores, again.scores, msg="scoring is not deterministic")
    for k, v in out.details.items():
        assert len(v) == 4, f"details[{k!r}] has length {len(v)}"

    with torch.no_grad():
        if spec.granularity == "image":  # item i in a batch == item i alone
            for i in range(4):
                alone = reward(images[i:i + 1], PROMPTS[i:i + 1]).scores
                torch.testing.assert_close(alone, out.scores[i:i + 1], rtol=1e-4, atol=1e-4)
        else:  # a group scored alone == the same group inside the batch; members share the value
            alone = reward(images[2:], PROMPTS[2:], torch.tensor([7, 7])).scores
            torch.testing.assert_close(alone, out.scores[2:], rtol=1e-4, atol=1e-4)
            assert out.scores[0] == out.scores[1] and out.scores[2] == out.scores[3]
    return out


@pytest.mark.parametrize("name", [n for n in NAMES if rewardbench.get_spec(n).differentiable])
def test_declared_differentiable_rewards_pass_gradients_to_pixels(name, images):
    torch.manual_seed(0)
    reward = _build(name)
    pixels = images.clone().requires_grad_(True)
    groups = torch.tensor([0, 0, 1, 1]) if reward.spec.granularity == "group" else None
    reward(pixels, PROMPTS, groups).scores.sum().backward()
    assert pixels.grad is not None and torch.isfinite(pixels.grad).all()
    assert pixels.grad.abs().sum() > 0


@pytest.mark.parametrize("name", [n for n in NAMES if rewardbench.get_spec(n).needs_prompt])
def test_prompted_rewards_reject_missing_and_empty_prompts(name, images):
    reward = _build(name)
    with pytest.raises(ValueError, match="prompt"):
        reward(images[:2], None)
    with pytest.raises(ValueError, match="empty prompt"):
        reward(images[:2], ["a cat", "  "])
    with pytest.raises(ValueError, match="2 images but 3 prompts"):
        reward(images[:2], ["a", "b", "c"])


def _within(value: float, lo: float | None, hi: float | None) -> bool:
    return (lo is None or value >= lo - 1e-6) and (hi is None or value <= hi + 1e-6)


def test_offline_rewards_score_real_photos_within_their_declared_range(tmp_path):
    """A declared range is read as bounds (composite normalisation, benchmark intervals): every offline reward, run
    as shipped on real photos (scikit-image, matplotlib, and labelled Stable Diffusion images when ../shared/data
    is here), stays inside it. Groups of 2 to 5 images; the people photos together."""
    from rewardbench.harness import Scorer

    offline = [s.name for s in rewardbench.list_rewards() if s.offline]
    photos = [("astronaut", "people"), ("grace_hopper", "people"), ("camera", "people"), ("coffee", "things"),
              ("chelsea", "things"), ("rocket", "things"), ("hubble_deep_field", "space"), ("logo", "space")]
    # each prompt quotes a text, for a reward that reads one (OCR's target is the prompt's quoted text)
    items = [{"image": real_photo(n), "prompt": f'a photo of {p}, a sign saying "{p}"'} for n, p in photos]
    labels = SHARED_DATA / "faces-calibration" / "labels.csv"
    if labels.is_file():
        import pandas as pd

        df = pd.read_csv(labels)
        picked = pd.concat([df[df["human_faces"] > 0].head(5), df[df["human_faces"] == 0].head(3)])
        items += [{"image": str(labels.parent / r.image), "prompt": f'a picture, a sign saying "{r.human_faces > 0}"'}
                  for r in picked.itertuples()]
    t = Scorer(offline, device="cpu", num_workers=0, progress=False).run(items, group_by="prompt").table
    assert t["error"].isna().all(), t["error"].dropna().tolist()
    for name in offline:
        lo, hi = rewardbench.get_spec(name).range
        scores = t[name].dropna()
        assert len(scores) == len(t), name
        outside = [float(v) for v in scores if not _within(float(v), lo, hi)]
        assert not outside, f"{name} declares [{lo}, {hi}] but scored {outside}"
    # a real photo is larger than 200 kB as JPEG (scikit-image's hubble_deep_field): what a bound there would deny
    assert t["jpeg-incompressibility"].max() > 200
