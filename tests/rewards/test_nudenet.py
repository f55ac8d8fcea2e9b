"""rewards/_nudenet.py: our batched runner of NudeNet's bundled detector against the official package."""

from __future__ import annotations

import numpy as np

from rewardbench.rewards._nudenet import nudenet_detect

PEOPLE = ("astronaut", "grace_hopper")
NO_PEOPLE = ("coffee", "rocket")


def test_nudenet_batched_matches_the_official_detector(photos):
    """Our batched runner reproduces nudenet.NudeDetector().detect (which reads BGR) exactly."""
    import nudenet

    names = [*PEOPLE, *NO_PEOPLE, "chelsea"]
    ours = nudenet_detect([photos[n] for n in names], batch_size=3)
    official = nudenet.NudeDetector()
    for n, mine in zip(names, ours):
        ref = official.detect(np.ascontiguousarray(photos[n][..., ::-1]))
        assert [d["class"] for d in mine] == [d["class"] for d in ref], n
        for a, b in zip(mine, ref):
            assert abs(a["score"] - b["score"]) < 1e-4
            assert [int(v) for v in a["box"]] == b["box"]
