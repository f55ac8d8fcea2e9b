"""GenEval's checks (rewards/geneval.py): the rule on hand-made boxes, the rewards end to end with an
injected detector, and the table that declares them."""

from __future__ import annotations

import torch

import rewardbench
from rewardbench.rewards._prompts import parse_prompt
from rewardbench.rewards.geneval import geneval_evaluate

from ._fake_detector import D, reward_with


def test_geneval_counting_is_exact_with_the_counting_threshold():
    spec = parse_prompt("a photo of two clocks").geneval_spec()
    two = [("clock", 0.95, (0, 0, 10, 10)), ("clock", 0.93, (20, 0, 30, 10))]
    assert geneval_evaluate(spec, D(two), counting=True)[0]
    three = two + [("clock", 0.92, (40, 0, 50, 10))]
    ok, reasons = geneval_evaluate(spec, D(three), counting=True)
    assert not ok and "clock<3" in reasons[0]
    weak = two[:1] + [("clock", 0.5, (20, 0, 30, 10))]  # 0.5 is below GenEval's 0.9
    assert not geneval_evaluate(spec, D(weak), counting=True)[0]
    assert not geneval_evaluate(spec, D([]), counting=True)[0]


def test_geneval_position_requires_every_instance_in_relation():
    spec = parse_prompt("a photo of a dog right of a teddy bear").geneval_spec()
    bear, dog_right = ("teddy bear", 0.9, (0, 0, 10, 10)), ("dog", 0.9, (50, 0, 60, 10))
    dog_left = ("dog", 0.8, (-50, 0, -40, 10))
    assert geneval_evaluate(spec, D([bear, dog_right]))[0]
    assert not geneval_evaluate(spec, D([bear, dog_left]))[0]
    assert not geneval_evaluate(spec, D([dog_right]))[0]  # no target
    # two bears: the dog must be right of both (GenEval checks all matched target objects)
    spec2 = parse_prompt("a photo of a dog right of two teddy bears").geneval_spec()
    bears = [bear, ("teddy bear", 0.9, (100, 0, 110, 10))]
    assert not geneval_evaluate(spec2, D(bears + [dog_right]), check_counts=True)[0]


def test_geneval_colour_uses_the_classifier_on_each_instance():
    spec = parse_prompt("a photo of a red car").geneval_spec()
    dets = D([("car", 0.9, (0, 0, 10, 10))])
    assert geneval_evaluate(spec, dets, color_of=lambda cls, boxes: ["red"] * len(boxes))[0]
    ok, reasons = geneval_evaluate(spec, dets, color_of=lambda cls, boxes: ["blue"] * len(boxes))
    assert not ok and "red car" in reasons[0]


def test_geneval_counting_reward_end_to_end():
    two = D([("clock", 0.95, (0, 0, 10, 10)), ("clock", 0.93, (20, 0, 30, 10))])
    r = reward_with("geneval-counting", [two, two, two])
    out = r(torch.rand(3, 3, 32, 32), ["a photo of two clocks", "a photo of three clocks", "a photo of two frogs"])
    assert out.scores.tolist() == [1.0, 0.0, 0.0]
    assert "frog" in out.details["note"][2] and "clock>=3" in out.details["reason"][1]


def test_geneval_color_reward_runs_the_clip_classifier_on_crops():
    dets = D([("car", 0.9, (2, 2, 20, 20))], image_size=(32, 32))
    r = reward_with("geneval-color", [dets], tiny=True)
    out = r(torch.rand(1, 3, 32, 32), ["a photo of a red car"])
    assert out.scores.item() in (0.0, 1.0)
    assert out.scores.item() == 1.0 or "expected red car" in out.details["reason"][0]


def test_the_table_declares_five_rewards_of_one_class():
    want = {"geneval-counting": ("counting", (), False), "geneval-position": ("position", (), False),
            "geneval-color": ("color", ("geneval-colors",), True),
            "geneval-color-attr": ("color_attr", (), True), "geneval": ("overall", ("geneval-overall",), True)}
    for name, (task, aliases, color) in want.items():
        spec = rewardbench.get_spec(name)
        assert spec.aliases == aliases and all(rewardbench.registry.REGISTRY.canonical(a) == name for a in aliases)
        # the colour tasks add CLIP's weights and see the pixels after detection (no shared backbone)
        assert (len(spec.weights), spec.backbone is None, "tiny" in spec.tiny_config) == (1 + color, color, color)
        r = reward_with(name, [D([])], **({"tiny": True} if color else {}))
        assert (type(r).__name__, r.task, r.needs_color, r.spec) == ("_GenEvalReward", task, color, spec)
        built = rewardbench.load_reward(name, pretrained=False, **dict(spec.tiny_config))
        assert built.spec is spec and built.task == task
