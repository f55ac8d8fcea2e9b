import numpy as np
import pytest
import torch

import rewardbench
from rewardbench import RewardModel, RewardOutput, RewardSpec
from rewardbench.composite import CompositeReward


class Brightness(RewardModel):
    spec = RewardSpec(name="brightness", category="baseline", differentiable=True, range=(0.0, 1.0))

    def score(self, pixels, prompts, groups):
        return RewardOutput(pixels.mean(dim=(1, 2, 3)), {"red": pixels[:, 0].mean(dim=(1, 2))})


class Darkness(Brightness):
    spec = RewardSpec(name="darkness", category="baseline", differentiable=True, range=(0.0, 1.0),
                      higher_is_better=False)


class GroupMean(RewardModel):
    spec = RewardSpec(name="group-mean", category="fairness", granularity="group")

    def score(self, pixels, prompts, groups):
        per = pixels.mean(dim=(1, 2, 3))
        out = torch.empty_like(per)
        for g in groups.unique():
            out[groups == g] = per[groups == g].mean()
        return RewardOutput(out)


def test_forward_accepts_any_image_input_and_checks_prompts():
    r = Brightness()
    arrs = [np.full((8, 8, 3), 255, np.uint8), np.zeros((8, 8), np.uint8)]
    assert r(arrs).scores.tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="2 images but 1 prompts"):
        r(arrs, ["only one"])
    assert r(arrs, "same prompt for all").scores.shape == (2,)


def test_mixed_sizes_are_scored_per_size_in_order():
    r = Brightness()
    imgs = [torch.full((3, 4, 4), 0.1), torch.full((3, 6, 5), 0.7), torch.full((3, 4, 4), 0.3)]
    out = r(imgs)
    torch.testing.assert_close(out.scores, torch.tensor([0.1, 0.7, 0.3]))
    torch.testing.assert_close(out.details["red"], torch.tensor([0.1, 0.7, 0.3]))


def test_groups_are_validated_and_default_to_one_group():
    r = GroupMean()
    x = torch.stack([torch.full((3, 2, 2), v) for v in (0.0, 1.0, 0.5, 0.5)])
    assert r(x).scores.tolist() == [0.5] * 4  # no groups: the batch is one group
    torch.testing.assert_close(r(x, groups=[0, 0, 1, 1]).scores, torch.tensor([0.5, 0.5, 0.5, 0.5]))
    torch.testing.assert_close(r(x, groups=[0, 1, 1, 1]).scores, torch.tensor([0.0, 2 / 3, 2 / 3, 2 / 3]))
    with pytest.raises(ValueError, match="length 4"):
        r(x, groups=[0, 1])
    with pytest.raises(ValueError, match="integer"):
        r(x, groups=torch.zeros(4))


def test_wrong_output_shape_is_caught():
    class Bad(Brightness):
        def score(self, pixels, prompts, groups):
            return RewardOutput(torch.zeros(pixels.shape[0] + 1))

    with pytest.raises(RuntimeError, match="shape"):
        Bad()(torch.zeros(2, 3, 4, 4))


def test_device_follows_to_and_ddpo_adapter():
    r = Brightness()
    assert r.device.type == "cpu"
    fn = r.as_ddpo_fn()
    rewards, info = fn(torch.full((2, 3, 4, 4), 0.25), ["a", "b"], [{}, {}])
    assert isinstance(rewards, np.ndarray) and rewards.dtype == np.float32
    np.testing.assert_allclose(rewards, [0.25, 0.25])
    np.testing.assert_allclose(info["red"], [0.25, 0.25])
    g = GroupMean().as_ddpo_fn()
    x = torch.stack([torch.full((3, 2, 2), v) for v in (0.0, 1.0, 0.2, 0.4)])
    np.testing.assert_allclose(g(x, ["p"] * 4, [{"group": 0}, {"group": 0}, {"group": 1}, {"group": 1}])[0],
                               [0.5, 0.5, 0.3, 0.3], rtol=1e-6)


def test_composite_weighted_sum_and_normalisations():
    b, d = Brightness(), Darkness()
    x = torch.stack([torch.full((3, 2, 2), v) for v in (0.2, 0.4, 0.9)])
    s = torch.tensor([0.2, 0.4, 0.9])
    # darkness (same raw values) is declared lower-is-better: it is flipped in every mode, raw included
    raw = CompositeReward({"brightness": b, "darkness": d}, {"brightness": 1.0, "darkness": 0.5})
    torch.testing.assert_close(raw(x).scores, s - 0.5 * s)
    assert raw.spec.higher_is_better
    z = CompositeReward({"brightness": b, "darkness": d}, {"brightness": 1.0, "darkness": 0.5}, normalize="zscore")
    zs = (s - s.mean()) / s.std()
    torch.testing.assert_close(z(x).scores, zs - 0.5 * zs, rtol=1e-5, atol=1e-5)
    rng = CompositeReward({"brightness": b, "darkness": d}, {"brightness": 1.0, "darkness": 1.0}, normalize="range")
    torch.testing.assert_close(rng(x).scores, s + (1 - s))
    assert rng.spec.range == (0.0, 2.0)
    assert z.spec.differentiable and "brightness" in z(x).details
    with pytest.raises(ValueError, match="normalize"):
        CompositeReward({"brightness": b}, {"brightness": 1.0}, normalize="softmax")


def test_composite_range_needs_declared_ranges_and_zscore_needs_a_batch():
    class Unbounded(Brightness):
        spec = RewardSpec(name="unbounded", category="baseline", range=(0.0, None), higher_is_better=False)

    with pytest.raises(ValueError, match="unbounded declares no finite range"):
        CompositeReward({"brightness": Brightness(), "unbounded": Unbounded()}, {"brightness": 1, "unbounded": 1},
                        normalize="range")
    z = CompositeReward({"brightness": Brightness()}, {"brightness": 1.0}, normalize="zscore")
    assert z(torch.rand(2, 3, 4, 4)).scores.shape == (2,)
    with pytest.raises(ValueError, match="batch of one image has no spread"):
        z(torch.rand(1, 3, 4, 4))


def test_ddpo_adapter_scores_in_chunks_of_batch_size():
    class Counting(Brightness):
        def __init__(self):
            super().__init__()
            self.sizes = []

        def score(self, pixels, prompts, groups):
            self.sizes.append(pixels.shape[0])
            return super().score(pixels, prompts, groups)

    r = Counting()
    x = torch.rand(7, 3, 4, 4)
    rewards, info = r.as_ddpo_fn(batch_size=3)(x, ["p"] * 7, [{}] * 7)
    assert r.sizes == [3, 3, 1]
    np.testing.assert_allclose(rewards, x.mean(dim=(1, 2, 3)).numpy(), rtol=1e-6)
    np.testing.assert_allclose(info["red"], x[:, 0].mean(dim=(1, 2)).numpy(), rtol=1e-6)
    assert isinstance(info["red"], np.ndarray) and info["red"].shape == (7,)
    with pytest.raises(ValueError, match="batch_size"):
        r.as_ddpo_fn(batch_size=0)


def test_ddpo_adapter_keeps_groups_whole_and_requires_them():
    class CountingGroups(GroupMean):
        def __init__(self):
            super().__init__()
            self.calls = []

        def score(self, pixels, prompts, groups):
            self.calls.append(groups.tolist())
            return super().score(pixels, prompts, groups)

    g = CountingGroups()
    x = torch.stack([torch.full((3, 2, 2), v) for v in (0.0, 1.0, 0.2, 0.4, 0.6)])
    meta = [{"group": "a"}, {"group": "a"}, {"group": "b"}, {"group": "b"}, {"group": "b"}]
    rewards, _ = g.as_ddpo_fn(batch_size=2)(x, ["p"] * 5, meta)
    np.testing.assert_allclose(rewards, [0.5, 0.5, 0.4, 0.4, 0.4], rtol=1e-6)
    assert [len(c) for c in g.calls] == [2, 3]  # a group of 3 > batch_size is one chunk, never split
    with pytest.raises(ValueError, match="group-level reward: give every image's metadata a 'group'"):
        g.as_ddpo_fn()(x, ["p"] * 5, [{}] * 5)
    with pytest.raises(ValueError, match="'group'"):
        g.as_ddpo_fn()(x, ["p"] * 5, None)


def test_load_reward_composites_by_name():
    c = rewardbench.load_reward("jpeg-compressibility,jpeg-incompressibility")
    x = torch.rand(2, 3, 32, 32)
    out = c(x)
    torch.testing.assert_close(out.scores, torch.zeros(2))  # -size + size
    c2 = rewardbench.load_reward({"jpeg-incompressibility": 2.0})
    torch.testing.assert_close(c2(x).scores, 2 * out.details["jpeg-incompressibility"])
    with pytest.raises(ValueError, match="unknown dtype"):
        rewardbench.load_reward("jpeg-compressibility", dtype="float8")
