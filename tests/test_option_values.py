"""Option values are checked before any work (issue 24): through the real command lines, every value below is
refused with exit 2 and one line, and no reward model, pipeline or accelerator is built first. Also the
declarations the checks read (`rewardbench.spec.Option`, `RewardSpec.options`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

import rewardbench
from rewardbench.cli.main import main
from rewardbench.preflight import UsageError, builder_options, check_reward_options
from rewardbench.spec import Option, RewardSpec

RECIPE = str(Path(__file__).resolve().parents[1] / "trainers" / "recipes" / "tiny_smoke.yaml")


@pytest.fixture
def nothing_built(monkeypatch):
    """Building a reward, a diffusion pipeline or the trainer's accelerator fails the test."""
    import accelerate

    from rewardbench.benchmarks import pipelines
    from rewardbench.registry import REGISTRY
    from rewardbench.trainers.algorithms import ddpo

    def built(*a, **k):
        raise AssertionError("something was built before the run was refused")

    monkeypatch.setattr(REGISTRY, "build", built)
    monkeypatch.setattr(pipelines, "load_pipeline", built)
    monkeypatch.setattr(pipelines, "build_components", built)
    monkeypatch.setattr(ddpo, "load_pipeline", built)
    monkeypatch.setattr(accelerate, "Accelerator", built)


def _cases(tmp: Path) -> dict[str, tuple[list[str], str]]:
    """case -> (command line, a piece of the one line it must print)."""
    images = tmp / "images"
    train = ["train", "--config", RECIPE, f"run.output_dir={tmp / 'run'}"]
    score = ["score", "-i", str(images), "--num-workers", "0", "--no-progress"]
    bench = ["run-benchmark", "--suite", "fairness", "--model", "ft=tiny:1", "--baseline", "tiny", "--limit", "2",
             "--dry-run"]
    return {
        # the list
        "train-lr-abc": ([*train, "train.lr=abc"], "train.lr='abc': expected a number, got a str"),
        "train-lr-negative": ([*train, "train.lr=-1e-5"], "train.lr=-1e-05: must be > 0"),
        "train-device": ([*train, "run.device=nonsense"], "run.device=nonsense: not a device"),
        "train-resolution": ([*train, "model.resolution=31"],
                             "model.resolution=31: not a multiple of 2, the VAE downsampling factor"),
        "score-quality-abc": ([*score, "-m", "jpeg-compressibility", "-c", "jpeg-compressibility:quality=abc"],
                              "jpeg-compressibility:quality='abc': expected an integer, got a str"),
        "score-quality-1000": ([*score, "-m", "jpeg-compressibility", "-c", "jpeg-compressibility:quality=1000"],
                               "quality=1000: must lie in [0, 100]"),
        "dry-run-board-random": ([*bench, "--judges", "jpeg-compressibility", "--to-leaderboard", "b",
                                  "--random-weights"], "leaderboards take results of real weights only"),
        # and their kin
        "train-batch-size": ([*train, "sample.batch_size=0"], "sample.batch_size=0: must be >= 1"),
        "train-reward-option": ([*train, "tasks.0.reward_kwargs={quality: 1000}"],
                                "tasks[0].reward_kwargs: jpeg-compressibility:quality=1000"),
        "score-kwargs-builder": ([*score, "-m", "vendi", "--group-by", "prompt", "--prompts", str(tmp / "p.txt"),
                                  "-c", "vendi:q=-1"], "vendi:q=-1: must be >= 0"),
        "score-choice": ([*score, "-m", "skin-tone-parity", "--group-by", "prompt", "--prompts", str(tmp / "p.txt"),
                          "-c", "skin-tone-parity:detector=retina"], "must be one of agreement, centerface"),
        "dry-run-judge-option": ([*bench, "--judges", "jpeg-compressibility", "--config",
                                  "jpeg-compressibility:quality=1000"], "quality=1000: must lie in [0, 100]"),
    }


CASES = sorted(_cases(Path("/tmp")))


@pytest.mark.parametrize("case", CASES)
def test_an_option_value_that_cannot_work_is_refused_before_anything_is_built(case, tmp_path, nothing_built):
    (tmp_path / "images").mkdir()
    for i in range(2):
        Image.new("RGB", (16, 16), (60 * i, 0, 0)).save(tmp_path / "images" / f"{i}.png")
    (tmp_path / "p.txt").write_text("a red square\n")
    args, expected = _cases(tmp_path)[case]
    r = CliRunner().invoke(main, args)
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 2, (r.exit_code, r.output)
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in r.output, r.output


def test_the_real_run_refuses_the_board_as_the_dry_run_does(tmp_path):
    args = ["run-benchmark", "--suite", "fairness", "--model", "ft=tiny:1", "--baseline", "tiny", "--limit", "2",
            "--judges", "jpeg-compressibility", "--to-leaderboard", "b", "--random-weights"]
    dry = CliRunner().invoke(main, [*args, "--dry-run"])
    real = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "run")])
    assert dry.exit_code == real.exit_code == 2
    assert dry.output == real.output and "generators ft, tiny" in real.output
    assert not (tmp_path / "run" / "images").exists()  # nothing generated


def test_a_python_caller_gets_the_same_refusal():
    with pytest.raises(UsageError, match=r"jpeg-incompressibility:quality=-3: must lie in \[0, 100\]"):
        rewardbench.load_reward("jpeg-incompressibility", quality=-3)
    with pytest.raises(UsageError, match="vendi:q='2': expected a number"):
        rewardbench.Scorer("vendi", reward_config={"vendi": {"q": "2"}}, progress=False)
    assert rewardbench.load_reward("jpeg-incompressibility", quality=50).quality == 50


@pytest.mark.parametrize("name", ["jpeg-compressibility", "detection-score", "object-presence", "geneval",
                                  "compbench-spatial", "skin-tone-parity", "gender-parity", "vendi",
                                  "pairwise-cosine-distance", "aesthetic", "aesthetic-v1-b32"])
def test_the_rewards_with_options_declare_them(name):
    """Each declared option is one the builder takes, and its default passes its own check."""
    spec = rewardbench.get_spec(name)
    assert spec.options, name
    assert set(spec.options) <= set(builder_options(name))
    for key, option in spec.options.items():
        assert option.check(key, option.default) == option.default or option.default != option.default  # NaN


def test_keys_of_a_kwargs_builder_are_checked_against_its_declaration():
    # skin-tone-parity's builder takes **kwargs: before the declaration, any key went through unchecked
    with pytest.raises(UsageError, match="skin-tone-parity takes no option 'min_faces'. Did you mean 'min_face'"):
        check_reward_options(["skin-tone-parity"], config={"skin-tone-parity": {"min_faces": 8}})
    with pytest.raises(UsageError, match="detection-score takes no option 'threshold'"):  # object-presence's
        check_reward_options(["detection-score"], config={"detection-score": {"threshold": 0.5}})
    assert check_reward_options(["object-presence"], config={"object-presence": {"threshold": 0.5}}) == \
        ["object-presence"]


@pytest.mark.parametrize("option, value, ok", [
    (Option(int, 1, low=1), True, False),  # a bool is not an int here
    (Option(float, 1.0, low=0.0), 2, True),  # an int is a number
    (Option(float, 1.0, low=0.0, high=1.0), 1.5, False),
    (Option(str, "a", choices=("a", "b")), "c", False),
    (Option(int, None, optional=True, low=1), None, True),
    (Option(int, 3), None, False),
    (Option(dict, None, optional=True), {"x": 1}, True),
    (Option(str, "x"), object(), True),  # built in Python: not the option's to judge
])
def test_an_option_checks_type_range_and_choices(option, value, ok):
    if ok:
        assert option.check("k", value) is value
    else:
        with pytest.raises(ValueError, match="^k="):
            option.check("k", value)


def test_the_catalogue_lists_each_option_with_its_range():
    row = RewardSpec(name="x", category="baseline", options={"q": Option(int, 95, "quality", low=0, high=100)}).as_row()
    assert row["options"]["q"] == {"type": "int", "default": 95, "low": 0, "high": 100, "choices": None,
                                   "optional": False, "help": "quality"}
    from rewardbench.catalog import catalog_rows

    jpeg = next(r for r in catalog_rows() if r["name"] == "jpeg-compressibility")
    assert jpeg["options"]["quality"]["low"] == 0 and jpeg["options"]["quality"]["high"] == 100
