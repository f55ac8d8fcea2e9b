"""rewards/aesthetic.py: LAION aesthetic v2 (MLP) and v1 (linear) heads on CLIP embeddings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import rewardbench
from rewardbench.weights import CheckpointMismatchError, WeightsNotFoundError

from .test_clip import PROMPTS, _photos

V2_FILE = "weights/improved-aesthetic-mlp/sac+logos+ava1-l14-linearMSE.pth"
V1_DIR = "weights/laion-aesthetic-linear"


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1])


def _rated_embeddings(shared_data, arch: str) -> tuple[torch.Tensor, np.ndarray]:
    d = shared_data / V1_DIR / f"vit_{arch}_embeddings"
    embs, ratings = [], []
    for r in range(10):
        e = np.load(d / f"rating{r}.npy")
        embs.append(e)
        ratings += [r] * len(e)
    return torch.from_numpy(np.concatenate(embs)).float(), np.array(ratings)


# -- formulas on tiny random models ----------------------------------------------------------

def test_v2_is_the_activation_free_mlp_of_the_normalised_embedding():
    r = rewardbench.load_reward("aesthetic", pretrained=False, tiny=True)
    emb = torch.randn(5, 32) * 3  # unnormalised on purpose
    x = emb / emb.norm(dim=-1, keepdim=True)
    for i in (0, 2, 4, 6, 7):  # Linear layers; 1, 3, 5 are dropouts (identity in eval)
        lin = r.head.layers[i]
        x = x @ lin.weight.T + lin.bias
    torch.testing.assert_close(r.score_embeddings(emb, [""] * 5, None).scores, x.squeeze(-1), atol=1e-5, rtol=1e-5)
    assert [type(m).__name__ for m in r.head.layers] == ["Linear", "Dropout"] * 3 + ["Linear", "Linear"]


def test_v1_is_a_linear_head_on_the_normalised_embedding():
    r = rewardbench.load_reward("aesthetic-v1", pretrained=False, tiny=True)
    emb = torch.randn(3, 32)
    expected = (emb / emb.norm(dim=-1, keepdim=True)) @ r.head.weight[0] + r.head.bias[0]
    torch.testing.assert_close(r.score_embeddings(emb, [""] * 3, None).scores, expected, atol=1e-5, rtol=1e-5)
    # the forward pass is that head on the backbone's features of the pixels
    x = _photos()
    with torch.no_grad():
        feats = r.backbone.model.encode_image(r.backbone.preprocess(x))
        torch.testing.assert_close(r(x).scores, F.normalize(feats, dim=-1) @ r.head.weight[0] + r.head.bias[0],
                                   atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name,backbone", [("aesthetic-v1-b32", "open_clip:ViT-B-32/openai"),
                                           ("aesthetic-v1-b16", "open_clip:ViT-B-16/openai")])
def test_v1_variants_declare_their_own_backbone(name, backbone):
    r = rewardbench.load_reward(name, pretrained=False, tiny=True)
    assert r.spec.backbone == backbone and r.backbone.backbone_id == backbone + "+tiny"


@pytest.mark.parametrize("name", ["aesthetic", "aesthetic-v1"])
def test_a_gradient_step_on_the_pixels_raises_the_aesthetic_score(name):
    r = rewardbench.load_reward(name, pretrained=False, tiny=True)
    x = _photos().clone().requires_grad_(True)
    before = r(x).scores
    before.sum().backward()
    step = x.detach() + 0.01 * x.grad / x.grad.abs().amax(dim=(1, 2, 3), keepdim=True)
    with torch.no_grad():
        after = r(step.clamp(0, 1)).scores
    assert (after > before.detach()).all(), (before, after)


# -- the real heads (../shared/data) ------------------------------------------------------------

@pytest.mark.parametrize("arch,file", [("l_14", "sa_0_4_vit_l_14_linear.pth"), ("b_32", "sa_0_4_vit_b_32_linear.pth")])
def test_real_v1_heads_rank_real_embeddings_by_rating(shared_data, arch, file):
    from rewardbench.rewards.aesthetic import load_aesthetic_head

    emb, ratings = _rated_embeddings(shared_data, arch)
    head = torch.nn.Linear(emb.shape[1], 1)
    src = load_aesthetic_head(head, (), reward="aesthetic-v1", weights=shared_data / V1_DIR / file)
    assert src.kind == "file" and src.location.endswith(file)
    with torch.no_grad():
        scores = head(F.normalize(emb, dim=-1)).squeeze(-1).numpy()
    rho = _spearman(ratings, scores)
    assert rho > 0.9, f"Spearman {rho:.3f}: {scores}"
    assert scores[ratings == 9].mean() - scores[ratings == 0].mean() > 5  # measured: ~13.8 (L/14), ~12.5 (B/32)


def test_real_v2_mlp_ranks_real_embeddings_by_rating(shared_data):
    from rewardbench.rewards.aesthetic import AestheticMLP, load_aesthetic_head

    emb, ratings = _rated_embeddings(shared_data, "l_14")
    head = AestheticMLP(768).eval()
    load_aesthetic_head(head, (), reward="aesthetic", weights=shared_data / V2_FILE)
    with torch.no_grad():
        scores = head(F.normalize(emb, dim=-1)).squeeze(-1).numpy()
    rho = _spearman(ratings, scores)
    assert rho > 0.9, f"Spearman {rho:.3f}: {scores}"


def test_the_cuda_saved_v2_checkpoint_loads_on_cpu(shared_data):
    from rewardbench.rewards.aesthetic import AestheticMLP, load_aesthetic_head

    path = shared_data / V2_FILE
    if not torch.cuda.is_available():  # proves the file really holds CUDA tensors
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(path, weights_only=True)
    head = AestheticMLP(768)
    load_aesthetic_head(head, (), reward="aesthetic", weights=path)
    assert all(p.device.type == "cpu" for p in head.parameters())


@pytest.fixture(scope="module")
def real_v2(shared_data):
    """``aesthetic`` with the real v2 head through the public API, on a random CLIP ViT-L/14 (the
    real CLIP weights are not available offline)."""
    return rewardbench.load_reward("aesthetic", weights=shared_data / V2_FILE, backbone_pretrained=False)


def test_real_v2_weights_through_load_reward(real_v2, shared_data):
    path = shared_data / V2_FILE
    assert str(path) in real_v2.weights_used and "not meaningful" in real_v2.weights_used
    ref = torch.load(path, map_location="cpu", weights_only=True)
    torch.testing.assert_close(real_v2.head.layers[0].weight, ref["layers.0.weight"])
    with torch.no_grad():
        out = real_v2(_photos()[:1], PROMPTS[:1])
    assert out.scores.shape == (1,) and torch.isfinite(out.scores).all()


def test_a_checkpoint_with_unexpected_keys_fails_listing_them(tmp_path, real_v2, shared_data):
    sd = torch.load(shared_data / V2_FILE, map_location="cpu", weights_only=True)
    sd["layers.8.weight"] = torch.zeros(1, 1)  # e.g. a variant with an extra layer
    del sd["layers.7.bias"]
    torch.save(sd, tmp_path / "odd.pth")
    mismatch = r"missing keys: layers\.7\.bias; unexpected keys: layers\.8\.weight"
    with pytest.raises(CheckpointMismatchError, match=mismatch):
        real_v2.load_pretrained(tmp_path / "odd.pth")


def test_the_clip_backbone_is_required_unless_declined(real_v2, shared_data, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("REWARDBENCH_WEIGHTS", raising=False)
    monkeypatch.setattr(real_v2, "backbone_pretrained", True)
    with pytest.raises(WeightsNotFoundError) as e:
        real_v2.load_pretrained(shared_data / V2_FILE)
    assert "timm/vit_large_patch14_clip_224.openai" in str(e.value) and "clip_weights=PATH" in str(e.value)
