"""rewards/_group.py: the distribution metrics by hand."""

from __future__ import annotations

import math

import pytest
import torch

from rewardbench.rewards._group import imbalance, kl_to_uniform, normalized_entropy, parity, worst_value


def test_parity_entropy_kl_by_hand():
    one = torch.tensor([1.0, 0, 0, 0])
    uniform = torch.full((4,), 0.25)
    two = torch.tensor([0.5, 0.5, 0, 0])
    # -sum (p - 1/4)^2: one bucket: -(0.75^2 + 3 * 0.0625) = -0.75; two equal: -(2 * 0.0625 + 2 * 0.0625) = -0.25
    assert float(parity(one)) == pytest.approx(-0.75)
    assert float(parity(uniform)) == pytest.approx(0.0)
    assert float(parity(two)) == pytest.approx(-0.25)
    assert float(normalized_entropy(one)) == pytest.approx(0.0)
    assert float(normalized_entropy(uniform)) == pytest.approx(1.0)
    assert float(normalized_entropy(two)) == pytest.approx(0.5)  # log 2 / log 4
    assert float(kl_to_uniform(one)) == pytest.approx(math.log(4))
    assert float(kl_to_uniform(uniform)) == pytest.approx(0.0)
    assert float(kl_to_uniform(two)) == pytest.approx(math.log(2))
    assert float(imbalance(torch.tensor([0.75, 0.25]))) == pytest.approx(0.25)
    assert worst_value("parity", 4) == pytest.approx(-0.75) and worst_value("imbalance", 2) == pytest.approx(0.5)
