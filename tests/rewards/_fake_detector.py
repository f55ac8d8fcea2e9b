"""A stand-in detector for the detection rewards' tests: hand-made `Detections`, whatever the pixels."""

from __future__ import annotations

from torch import nn

import rewardbench
from rewardbench.rewards._detect import Detections

D = Detections.from_list


class FakeDetector(nn.Module):
    """Returns the given detections, one per image, whatever the pixels."""

    def __init__(self, dets: list[Detections]):
        super().__init__()
        self.dets = dets

    def forward(self, pixels):
        return self.dets[: pixels.shape[0]]


def reward_with(name, dets, **kw):
    """The registered reward ``name`` built around a `FakeDetector` returning ``dets``."""
    build = rewardbench.registry.REGISTRY.entry(name).load_target()
    return build(detector=FakeDetector(dets), **kw).eval()
