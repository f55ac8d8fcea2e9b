"""rewards/diversity.py: Vendi and pairwise cosine distance against hand computations; group
semantics; encoders."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import rewardbench
from rewardbench.rewards import diversity as dv


def test_vendi_identical_is_one_and_orthogonal_is_n():
    assert float(dv.vendi_score(torch.ones(6, 10))) == pytest.approx(1.0)
    assert float(dv.vendi_score(torch.eye(5))) == pytest.approx(5.0)
    assert float(dv.vendi_score(torch.eye(5) * torch.arange(1, 6).view(-1, 1))) == pytest.approx(5.0)  # scale-free


def test_vendi_two_clusters_by_hand():
    # 2 copies of e1 and 2 of e2: K/n has eigenvalues (1/2, 1/2, 0, 0) -> exp(log 2) = 2
    x = torch.tensor([[1.0, 0], [1.0, 0], [0, 1.0], [0, 1.0]])
    assert float(dv.vendi_score(x)) == pytest.approx(2.0)
    # two unit vectors at angle theta: eigenvalues (1 +- cos theta) / 2
    c = math.cos(math.radians(60))
    lam = [(1 + c) / 2, (1 - c) / 2]
    expected = math.exp(-sum(v * math.log(v) for v in lam))
    y = torch.tensor([[1.0, 0.0], [c, math.sin(math.radians(60))]])
    assert float(dv.vendi_score(y)) == pytest.approx(expected, rel=1e-6)
    # order q = 2: 1 / sum(lam^2)
    assert float(dv.vendi_score(y, q=2)) == pytest.approx(1 / sum(v * v for v in lam), rel=1e-6)


def test_vendi_dual_form_when_more_items_than_dimensions():
    torch.manual_seed(0)
    x = torch.randn(40, 3)  # n > d: the d x d dual is used; compare with the n x n kernel
    xn = torch.nn.functional.normalize(x.double(), dim=-1)
    lam = torch.linalg.eigvalsh(xn @ xn.T / 40).clamp(min=0)
    lam = lam[lam > 1e-12]
    assert float(dv.vendi_score(x)) == pytest.approx(float(torch.exp(-(lam * lam.log()).sum())), rel=1e-6)


def test_mean_pairwise_cosine_distance_by_hand():
    x = torch.tensor([[1.0, 0], [0, 1.0], [-1.0, 0]])
    # pairs: (1,2) 1, (1,3) 2, (2,3) 1 -> mean 4/3
    assert float(dv.mean_pairwise_cosine_distance(x)) == pytest.approx(4 / 3)
    assert float(dv.mean_pairwise_cosine_distance(torch.ones(4, 3))) == pytest.approx(0.0, abs=1e-6)
    assert float(dv.mean_pairwise_cosine_distance(torch.ones(1, 3))) == 0.0


def test_vendi_reward_on_identical_and_distinct_images(photos):
    import torch.nn.functional as F

    r = rewardbench.load_reward("vendi")
    assert r.spec.offline and "none" in r.weights_used
    names = ["astronaut", "coffee", "chelsea", "rocket"]
    x = torch.cat([F.interpolate(torch.from_numpy(photos[n].copy()).permute(2, 0, 1)[None].float() / 255, size=(64, 64),
                                 mode="bilinear", antialias=True) for n in names]).clamp(0, 1)
    same = torch.cat([x[:1]] * 4)
    batch = torch.cat([same, x])
    out = r(batch, groups=[0] * 4 + [1] * 4)
    assert out.scores[:4].tolist() == [pytest.approx(1.0)] * 4
    assert float(out.scores[4]) > 1.2 and float(out.scores[4]) <= 4.0  # four different photos
    assert (out.scores[4:] == out.scores[4]).all()
    # the official pixel_vendi_score, re-expressed: uint8 images, PIL img.resize((32, 32)), flatten
    torch.testing.assert_close(out.scores[4].double(), torch.tensor(_official_pixel_vendi(x), dtype=torch.float64),
                               atol=0, rtol=1e-6)


def _official_pixel_vendi(pixels: torch.Tensor) -> float:
    """vendi_score.image_utils.pixel_vendi_score re-expressed with PIL/numpy/scipy: get_pixel_vectors
    (PIL ``img.resize((32, 32))``, default filter, uint8 values flattened), vendi.score_X (rows
    L2-normalised, K = X X^T, eigenvalues of K / n, exp of the Shannon entropy)."""
    import numpy as np
    import scipy.linalg
    from PIL import Image

    u8 = (pixels.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    x = np.stack([np.array(Image.fromarray(a).resize((32, 32))).flatten() for a in u8]).astype(np.float64)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    w = scipy.linalg.eigvalsh(x @ x.T / len(x))
    w = w[w > 0]
    return float(np.exp(-(w * np.log(w)).sum()))


def test_pixel_vendi_follows_the_official_pil_resize_and_torch_stays_close(photos):
    """vendi's default pixel features are the official ones (PIL bicubic of uint8); the torch resize
    (differentiable, pairwise-cosine-distance's default) is close to them but not equal."""
    names = ["astronaut", "coffee", "chelsea", "rocket", "grace_hopper"]
    x = torch.cat([torch.nn.functional.interpolate(torch.from_numpy(photos[n].copy()).permute(2, 0, 1)[None].float()
                                                   / 255, size=(300, 400), mode="bilinear", antialias=True)
                   for n in names]).clamp(0, 1)
    x = (x * 255).round() / 255  # as decoded from files
    official = _official_pixel_vendi(x)
    assert float(rewardbench.load_reward("vendi")(x).scores[0]) == pytest.approx(official, rel=1e-6)
    torch_path = float(rewardbench.load_reward("vendi", pixel_resize="torch")(x).scores[0])
    assert torch_path == pytest.approx(official, rel=1e-2) and torch_path != pytest.approx(official, rel=1e-7)
    # images of different sizes are each resized from their own size, as the official code does
    mixed = [x[0, :, :200, :], x[1], x[2, :, 50:, 100:], x[3], x[4, :, :, :333]]
    u8 = [(m.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy() for m in mixed]
    from PIL import Image
    ref = np.stack([np.array(Image.fromarray(a).resize((32, 32))).flatten() for a in u8]).astype(np.float64)
    assert float(rewardbench.load_reward("vendi")(mixed).scores[0]) == pytest.approx(
        float(dv.vendi_score(torch.from_numpy(ref))), rel=1e-6)
    assert rewardbench.load_reward("pairwise-cosine-distance").pixel_resize == "torch"
    with pytest.raises(ValueError, match="pixel_resize"):
        rewardbench.load_reward("vendi", pixel_resize="nearest")


def test_groups_independent_of_order_and_of_each_other():
    torch.manual_seed(0)
    x = torch.rand(8, 3, 24, 24)
    groups = torch.tensor([2, 0, 1, 0, 2, 1, 0, 2])
    for name in ("vendi", "pairwise-cosine-distance"):
        r = rewardbench.load_reward(name)
        out = r(x, groups=groups).scores
        for g in groups.unique():
            members = out[groups == g]
            assert torch.allclose(members, members[0].expand_as(members))
            alone = r(x[groups == g], groups=torch.zeros(int((groups == g).sum()), dtype=torch.long)).scores
            torch.testing.assert_close(alone, members, atol=1e-5, rtol=0)
        perm = torch.randperm(8)
        torch.testing.assert_close(r(x[perm], groups=groups[perm]).scores, out[perm], atol=1e-5, rtol=0)


def test_single_image_group_has_a_defined_value_and_a_note():
    r = rewardbench.load_reward("vendi")
    out = r(torch.rand(3, 3, 16, 16), groups=[0, 0, 1])
    assert out.scores[2] == pytest.approx(1.0) and "single image" in out.group_details[1]["note"]
    assert out.group_details[0] == {"size": 2, "note": ""} and out.group_details[1]["size"] == 1
    out = rewardbench.load_reward("pairwise-cosine-distance")(torch.rand(1, 3, 16, 16))
    assert out.scores.tolist() == [0.0]


def test_pairwise_distance_passes_gradients_to_pixels():
    r = rewardbench.load_reward("pairwise-cosine-distance")
    x = torch.rand(4, 3, 32, 32, requires_grad=True)
    r(x, groups=[0, 0, 1, 1]).scores.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0 and torch.isfinite(x.grad).all()


def test_registered_image_encoder_embeddings():
    """Vendi over a registered encoder's embed_images (a tiny random CLIP: plumbing only)."""
    r = rewardbench.load_reward("vendi", encoder="clipscore", encoder_config={"tiny": True}, pretrained=False)
    assert "clipscore" in r.weights_used and "random" in r.weights_used
    x = torch.rand(4, 3, 64, 64)
    out = r(torch.cat([x[:2], x[:1], x[:1]]), groups=[0, 0, 1, 1])
    assert out.scores[2] == pytest.approx(1.0, abs=1e-4)  # identical images -> 1 in any embedding
    emb = r.encoder.embed_images(x[:2])
    assert float(out.scores[0]) == pytest.approx(float(dv.vendi_score(emb)), abs=1e-5)


def test_encoder_errors_are_clear():
    with pytest.raises(ValueError, match="not an image encoder"):
        rewardbench.load_reward("vendi", encoder="pairwise-cosine-distance")
    with pytest.raises(rewardbench.UnknownRewardError):
        rewardbench.load_reward("vendi", encoder="no-such-encoder")
    with pytest.raises(ValueError, match="embeddings must be"):
        dv.vendi_score(torch.zeros(0, 4))


def test_vendi_reaches_the_group_size_so_it_declares_no_upper_bound():
    """20 images, each lit in a block of its own (orthogonal pixel features), score about 20: more than any fixed
    bound short of the group's size (Vendi used to declare 16)."""
    x = torch.zeros(20, 3, 64, 64)
    for i in range(20):
        r, c = divmod(i, 5)
        x[i, :, r * 16:r * 16 + 12, c * 12:c * 12 + 10] = 1.0
    vendi = rewardbench.load_reward("vendi")
    v = float(vendi(x, groups=[0] * 20).scores[0])
    lo, hi = vendi.spec.range
    assert 16 < v <= 20 and lo <= v and hi is None, v
